"""The busy machine: one text's p50/p95 and 32x128 throughput, bertnp fast and ORT, while CPU-bound
background processes (one per core, started and stopped by this workload) compete for every core."""

from __future__ import annotations

from harness import CORES, MINILM, Column, Section, Target, busy_machine, interleave
from workloads.minilm_batch import BATCH, SEQ, random_batch
from workloads.minilm_latency import TEXT

ENGINES = [("fast", "numba"), ("ort", "plain graph"), ("ort", "fused graph")]
COLUMNS = [Column("p95", "ms", False), Column("p50", "ms", False), Column("throughput", "seq/s", True)]


def run(bench):
    section = Section("Busy machine: one text and 32x128 with every core taken", COLUMNS)
    section.background = CORES
    ids, mask = random_batch(MINILM)
    rounds, calls, batch_rounds = bench.pick(10, 3), bench.pick(30, 15), bench.pick(5, 2)
    with bench.engines(ENGINES, MINILM, section) as workers:
        for w in workers:  # the same warm-up as the idle workloads, on the idle machine
            w.time("embed", ([TEXT],), 20)
            w.time("hidden", (ids, mask), 2)
        with busy_machine(CORES):
            latency = interleave(workers, "embed", ([TEXT],), rounds, calls=calls, warmup=0)
            batches = interleave(workers, "hidden", (ids, mask), batch_rounds, warmup=0)
    for worker, timing in latency.timings.items():
        section.add(worker, p95=timing.percentile(95) * 1e3, p50=timing.percentile(50) * 1e3,
                    throughput=batches.timings[worker].median_rate(BATCH),
                    note=f"one-text calls: {len(timing.calls())}")
    section.measured(latency)
    section.measured(batches)
    section.rounds = (f"one text: interleaved rounds: {rounds}, of {calls} calls per engine, p50/p95 over all "
                      f"calls; {BATCH}x{SEQ}: the median of interleaved rounds: {batch_rounds}; warm-up on the idle "
                      "machine first")
    section.about = (f"The workload starts {CORES} background processes (`python -c \"while True: pass\"`, one "
                     "per core, same priority), waits a second, times the engines interleaved, then stops them. "
                     "The one-text and 32x128 calls are those of the idle workloads above.")
    section.targets += [Target("busy machine: one text p95 <= 1.5x ORT's", "p95", 1.5),
                        Target("busy machine: 32x128 throughput >= ORT's", "throughput", 1.0)]
    return section
