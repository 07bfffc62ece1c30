"""Where the docstring corpus's time goes, bertnp fast against ONNX Runtime's fused graph: the corpus's own
batches grouped by padded length, then one short and one long batch op by op (ours by GEMM, ORT's own
profiler by op type). The corpus workload gives the target's figure; this one says which batches and ops
make it.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections import defaultdict

import numpy as np

from harness import MINILM, Section
from workloads import corpus

ENGINES = [("fast", "numba"), ("ort", "fused graph")]
BUCKETS = [(1, 16), (16, 24), (24, 32), (32, 48), (48, 64), (64, 128), (128, 257)]  # padded length T, [lo, hi)


def corpus_batches(texts):
    """The padded [32, T] batches that embed_sorted (and bertnp's run_sequences) run for the corpus."""
    from engines import BATCH_SIZE, padded, tokenizer

    encodings = tokenizer(MINILM).encode_batch(texts)
    order = np.argsort([len(e.ids) for e in encodings], kind="stable")
    return [padded([encodings[i] for i in order[s : s + BATCH_SIZE]]) for s in range(0, len(order), BATCH_SIZE)]


def time_batches(engine, batches) -> float:
    """In a worker: seconds to run engine.hidden on every batch, one after another."""
    start = time.perf_counter()
    for ids, mask in batches:
        engine.hidden(ids, mask)
    return time.perf_counter() - start


def fast_ops(engine, ids, mask, count) -> dict:
    """In bertnp fast's worker: ms per forward of each GEMM (by its shape and the row kernel fused into it)
    and of attention, the layers' jobs launched from Python one by one (bertnp.fast.REPLAY = False), so
    that each is timed; the helper threads' share of a job counts in the caller's wall time."""
    import bertnp.fast
    from bertnp.kernels import cpu, gemm, team

    spent = defaultdict(float)

    def timed(key_of, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key_of(*args, **kwargs)] += time.perf_counter() - start
        return wrapper

    def gemm_key(a, panels, out, *args, **kwargs):
        then = " + GELU" if kwargs.get("activation") is not None else \
            " + residual + LayerNorm" if kwargs.get("residual") is not None else ""
        return f"GEMM [M, {a.shape[1]}] @ [{a.shape[1]}, {out.shape[1]}]{then}"

    originals = [(gemm, "matmul", gemm.matmul), (team.Team, "attention", team.Team.attention),
                 (cpu, "attention", cpu.attention)]
    bertnp.fast.REPLAY = False
    engine.hidden(ids, mask)
    gemm.matmul = timed(gemm_key, gemm.matmul)
    team.Team.attention = timed(lambda *a, **k: "attention (per sequence and head)", team.Team.attention)
    cpu.attention = timed(lambda *a, **k: "attention (per sequence and head)", cpu.attention)
    try:
        start = time.perf_counter()
        for _ in range(count):
            engine.hidden(ids, mask)
        total = (time.perf_counter() - start) / count
    finally:
        for holder, name, fn in originals:
            setattr(holder, name, fn)
        bertnp.fast.REPLAY = True
    ops = {k: v / count for k, v in spent.items()}
    ops["everything else (embeddings, packing, scatter, Python)"] = total - sum(ops.values())
    return {"total": total, "ops": ops}


def ort_ops(engine, ids, mask, count) -> dict:
    """In ORT's worker: a second session on the same graph and options, with ORT's profiler on; ms per run
    of each op type (its kernels' own time), and of the run as a whole."""
    import onnxruntime as ort

    options = engine.options
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(tempfile.mkdtemp(prefix="bertnp-ortprof-"), "ort")
    session = ort.InferenceSession(engine.graph, options, providers=["CPUExecutionProvider"])
    options.enable_profiling = False
    feeds = {"input_ids": ids, "attention_mask": mask}
    session.run(None, feeds)
    session.run(None, feeds)
    for _ in range(count):
        session.run(None, feeds)
    with open(session.end_profiling()) as f:
        events = json.load(f)
    runs = [e["dur"] for e in events if e.get("name") == "model_run"][-count:]
    ops, kept = defaultdict(float), len(runs)
    last_runs_start = sorted(e["ts"] for e in events if e.get("name") == "model_run")[-count]
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= last_runs_start:
            ops[e["args"]["op_name"]] += e["dur"] / 1e6 / kept
    total = sum(runs) / 1e6 / kept
    small = [k for k, v in ops.items() if v < 0.005 * total]  # Shape, Gather, Cast, ...: one line for them all
    ops["other ops (" + ", ".join(sorted(small)) + ")"] = sum(ops.pop(k) for k in small)
    ops["between ops"] = total - sum(ops.values())
    return {"total": total, "ops": ops}


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
            "| padded length T | batches | real tokens | bertnp fast ms | ORT ms | fast / ORT speed | share of fast's time |",
            "|---|---:|---:|---:|---:|---:|---:|"]
        for label, count, tokens, f, o in rows:
            section.markdown.append(f"| {label} | {count} | {tokens} | {f * 1e3:.0f} | {o * 1e3:.0f} | {o / f:.2f}x "
                                    f"| {100 * f / totals[fast]:.0f}% |")
        section.markdown.append(f"| all | {len(batches)} | {sum(r[2] for r in rows)} | {totals[fast] * 1e3:.0f} | "
                                f"{totals[ort] * 1e3:.0f} | {totals[ort] / totals[fast]:.2f}x | 100% |")
        short = [r for r in rows if r[4] / r[3] < 1.3]
        section.markdown += ["", f"Groups below 1.3x: {', '.join(r[0] for r in short) or 'none'}, "
                             f"{100 * sum(r[3] for r in short) / totals[fast]:.0f}% of bertnp fast's time.", ""]
        # op by op: the shortest batch of the shortest group, and the longest batch
        count = bench.pick(20, 3)
        for ids, mask in (batches[len(batches) // 8], batches[-1]):
            shape = f"{ids.shape[0]}x{ids.shape[1]} ({int(mask.sum())} real tokens)"
            ours, theirs = fast.apply(fast_ops, ids, mask, count), ort.apply(ort_ops, ids, mask, count)
            section.markdown += [f"### One corpus batch, {shape}, op by op", "",
                                 f"ms per forward, {count} forwards each; bertnp fast {ours['total'] * 1e3:.1f} ms "
                                 f"(its jobs launched one by one from Python), ORT {theirs['total'] * 1e3:.1f} ms "
                                 "(as its profiler times the runs).", "",
                                 "| engine | op | ms | share |", "|---|---|---:|---:|"]
            for title, data in (("bertnp fast", ours), ("ONNX Runtime", theirs)):
                for op, t in sorted(data["ops"].items(), key=lambda kv: -kv[1]):
                    section.markdown.append(f"| {title} | {op} | {t * 1e3:.2f} | {100 * t / data['total']:.0f}% |")
            section.markdown.append("")
    section.rounds = (f"{rounds} interleaved rounds per group of batches, after one warm-up pass over every batch; "
                      f"op by op: {count} forwards per engine and batch")
    section.about = ("all-MiniLM-L6-v2 on the corpus workload's texts. ORT's ops are its fused graph's: Attention "
                     "includes the QKV GEMM, SkipLayerNormalization the residual add, BiasGelu the bias, and MatMul "
                     "the other three GEMMs; bertnp fast fuses each bias, GELU and LayerNorm into its GEMM's blocks. "
                     "Compare the GEMM rows with ORT's MatMul + SkipLayerNormalization + BiasGelu and the part of "
                     "Attention that is its QKV GEMM.")
    return section
