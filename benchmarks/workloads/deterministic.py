"""What deterministic mode costs: the docstring corpus with deterministic=True against the default."""

from __future__ import annotations

from harness import MINILM, Column, Section, interleave
from workloads.corpus import describe, load, warmup_sample


def run(bench):
    texts = load(bench.pick(2000, 200))
    rounds = bench.pick(3, 2)
    section = Section("Deterministic mode: corpus throughput", [Column("throughput", "texts/s", True)])
    with bench.engines([("fast", "numba"), ("fast", "deterministic")], MINILM, section) as workers:
        result = interleave(workers, "embed", (texts,), rounds, warmup=1, warmup_args=(warmup_sample(texts),))
    for worker, timing in result.timings.items():
        section.add(worker, throughput=timing.median_rate(len(texts)), note=f"rounds: {len(timing.rounds)}")
    section.agreement(result, ("fast", "numba"))
    section.measured(result)
    section.rounds = (f"the median of interleaved rounds: {rounds}, of the whole corpus, after the corpus workload's "
                      "warm-up")
    section.about = (f"The corpus workload's texts ({describe(texts)}) through bertnp fast, "
                     "`Embedder(deterministic=False)` and `deterministic=True`. The ratio column is the cost; "
                     "the diff is against the default mode's output.")
    return section
