"""Where bertnp's time goes: self time per wrapped function on MiniLM 32x128 and on one text, by category, in a
worker. Also op-by-op tables of bertnp fast against ONNX Runtime (op_tables), which minilm_batch, bert_base
and corpus_profile use."""

from __future__ import annotations

import inspect
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict

import numpy as np

from harness import MINILM, Section
from workloads.minilm_batch import BATCH, SEQ, random_batch

CATEGORIES = [  # (category, name fragments), first match wins
    ("team hand-offs (publishing a job, waiting for the helpers' last blocks)", ("_wait", "_publish", "park",
                                                                                 "release", "_begin")),
    ("embeddings", ("embed",)),
    ("LayerNorm", ("norm",)),
    ("softmax", ("softmax",)),
    ("activation (GELU)", ("gelu", "erf", "polyval", "relu", "silu", "swish", "activation", "tanh")),
    ("attention: QK^T, PV, scale+mask, heads", ("attention", "attn", "heads", "mask", "relative", "score")),
    ("GEMM (linear layers)", ("linear", "gemm", "matmul", "dot", "dense")),
    ("pooler", ("pool",)),
]
GLUE = "glue in wrapped functions (layer loop, allocations, residual adds, scatter)"
OUTSIDE = "outside any op (input checks, Python call overhead)"
USER_LAYER = {"bertnp", "bertnp.bert", "bertnp.cli", "bertnp.config", "bertnp.errors", "bertnp.tokenizer",
              "bertnp.weights", "bertnp.embedder"}  # loading and input checks: their time shows up as OUTSIDE


def category(name: str) -> str:
    short = name.rsplit(".", 1)[-1].lower()
    for title, fragments in CATEGORIES:
        if any(f in short for f in fragments):
            return title
    return GLUE


class OpTimer:
    """Wraps module-level functions (and Numba dispatchers) of bertnp modules; self time per function.

    Each wrapper is installed wherever bertnp holds the original: module attributes and module-level
    dicts (model.ACTIVATIONS), so calls through any name are timed. Nested calls are subtracted.
    """

    def __init__(self):
        self.self_time, self.calls, self.stack, self.undo = defaultdict(float), Counter(), [], []

    def wrap(self, name, fn):
        stack, self_time, calls, clock = self.stack, self.self_time, self.calls, time.perf_counter
        caller = threading.get_ident()  # only the caller's calls: helper threads' work is in the caller's wall time

        def timed(*args, **kwargs):
            if threading.get_ident() != caller:
                return fn(*args, **kwargs)
            stack.append(0.0)
            start = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = clock() - start
                self_time[name] += elapsed - stack.pop()
                calls[name] += 1
                if stack:
                    stack[-1] += elapsed

        return timed

    def install(self, module_names) -> int:
        targets = {}
        for module_name in module_names:
            module = sys.modules.get(module_name)
            found = {}
            for attr, obj in list(vars(module).items()) if module else ():
                own = inspect.isfunction(obj) and obj.__module__ == module_name
                dispatcher = hasattr(obj, "py_func") and getattr(obj.py_func, "__module__", None) == module_name
                if (own or dispatcher) and id(obj) not in targets:
                    found[id(obj)] = (obj, self.wrap(f"{module_name}.{attr}", obj))
            targets.update(found)
            compiled = any(hasattr(obj, "py_func") for obj, _ in found.values())
            if module and getattr(module, "np", None) is np and not compiled:
                # GEMMs written inline as np.matmul(..., out=): timed through a stand-in `np`. Never in a module
                # of Numba kernels, which would read the stand-in if recompiled.
                self.undo.append((vars(module), "np", np))
                module.np = TimedNumpy(self, module_name)
        for name, holder in list(sys.modules.items()):
            if name != "bertnp" and not name.startswith("bertnp."):
                continue
            namespace = vars(holder)
            for attr, value in list(namespace.items()):
                if id(value) in targets and value is targets[id(value)][0]:
                    self.undo.append((namespace, attr, value))
                    namespace[attr] = targets[id(value)][1]
                elif isinstance(value, dict) and not attr.startswith("__"):
                    for key, item in list(value.items()):
                        if id(item) in targets and item is targets[id(item)][0]:
                            self.undo.append((value, key, item))
                            value[key] = targets[id(item)][1]
        return len(targets)

    def restore(self):
        for container, key, original in reversed(self.undo):
            container[key] = original
        self.undo.clear()


class TimedNumpy:
    """numpy, except that matmul and dot are timed as `<module>.np.matmul` / `.dot`."""

    def __init__(self, timer: OpTimer, module_name: str):
        self.matmul = timer.wrap(f"{module_name}.np.matmul", np.matmul)
        self.dot = timer.wrap(f"{module_name}.np.dot", np.dot)

    def __getattr__(self, name):
        return getattr(np, name)


def profile_forward(engine, ids, mask, count) -> dict:
    """In the worker: one untimed forward (compiles), then `count` forwards with every bertnp op wrapped."""
    import bertnp.fast

    bertnp.fast.REPLAY = False  # each job launched from Python, so that each is timed (the fast path replays
    engine.hidden(ids, mask)    # the same jobs in one compiled call: only Python between them differs)
    timer = OpTimer()
    try:
        # only modules already loaded: importing others could run their top-level code
        wrapped = timer.install(sorted(n for n in list(sys.modules) if n.startswith("bertnp.") and n not in USER_LAYER))
        start = time.perf_counter()
        for _ in range(count):
            engine.hidden(ids, mask)
        total = (time.perf_counter() - start) / count
    finally:
        timer.restore()
    functions = {name: (t / count, timer.calls[name] / count) for name, t in timer.self_time.items()}
    categories = defaultdict(float)
    for name, (t, _) in functions.items():
        categories[category(name)] += t
    categories[OUTSIDE] = total - sum(categories.values())
    return {"total": total, "categories": dict(categories), "functions": functions, "wrapped": wrapped}


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

    def attention_key(*args, **kwargs):
        return "attention (per sequence and head)"

    originals = [(gemm, "matmul", gemm.matmul), (team.Team, "attention", team.Team.attention),
                 (cpu, "attention", cpu.attention)]
    replay = bertnp.fast.REPLAY
    bertnp.fast.REPLAY = False
    engine.hidden(ids, mask)
    gemm.matmul = timed(gemm_key, gemm.matmul)
    team.Team.attention = timed(attention_key, team.Team.attention)
    cpu.attention = timed(attention_key, cpu.attention)
    try:
        start = time.perf_counter()
        for _ in range(count):
            engine.hidden(ids, mask)
        total = (time.perf_counter() - start) / count
    finally:
        for holder, name, fn in originals:
            setattr(holder, name, fn)
        bertnp.fast.REPLAY = replay
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
    runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])[-count:]
    ops, kept = defaultdict(float), len(runs)
    for e in events:  # the kernels of the timed runs (the two warm-up runs came first)
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= runs[0]["ts"]:
            ops[e["args"]["op_name"]] += e["dur"] / 1e6 / kept
    total = sum(e["dur"] for e in runs) / 1e6 / kept
    small = [k for k, v in ops.items() if v < 0.005 * total]  # Shape, Gather, Cast, ...: one line for them all
    ops["other ops (" + ", ".join(sorted(small)) + ")"] = sum(ops.pop(k) for k in small)
    ops["between ops"] = total - sum(ops.values())
    return {"total": total, "ops": ops}


def op_tables(fast, ort, ids, mask, count, title) -> list:
    """Markdown: ms per forward op by op, bertnp fast (fast_ops) and ONNX Runtime (ort_ops) on one batch,
    each in its engine's worker."""
    ours, theirs = fast.apply(fast_ops, ids, mask, count), ort.apply(ort_ops, ids, mask, count)
    lines = [f"### {title}, op by op", "",
             f"ms per forward, {count} forward{'s' * (count != 1)} each; bertnp fast {ours['total'] * 1e3:.1f} ms "
             f"(its jobs launched one by one from Python), ORT {theirs['total'] * 1e3:.1f} ms (as its profiler times "
             "the runs). ORT's ops are its fused graph's: Attention includes the QKV GEMM, SkipLayerNormalization "
             "the residual add, BiasGelu the bias, and MatMul the other three GEMMs; bertnp fast fuses each bias, "
             "GELU and LayerNorm into its GEMM's blocks.", "", "| engine | op | ms | share |", "|---|---|---:|---:|"]
    for name, data in (("bertnp fast", ours), ("ONNX Runtime", theirs)):
        for op, t in sorted(data["ops"].items(), key=lambda kv: -kv[1]):
            lines.append(f"| {name} | {op} | {t * 1e3:.2f} | {100 * t / data['total']:.0f}% |")
    return lines + [""]


def one_text():
    """minilm_latency's text as one [1, 16] batch of ids and its mask."""
    from engines import tokenizer
    from workloads.minilm_latency import TEXT

    ids = np.array([tokenizer(MINILM).encode(TEXT).ids], np.int64)
    return ids, np.ones_like(ids), f"one {ids.shape[1]}-token text"


def run(bench):
    section = Section(f"Per-op profile, MiniLM-L6 {BATCH}x{SEQ} and one text (ms per forward)", [])
    setups = [(*random_batch(MINILM), f"{BATCH}x{SEQ}", {"fast": bench.pick(5, 2), "reference": bench.pick(2, 1)}),
              (*one_text(), {"fast": bench.pick(300, 50), "reference": bench.pick(20, 5)})]
    with bench.engines(bench.skim([("fast", "numba"), ("reference", "numpy")]), MINILM, section) as workers:
        for ids, mask, shape, count in setups:
            for w in workers:
                data = w.apply(profile_forward, ids, mask, count[w.key])
                total = data["total"]
                print(f"  profile {w.title}, {shape}: {total * 1e3:.2f} ms per forward", flush=True)
                section.markdown += [f"### {w.title}, {shape}", "", f"{total * 1e3:.2f} ms per forward "
                                     f"({count[w.key]} forwards, {data['wrapped']} functions wrapped).", "",
                                     "| category | ms | share |", "|---|---:|---:|"]
                for title, t in sorted(data["categories"].items(), key=lambda kv: -kv[1]):
                    section.markdown.append(f"| {title} | {t * 1e3:.3f} | {100 * t / total:.1f}% |")
                section.markdown += ["", "| function | calls per forward | ms | share |", "|---|---:|---:|---:|"]
                for name, (t, calls) in sorted(data["functions"].items(), key=lambda kv: -kv[1][0]):
                    section.markdown.append(f"| {name} | {calls:.0f} | {t * 1e3:.3f} | {100 * t / total:.1f}% |")
                section.markdown.append("")
    section.rounds = "; ".join(f"{shape}: bertnp fast {count['fast']} forwards" +
                               ("" if bench.quick else f", bertnp reference {count['reference']}, after it")
                               for _, _, shape, count in setups)
    section.about = ("Self time of each function of the loaded bertnp modules (bertnp.model, bertnp.fast, "
                     "bertnp.kernels.*, ...), wrapped in the worker after one untimed forward, summed by "
                     "category; calls nested in another wrapped function count for the inner one only. Work "
                     "inside compiled (Numba) code counts for the Python-level function that launched it, the "
                     "helper threads' share of a job included (only the calling thread's calls are timed). "
                     "bertnp fast runs each GEMM's bias + activation and bias + residual + LayerNorm inside the "
                     "GEMM's blocks (kernels.gemm), so they count as GEMM there. The fast path runs the layers' "
                     "jobs in one compiled call (a recorded plan); here they run one by one from Python, so that "
                     "each is timed, with the Python between them that the plan saves. The one text is "
                     "minilm_latency's, its forward pass only (no tokenizer, no pooling).")
    return section
