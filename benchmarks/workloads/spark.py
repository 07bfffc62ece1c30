"""bertnp through Spark (local[1], local[2]) against bertnp alone in one process, on the docstring corpus.
Opt-in (`--only spark`): it needs Java and takes minutes."""

from __future__ import annotations

from harness import MINILM, Column, Section, interleave
from workloads.corpus import describe, load

OPT_IN = True


def run(bench):
    texts = load(bench.pick(2000, 200))
    rounds = bench.pick(3, 1)
    section = Section("Spark: bertnp on every executor, corpus throughput",
                      [Column("throughput", "texts/s", True), Column("first job", "s", False)])
    engines = [("fast", "numba"), ("spark", "local[1]"), ("spark", "local[2]")]
    with bench.engines(engines, MINILM, section) as workers:
        # warm-up: the whole corpus once (Spark: starts the Python workers, which load the model)
        result = interleave(workers, "embed", (texts,), rounds, warmup=1)
    for worker, timing in result.timings.items():
        section.add(worker, throughput=timing.median_rate(len(texts)), note=f"rounds: {len(timing.rounds)}",
                    **{"first job": timing.warmup[0]})
    section.agreement(result, ("fast", "numba"))
    section.measured(result)
    section.rounds = f"the median of interleaved rounds: {rounds}, of the whole corpus, after one warm-up run each"
    section.about = (f"all-MiniLM-L6-v2 Embedder (mean, normalized), batches of 32, on {describe(texts)}. Spark: "
                     "the texts in a cached DataFrame of 4 partitions per worker; each round runs "
                     "`bertnp.spark.with_embeddings` on it and collects the embeddings to the driver (one job). "
                     "`first job` is the warm-up run: it builds the DataFrame, Spark starts its Python workers and "
                     "each loads the model.")
    return section
