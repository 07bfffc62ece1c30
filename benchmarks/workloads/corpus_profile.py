"""Where the docstring corpus's time goes, bertnp fast against ONNX Runtime's fused graph: the corpus's own
batches grouped by padded length, then one short and one long batch op by op (ours by GEMM, ORT's own
profiler by op type). The corpus workload gives the target's figure; this one says which batches and ops
make it.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from harness import MINILM, Section
from workloads import corpus
from workloads.profile import op_tables

ENGINES = [("fast", "numba"), ("ort", "fused graph")]
BUCKETS = [(1, 16), (16, 24), (24, 32), (32, 48), (48, 64), (64, 128), (128, 257)]  # padded length T, [lo, hi)


def corpus_batches(texts):
    """The padded [32, T] batches that embed_sorted (and bertnp's run_sequences) run for the corpus."""
    from engines import sorted_batches, tokenizer

    return [(ids, mask) for _, ids, mask in sorted_batches(tokenizer(MINILM), texts)]


def time_batches(engine, batches) -> float:
    """In a worker: seconds to run engine.hidden on every batch, one after another."""
    start = time.perf_counter()
    for ids, mask in batches:
        engine.hidden(ids, mask)
    return time.perf_counter() - start


def run(bench):
    texts = corpus.load(bench.pick(2000, 200))
    batches = corpus_batches(texts)
    rounds = bench.pick(5, 2)
    section = Section("Where the docstring corpus's time goes (bertnp fast and ONNX Runtime)", [])
    with bench.engines(bench.skim(ENGINES), MINILM, section) as workers:
        fast = next((w for w in workers if w.key == "fast"), None)
        ort = next((w for w in workers if w.key == "ort"), None)
        if fast is None or ort is None:
            section.notes.append("bertnp fast or ONNX Runtime did not start: nothing to compare")
            return section
        for w in workers:  # the same warm-up: every batch once
            w.apply(time_batches, batches)
        rows, totals = [], {fast: 0.0, ort: 0.0}
        for lo, hi in BUCKETS:
            chosen = [b for b in batches if lo <= b[0].shape[1] < hi]
            if not chosen:
                continue
            times = {fast: [], ort: []}
            for r in range(rounds):  # interleaved, the first engine alternating
                for w in ([fast, ort] if r % 2 == 0 else [ort, fast]):
                    times[w].append(w.apply(time_batches, chosen))
            median = {w: statistics.median(t) for w, t in times.items()}
            for w in totals:
                totals[w] += median[w]
            tokens = sum(int(mask.sum()) for _, mask in chosen)
            rows.append((f"{lo}-{hi - 1}", len(chosen), tokens, median[fast], median[ort]))
            print(f"  T {lo}-{hi - 1}: fast {median[fast] * 1e3:.0f} ms, ORT {median[ort] * 1e3:.0f} ms", flush=True)
        section.markdown += [
            "### The corpus's batches by padded length", "",
            f"Every batch of {len(texts)} texts ({len(batches)} batches of 32, length-sorted, as `embed` runs "
            f"them): the forward pass to last_hidden_state on the padded batch, no tokenizer or pooling. Median "
            f"of {rounds} interleaved rounds per group of batches.", "",
            "| padded length T | batches | real tokens | bertnp fast ms | ORT ms | fast / ORT speed "
            "| share of fast's time |",
            "|---|---:|---:|---:|---:|---:|---:|"]
        for label, count, tokens, f, o in rows:
            section.markdown.append(f"| {label} | {count} | {tokens} | {f * 1e3:.0f} | {o * 1e3:.0f} | {o / f:.2f}x "
                                    f"| {100 * f / totals[fast]:.0f}% |")
        section.markdown.append(f"| all | {len(batches)} | {sum(r[2] for r in rows)} | {totals[fast] * 1e3:.0f} | "
                                f"{totals[ort] * 1e3:.0f} | {totals[ort] / totals[fast]:.2f}x | 100% |")
        short = [r for r in rows if r[4] / r[3] < 1.3]
        section.markdown += ["", f"Groups below 1.3x: {', '.join(r[0] for r in short) or 'none'}, "
                             f"{100 * sum(r[3] for r in short) / totals[fast]:.0f}% of bertnp fast's time.", ""]
        count = bench.pick(20, 3)  # op by op: a batch of the shortest group, and the longest batch
        for ids, mask in (batches[len(batches) // 8], batches[-1]):
            section.markdown += op_tables(fast, ort, ids, mask, count, f"One corpus batch, {ids.shape[0]}x"
                                          f"{ids.shape[1]} ({int(mask.sum())} real tokens)")
    section.rounds = (f"{rounds} interleaved rounds per group of batches, after one warm-up pass over every batch; "
                      f"op by op: {count} forwards per engine and batch")
    section.about = ("all-MiniLM-L6-v2 on the corpus workload's texts. Compare bertnp fast's GEMM rows with ORT's "
                     "MatMul + SkipLayerNormalization + BiasGelu and the part of Attention that is its QKV GEMM.")
    return section
