"""MiniLM-L6 32x128 throughput: one batch of random ids, full mask, through every engine's forward pass; then
bertnp fast and ORT's fused graph op by op."""

from __future__ import annotations

import json

import numpy as np

from harness import MINILM, Column, Section, Target, interleave

BATCH, SEQ = 32, 128
ENGINES = [("fast", "numba"), ("reference", "numpy"), ("torch", "sdpa"), ("ort", "plain graph"),
           ("ort", "fused graph")]


def random_batch(checkpoint, seed=0):
    """[32, 128] ids from the ordinary word pieces, [CLS] first and [SEP] last; a full mask."""
    vocab = json.loads((checkpoint / "config.json").read_text())["vocab_size"]
    ids = np.random.default_rng(seed).integers(1000, vocab, (BATCH, SEQ), dtype=np.int64)
    ids[:, 0], ids[:, -1] = 101, 102
    return ids, np.ones_like(ids)


def throughput(bench, section, checkpoint, engines, rounds, warmup, reference_rounds, ops=0):
    """section += one row per engine: sequences/s, the median over interleaved rounds of one batch each.
    ops: that many forwards more of bertnp fast and ORT's fused graph, op by op (workloads.profile.op_tables)."""
    from workloads.profile import op_tables  # which imports this module

    ids, mask = random_batch(checkpoint)
    with bench.engines(engines, checkpoint, section) as workers:
        result = interleave(workers, "hidden", (ids, mask), rounds, warmup=warmup,
                            caps={"reference": reference_rounds})
        found = {(w.key, w.variant): w for w in workers}
        if ops and ("fast", "numba") in found and ("ort", "fused graph") in found:
            section.markdown += op_tables(found["fast", "numba"], found["ort", "fused graph"], ids, mask, ops,
                                          f"{BATCH}x{SEQ}")
    for worker, timing in result.timings.items():
        rates = [BATCH / t for t in timing.per_round()]
        section.add(worker, throughput=timing.median_rate(BATCH),
                    note=f"rounds: {len(rates)}, range {min(rates):.3g}-{max(rates):.3g}")
    section.agreement(result, ("torch", "sdpa"), ("ort", "plain graph"))
    section.measured(result)
    section.rounds = (f"the median of interleaved rounds (rounds per engine in the notes) of one {BATCH}x{SEQ} "
                      f"forward pass each, after the same warm-up for every engine: passes: {warmup}")
    section.about = (f"Random ids in [1000, vocab), [CLS] first, [SEP] last, full mask, float32. Timed: the "
                     "forward pass to last_hidden_state (no tokenizer). The diff is over last_hidden_state "
                     f"[{BATCH}, {SEQ}, H].")
    return section


def run(bench):
    section = Section("MiniLM-L6 32x128 throughput", [Column("throughput", "seq/s", True)])
    throughput(bench, section, MINILM, bench.skim(ENGINES), bench.pick(9, 3), 2, bench.pick(3, 1), ops=bench.pick(5, 1))
    section.targets.append(Target("MiniLM 32x128 >= 1.2x ORT", "throughput", 1.2,
                                  profile=f"the op-by-op table in \"{section.title}\""))
    return section
