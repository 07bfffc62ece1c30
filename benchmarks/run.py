"""bertnp against its peers, on the same inputs, in one process; writes benchmarks/RESULTS.md.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py [--quick] [--only NAME]
        [--skip-reference] [--profile] [--wait-idle SECONDS] [--output PATH]

Engines: bertnp fast (backend="numba"), bertnp reference (backend="numpy"), transformers on torch (eager and
sdpa attention, the faster one counts), ONNX Runtime (the same weights exported with torch.onnx; the plain
export and the onnxruntime.transformers fused graph, the faster one counts). float32, every engine on all
cores. Workloads (names for --only):

    minilm_batch    all-MiniLM-L6-v2, 32 x 128 random ids, full mask           sequences/s
    minilm_latency  all-MiniLM-L6-v2, one 16-token text, mean pooled          ms (median)
    corpus          ~2000 stdlib docstring paragraphs (corpus.py), mean pooled texts/s
    bert_base       BERT-base shape, random weights, 32 x 128                  sequences/s
    cold_start      new process: import -> first embedding of one sentence    s, peak RSS MiB
    profile         (with --profile) bertnp time per op on minilm_batch        ms per forward

Ratios are "times better for bertnp fast": peer / fast for times and memory, fast / peer for throughputs.
"""

from __future__ import annotations

import os
import sys

BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# OpenBLAS reads these when numpy is imported, so they are checked first: on these machines they force
# Haswell kernels (AVX2) on an AVX-512 CPU, which halves sgemm speed for bertnp and numpy alike.
BLAS_ENV_SET = {name: os.environ[name] for name in BLAS_ENV if name in os.environ}
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every checkpoint here is a local folder
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

import argparse  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import importlib  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import pkgutil  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MINILM = ROOT / "weights" / "minilm"
sys.path.insert(0, str(HERE))
import corpus  # noqa: E402

CORES = len(os.sched_getaffinity(0))
BATCH, SEQ = 32, 128
MAX_LENGTH = 256  # corpus truncation, the same for every engine
LATENCY_TEXT = "A small model turns each sentence into a vector that captures its meaning."  # 16 tokens
COLD_TEXT = "The quick brown fox jumps over the lazy dog."
BERT_BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072)
WORKLOADS = ("minilm_batch", "minilm_latency", "corpus", "bert_base", "cold_start", "profile")
ENGINES = ("fast", "reference", "torch", "ort")
ENGINE_TITLES = {"fast": "bertnp fast", "reference": "bertnp reference", "torch": "transformers (torch)",
                 "ort": "ONNX Runtime"}
# (workload, what is compared, needed): a ratio against ORT measured in this run, or an absolute limit.
TARGETS = [
    ("minilm_batch", "ratio", 1.2, "MiniLM 32x128 >= 1.2x ORT"),
    ("minilm_latency", "ratio", 1.0, "one 16-token text <= ORT's ms"),
    ("corpus", "ratio", 1.3, "docstring corpus >= 1.3x ORT"),
    ("bert_base", "ratio", 1.1, "BERT-base 32x128 >= 1.1x ORT"),
    ("cold_start", "limit", 0.4, "cold start <= 0.4 s"),
    ("cold_start_rss", "limit", 200.0, "cold start peak RSS <= 200 MiB"),
]


# ---- results -------------------------------------------------------------------------------------------


@dataclass
class Figure:
    engine: str  # one of ENGINES
    variant: str  # e.g. "sdpa", "fused graph"
    value: float | None  # None: not measured
    diff: float | None = None  # max abs difference from torch eager on the same inputs
    note: str = ""
    background: float | None = None  # cores other processes kept busy during the measurement


NOISY = 0.1  # cores busy in other processes above which a figure is marked as disturbed


def noisy_figure(figure) -> bool:
    return figure.background is not None and figure.background > NOISY


@dataclass
class Result:
    name: str
    title: str
    unit: str
    higher_is_better: bool
    figures: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    seconds: float = 0.0  # how long the workload took, waiting for an idle machine included

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        value = "n/a" if figure.value is None else f"{figure.value:.4g} {self.unit}"
        noisy = f"  [NOISY: other processes kept {figure.background:.2f} cores busy]" if noisy_figure(figure) else ""
        print(f"  {ENGINE_TITLES[figure.engine]:22} {figure.variant:21} {value:>16}  {figure.note}{noisy}", flush=True)
        return figure

    def best(self, engine: str) -> Figure | None:
        measured = [f for f in self.figures if f.engine == engine and f.value is not None]
        if not measured:
            return None
        pick = max if self.higher_is_better else min
        return pick(measured, key=lambda f: f.value)

    def ratio(self, engine: str) -> float | None:
        """How many times better bertnp fast is than `engine` (>1: fast wins)."""
        fast, other = self.best("fast"), self.best(engine)
        if fast is None or other is None or not fast.value or not other.value:
            return None
        return fast.value / other.value if self.higher_is_better else other.value / fast.value


def agreement(result: Result, outputs: dict):
    """Each figure's max abs difference from torch eager's output on the same inputs; printed."""
    truth = outputs.get(("torch", "eager"))
    for figure in result.figures:
        figure.diff = max_diff(outputs.get((figure.engine, figure.variant)), truth)
    print("  max abs diff vs torch eager: " + ", ".join(
        f"{ENGINE_TITLES[f.engine]} {f.variant} {f.diff:.1e}" for f in result.figures if f.diff is not None))


def median_time(fn, warmup: int, reps: int):
    """(median seconds of `reps` timed calls after `warmup` untimed ones, the last output)."""
    out = None
    for _ in range(warmup):
        out = fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


WAIT_IDLE = {"seconds": 0.0}  # --wait-idle


def settle():
    """Before a measurement: let the previous engine's spinning threads (OpenMP, OpenBLAS, ORT) go to sleep,
    and with --wait-idle, wait (up to that long) for other processes to leave the machine idle.

    Returns a stopwatch for `background_since`.
    """
    gc.collect()
    time.sleep(0.5)
    deadline = time.perf_counter() + WAIT_IDLE["seconds"]
    while time.perf_counter() < deadline and background_load(0.5) > NOISY:
        pass
    return other_busy_seconds(), time.perf_counter()


def background_since(stopwatch) -> float:
    """Cores other processes kept busy since `settle` returned `stopwatch`."""
    busy, start = stopwatch
    return (other_busy_seconds() - busy) / max(time.perf_counter() - start, 1e-9)


RETRIES = 2  # with --wait-idle: how many more times a disturbed measurement is taken


def quietest(measure):
    """(measure()'s result, cores other processes kept busy meanwhile), after `settle`.

    With --wait-idle, a measurement that other processes disturbed is taken again (RETRIES times at most)
    and the least disturbed one is kept.
    """
    kept = None
    for _ in range(1 + (RETRIES if WAIT_IDLE["seconds"] else 0)):
        stopwatch = settle()
        value = measure()
        load = background_since(stopwatch)
        if kept is None or load < kept[1]:
            kept = (value, load)
        if load <= NOISY:
            break
    return kept


def max_diff(a, b) -> float | None:
    if a is None or b is None:
        return None
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# ---- engines -------------------------------------------------------------------------------------------


def bertnp_has_backends() -> bool:
    import bertnp

    return "backend" in inspect.signature(bertnp.load).parameters


def load_bertnp(folder, engine: str):
    """bertnp fast (backend="numba") or reference (backend="numpy", or the only path before backends)."""
    import bertnp

    if bertnp_has_backends():
        return bertnp.load(folder, dtype="float32", backend="numba" if engine == "fast" else "numpy")
    if engine == "fast":
        raise RuntimeError("bertnp.load has no backend argument yet: the Numba fast path has not landed")
    return bertnp.load(folder, dtype="float32")


def fast_status() -> str | None:
    """None when the fast path loads; else why not, shown in place of its figures."""
    try:
        load_bertnp(MINILM, "fast")
    except Exception as e:  # anything: the fast path is optional until it lands
        return f"{type(e).__name__}: {e}"
    return None


def rust_tokenizer(folder, max_length=MAX_LENGTH):
    """The checkpoint's tokenizer.json through `tokenizers`, truncating, not padding (we pad per batch)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
    tok.enable_truncation(max_length)
    tok.no_padding()
    return tok


def padded(encodings):
    """tokenizers Encodings -> int64 input_ids, attention_mask, token_type_ids [b, longest]."""
    T = max(len(e.ids) for e in encodings)
    ids, mask, types = (np.zeros((len(encodings), T), np.int64) for _ in range(3))
    for row, e in enumerate(encodings):
        n = len(e.ids)
        ids[row, :n], mask[row, :n], types[row, :n] = e.ids, 1, e.type_ids
    return ids, mask, types


def mean_pool(h, mask):
    """[b, T, H], [b, T] -> [b, H]: sentence-transformers' mean over real tokens."""
    m = mask[:, :, None].astype(h.dtype)
    return (h * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)


def l2_normalize(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class Bertnp:
    def __init__(self, folder, engine):
        self.model = load_bertnp(folder, engine)

    def hidden(self, ids, mask):
        return self.model(input_ids=ids, attention_mask=mask, token_type_ids=np.zeros_like(ids)).last_hidden_state

    def embed(self, texts, normalize=False):
        return self.model.embed(texts, pooling="mean", normalize=normalize, batch_size=32, max_length=MAX_LENGTH)


class Torch:
    """transformers' BertModel on torch, inference mode, with the given attention implementation."""

    def __init__(self, folder, attn):
        import transformers

        self.model = transformers.BertModel.from_pretrained(str(folder), attn_implementation=attn).eval()
        self.tokenizer = rust_tokenizer(folder) if (Path(folder) / "tokenizer.json").exists() else None

    def hidden(self, ids, mask):
        import torch

        with torch.inference_mode():
            out = self.model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                             token_type_ids=torch.from_numpy(np.zeros_like(ids)))
        return out.last_hidden_state.numpy()

    def embed(self, texts, normalize=False):
        import torch

        ids, mask, types = padded(self.tokenizer.encode_batch(texts))
        with torch.inference_mode():
            h = self.model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                           token_type_ids=torch.from_numpy(types)).last_hidden_state
            m = torch.from_numpy(mask)[:, :, None].to(h.dtype)
            pooled = ((h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)).numpy()
        return l2_normalize(pooled) if normalize else pooled


class SentenceTransformers:
    """The peers' usual way to embed a corpus: encode() sorts by length and batches."""

    def __init__(self, folder, attn):
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(folder), device="cpu", model_kwargs={"attn_implementation": attn})
        self.model.max_seq_length = MAX_LENGTH

    def embed(self, texts, normalize=False):
        return self.model.encode(texts, batch_size=32, show_progress_bar=False, convert_to_numpy=True,
                                 normalize_embeddings=normalize)


def ort_session(onnx_path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = CORES
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


class Ort:
    """ONNX Runtime on an exported graph; texts are length-sorted, batched by 32, mean-pooled in NumPy."""

    def __init__(self, onnx_path, tokenizer_folder=None):
        self.session = ort_session(onnx_path)
        self.tokenizer = rust_tokenizer(tokenizer_folder) if tokenizer_folder else None

    def hidden(self, ids, mask):
        return self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]

    def embed(self, texts, normalize=False, batch_size=32):
        encodings = self.tokenizer.encode_batch(texts)
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        result = None
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            ids, mask, _ = padded([encodings[i] for i in rows])
            pooled = mean_pool(self.hidden(ids, mask), mask)
            if result is None:
                result = np.empty((len(texts), pooled.shape[1]), pooled.dtype)
            result[rows] = pooled
        return l2_normalize(result) if normalize else result


# ---- ONNX export ---------------------------------------------------------------------------------------


class OnnxGraphs:
    """Exports each checkpoint once (plain, and fused by onnxruntime.transformers) into a temp folder."""

    def __init__(self, folder: Path, notes: list):
        self.folder = folder
        self.notes = notes
        self.graphs = {}

    def get(self, checkpoint: Path, key: str, heads: int, hidden: int) -> dict:
        """{"plain graph": path, "fused graph": path (when fusion worked)}."""
        if key not in self.graphs:
            self.graphs[key] = self._export(checkpoint, key, heads, hidden)
        return self.graphs[key]

    def _export(self, checkpoint, key, heads, hidden):
        import torch
        import transformers

        plain = self.folder / f"{key}.onnx"
        # A fresh instance, and eval() on the wrapper too: the TorchScript exporter restores the wrapper's
        # training flag on every submodule after export, which would leave dropout on in a shared model.
        model = transformers.BertModel.from_pretrained(str(checkpoint), attn_implementation="eager").eval()
        wrapper = LastHiddenState(model).eval()
        ids = torch.full((2, 16), 1000, dtype=torch.long)
        mask = torch.ones_like(ids)
        mask[1, 10:] = 0  # a padded example, so that the traced graph keeps the masking branch
        axes = {0: "batch", 1: "sequence"}
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.onnx.export(wrapper, (ids, mask), str(plain), dynamo=False, opset_version=17,
                              input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
                              dynamic_axes={"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes})
        seconds = time.perf_counter() - start
        messages = sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0][:90]}..." for w in caught})
        self.notes.append(f"{key}: torch.onnx.export (TorchScript exporter, dynamo=False, opset 17, dynamic batch "
                          f"and sequence) took {seconds:.1f} s, {plain.stat().st_size / 2**20:.0f} MiB; "
                          f"warnings: " + ("; ".join(messages) if messages else "none"))
        del model, wrapper
        graphs = {"plain graph": plain}
        fused = self.folder / f"{key}-fused.onnx"
        try:
            from onnxruntime.transformers import optimizer

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                optimized = optimizer.optimize_model(str(plain), model_type="bert", num_heads=heads,
                                                     hidden_size=hidden, opt_level=0)
            stats = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
            optimized.save_model_to_file(str(fused))
            graphs["fused graph"] = fused
            self.notes.append(f"{key}: onnxruntime.transformers optimizer (model_type=bert, opt_level=0, then "
                              f"ORT_ENABLE_ALL at load) fused {stats}")
        except Exception as e:  # the fused graph is a bonus; the plain export still runs
            self.notes.append(f"{key}: onnxruntime.transformers optimizer failed: {type(e).__name__}: {e}")
        return graphs


EXPORT_NOTES = [
    "The TracerWarning comes from transformers' masking_utils (a check on the mask's length against the key "
    "length, constant for these graphs); the graph is traced with a padded example so the masking stays in it, "
    "and the corpus workload (padded batches) checks it against torch",
    "Pitfall met while writing this script: after export the TorchScript exporter sets every submodule to the "
    "wrapper's own training flag; a wrapper left in train mode turns dropout back on in the BertModel it wraps "
    "(torch outputs then differ by ~2). The script exports from a fresh model and calls eval() on the wrapper",
]


def LastHiddenState(model):
    import torch

    class Wrapper(torch.nn.Module):
        """forward(input_ids, attention_mask) passed to BertModel by keyword, returning last_hidden_state."""

        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    return Wrapper(model)


# ---- workloads -----------------------------------------------------------------------------------------


@dataclass
class Run:
    args: argparse.Namespace
    fast_missing: str | None
    onnx: OnnxGraphs
    workdir: Path
    results: dict = field(default_factory=dict)
    profiles: list = field(default_factory=list)
    threads: dict = field(default_factory=dict)

    def reps(self, full: int, quick: int) -> int:
        return quick if self.args.quick else full

    def engines(self, names=ENGINES):
        for name in names:
            if name == "reference" and self.args.skip_reference:
                continue
            yield name


def random_batch(vocab_size, seed=0):
    """32 x 128 ids from the ordinary word pieces, [CLS] ... [SEP], full mask."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, vocab_size, (BATCH, SEQ), dtype=np.int64)
    ids[:, 0], ids[:, -1] = 101, 102
    return ids, np.ones_like(ids)


def fixed_batch(run: Run, result: Result, checkpoint: Path, key: str, heads: int, hidden: int, reps: dict):
    """One [32, 128] batch through every engine: sequences/s and agreement with torch eager."""
    vocab = json.loads((checkpoint / "config.json").read_text())["vocab_size"]
    ids, mask = random_batch(vocab)
    outputs = {}  # (engine, variant) -> last_hidden_state, compared with torch eager's at the end

    def measure(engine, variant, make, warmup, count):
        try:
            runner = make()
            (seconds, outputs[engine, variant]), load = quietest(
                lambda: median_time(lambda: runner.hidden(ids, mask), warmup, count))
        except Exception as e:
            result.add(Figure(engine, variant, None, note=f"failed: {type(e).__name__}: {e}"))
            return
        result.add(Figure(engine, variant, BATCH / seconds, note=f"median of {count}", background=load))

    for variant in ("eager", "sdpa"):
        measure("torch", variant, lambda v=variant: Torch(checkpoint, v), 1, reps["torch"])
    if run.fast_missing:
        result.add(Figure("fast", "numba", None, note="n/a: " + run.fast_missing))
    else:
        measure("fast", "numba", lambda: Bertnp(checkpoint, "fast"), 2, reps["fast"])
    if not run.args.skip_reference:
        measure("reference", "numpy", lambda: Bertnp(checkpoint, "reference"), run.reps(1, 0), reps["reference"])
    for variant, path in run.onnx.get(checkpoint, key, heads, hidden).items():
        measure("ort", variant, lambda p=path: Ort(p), 1, reps["ort"])
    agreement(result, outputs)
    result.notes.append(f"random ids in [1000, {vocab}), [CLS] first and [SEP] last, full mask; max|diff| is "
                        f"over last_hidden_state [32, 128, H] against torch eager")


def minilm_batch(run: Run) -> list:
    result = Result("minilm_batch", "MiniLM-L6 32x128", "seq/s", True)
    fixed_batch(run, result, MINILM, "minilm", 12, 384,
                {"torch": run.reps(5, 2), "fast": run.reps(10, 3), "reference": run.reps(3, 1), "ort": run.reps(10, 3)})
    return [result]


def bert_base(run: Run) -> list:
    import torch
    import transformers

    result = Result("bert_base", "BERT-base shape 32x128", "seq/s", True)
    checkpoint = run.workdir / "bert-base-random"
    torch.manual_seed(0)
    transformers.BertModel(transformers.BertConfig(**BERT_BASE)).save_pretrained(str(checkpoint))
    fixed_batch(run, result, checkpoint, "bert-base", 12, 768,
                {"torch": run.reps(3, 1), "fast": run.reps(5, 2), "reference": run.reps(2, 1), "ort": run.reps(5, 2)})
    result.notes.append("BertModel(BertConfig(hidden 768, 12 layers, 12 heads, intermediate 3072)) with "
                        "torch.manual_seed(0), saved with save_pretrained; every engine loads that folder")
    return [result]


def minilm_latency(run: Run) -> list:
    result = Result("minilm_latency", "MiniLM-L6 one 16-token text", "ms", False)
    tokens = len(rust_tokenizer(MINILM).encode(LATENCY_TEXT).ids)
    assert tokens == 16, f"LATENCY_TEXT is {tokens} tokens, expected 16"
    outputs = {}  # (engine, variant) -> embedding, compared with torch eager's at the end

    def measure(engine, variant, make, count):
        try:
            runner = make()
            (seconds, outputs[engine, variant]), load = quietest(
                lambda: median_time(lambda: runner.embed([LATENCY_TEXT]), 20, count))
        except Exception as e:
            result.add(Figure(engine, variant, None, note=f"failed: {type(e).__name__}: {e}"))
            return
        result.add(Figure(engine, variant, seconds * 1e3, note=f"median of {count}", background=load))

    count = run.reps(300, 30)
    for variant in ("eager", "sdpa"):
        measure("torch", variant, lambda v=variant: Torch(MINILM, v), count)
    if run.fast_missing:
        result.add(Figure("fast", "numba", None, note="n/a: " + run.fast_missing))
    else:
        measure("fast", "numba", lambda: Bertnp(MINILM, "fast"), count)
    if not run.args.skip_reference:
        measure("reference", "numpy", lambda: Bertnp(MINILM, "reference"), run.reps(50, 10))
    for variant, path in run.onnx.get(MINILM, "minilm", 12, 384).items():
        measure("ort", variant, lambda p=path: Ort(p, MINILM), count)
    agreement(result, outputs)
    result.notes.append(f"{LATENCY_TEXT!r}: text -> tokenize -> forward -> mean pool, after 20 warm-up calls. "
                        "torch and ORT tokenize with the same `tokenizers` file bertnp uses")
    return [result]


def corpus_workload(run: Run) -> list:
    texts = corpus.load(run.reps(2000, 200))
    result = Result("corpus", f"docstring corpus ({len(texts)} texts)", "texts/s", True)
    outputs = {}  # (engine, variant) -> embeddings, compared with torch eager's at the end

    def measure(engine, variant, make, how):
        try:
            runner = make()
            runner.embed(texts[:64], normalize=True)  # warm-up: JIT, first touch of the weights, thread pools
            (seconds, outputs[engine, variant]), load = quietest(
                lambda: median_time(lambda: runner.embed(texts, normalize=True), 0, 1))
        except Exception as e:
            result.add(Figure(engine, variant, None, note=f"failed: {type(e).__name__}: {e}"))
            return
        result.add(Figure(engine, variant, len(texts) / seconds, note=how, background=load))

    for variant in ("eager", "sdpa"):
        measure("torch", variant, lambda v=variant: SentenceTransformers(MINILM, v), "sentence-transformers encode")
    if run.fast_missing:
        result.add(Figure("fast", "numba", None, note="n/a: " + run.fast_missing))
    else:
        measure("fast", "numba", lambda: Bertnp(MINILM, "fast"), "embed")
    if not run.args.skip_reference:
        measure("reference", "numpy", lambda: Bertnp(MINILM, "reference"), "embed")
    for variant, path in run.onnx.get(MINILM, "minilm", 12, 384).items():
        measure("ort", variant, lambda p=path: Ort(p, MINILM), "length-sorted batches")
    agreement(result, outputs)
    lengths = [len(e.ids) for e in rust_tokenizer(MINILM, 10**6).encode_batch(texts)]
    result.notes.append(
        f"{len(texts)} paragraphs from corpus.py (Python {platform.python_version()}), {min(lengths)} to "
        f"{max(lengths)} tokens (median {int(np.median(lengths))}, {sum(n > MAX_LENGTH for n in lengths)} "
        f"truncated at {MAX_LENGTH}); each engine: batches of 32 sorted by length, mean pooling, L2-normalized "
        "(all-MiniLM-L6-v2's Normalize module); one timed pass after a 64-text warm-up; tokenization included")
    return [result]


COLD_SNIPPETS = {
    "bertnp": """
import time
start = time.perf_counter()
import bertnp
model = bertnp.load({folder!r}{backend})
vector = model.embed([{text!r}])
""",
    "sentence-transformers": """
import time
start = time.perf_counter()
from sentence_transformers import SentenceTransformer
model = SentenceTransformer({folder!r}, device="cpu")
vector = model.encode([{text!r}], show_progress_bar=False)
""",
    "onnxruntime": """
import time
start = time.perf_counter()
import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer
options = ort.SessionOptions()
options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
options.intra_op_num_threads = {cores}
session = ort.InferenceSession({onnx!r}, options, providers=["CPUExecutionProvider"])
tokenizer = Tokenizer.from_file({tokenizer!r})
ids = np.array([tokenizer.encode({text!r}).ids], np.int64)
vector = session.run(None, {{"input_ids": ids, "attention_mask": np.ones_like(ids)}})[0].mean(axis=1)
""",
}
COLD_REPORT = """
seconds = time.perf_counter() - start
status = open("/proc/self/status").read()
peak_kib = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
import json
print("COLD", json.dumps({"seconds": seconds, "peak_mib": peak_kib / 1024, "shape": list(vector.shape)}))
"""


def cold_start(run: Run) -> list:
    seconds = Result("cold_start", "cold start: import -> first embedding", "s", False)
    memory = Result("cold_start_rss", "cold start: peak RSS", "MiB", False)
    onnx = run.onnx.get(MINILM, "minilm", 12, 384)["plain graph"]
    backend = ", backend={!r}" if bertnp_has_backends() else ""
    plans = []
    if run.fast_missing:
        for result in (seconds, memory):
            result.add(Figure("fast", "numba", None, note="n/a: " + run.fast_missing))
    else:
        plans.append(("fast", "numba", COLD_SNIPPETS["bertnp"].format(
            folder=str(MINILM), text=COLD_TEXT, backend=backend.format("numba"))))
    if not run.args.skip_reference:
        plans.append(("reference", "numpy", COLD_SNIPPETS["bertnp"].format(
            folder=str(MINILM), text=COLD_TEXT, backend=backend.format("numpy"))))
    plans.append(("torch", "sentence-transformers", COLD_SNIPPETS["sentence-transformers"].format(
        folder=str(MINILM), text=COLD_TEXT)))
    plans.append(("ort", "plain graph", COLD_SNIPPETS["onnxruntime"].format(
        onnx=str(onnx), tokenizer=str(MINILM / "tokenizer.json"), text=COLD_TEXT, cores=CORES)))
    count = run.reps(3, 1)

    def child(code):
        """One fresh process: (its report, seconds the whole process took)."""
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code + COLD_REPORT], capture_output=True, text=True,
                              cwd=str(run.workdir), timeout=300)
        wall = time.perf_counter() - start
        line = next((l for l in done.stdout.splitlines() if l.startswith("COLD ")), None)
        if done.returncode or line is None:
            raise RuntimeError(f"exit {done.returncode}: {done.stderr.strip()[-300:]}")
        return json.loads(line[5:]), wall

    for engine, variant, code in plans:
        try:
            child(code)  # untimed: warms the page cache and Numba's on-disk cache
            samples, load = quietest(lambda: [child(code) for _ in range(count)])
        except Exception as e:
            for result in (seconds, memory):
                result.add(Figure(engine, variant, None, note=f"failed: {type(e).__name__}: {e}"))
            continue
        inside = statistics.median(s["seconds"] for s, _ in samples)
        walls = statistics.median(w for _, w in samples)
        seconds.add(Figure(engine, variant, inside, note=f"median of {count}; whole process {walls:.2f} s",
                           background=load))
        memory.add(Figure(engine, variant, max(s["peak_mib"] for s, _ in samples), note="VmHWM", background=load))
    seconds.notes.append(f"`{sys.executable} -c ...`, timed inside the child from before its first import to the "
                         f"embedding of {COLD_TEXT!r}; one untimed run first; ORT loads the plain exported graph "
                         "and tokenizer.json")
    memory.notes.append("VmHWM from /proc/self/status of the child at the end of the same runs (largest of them)")
    return [seconds, memory]


# ---- per-op profile ------------------------------------------------------------------------------------

CATEGORIES = [  # (category, name fragments), first match wins
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
        self.self_time = defaultdict(float)
        self.calls = Counter()
        self.stack = []
        self.undo = []

    def wrap(self, name, fn):
        stack, self_time, calls = self.stack, self.self_time, self.calls
        clock = time.perf_counter

        def timed(*args, **kwargs):
            stack.append(0.0)
            start = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = clock() - start
                children = stack.pop()
                self_time[name] += elapsed - children
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
                # GEMMs written inline as np.matmul(..., out=) (bertnp.fast): time them through a stand-in
                # `np`. Never in a module of Numba kernels, which would read the stand-in if recompiled.
                self.undo.append((vars(module), "np", np))
                module.np = TimedNumpy(self, module_name)
        holders = [m for n, m in list(sys.modules.items()) if n == "bertnp" or n.startswith("bertnp.")]
        for holder in holders:
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


USER_LAYER = {"bertnp", "bertnp.bert", "bertnp.cli", "bertnp.config", "bertnp.errors", "bertnp.tokenizer",
              "bertnp.weights"}  # loading and input checks: their time shows up as "outside any op"


class TimedNumpy:
    """numpy, except that matmul and dot are timed as `<module>.np.matmul` / `.dot`."""

    def __init__(self, timer: OpTimer, module_name: str):
        self.matmul = timer.wrap(f"{module_name}.np.matmul", np.matmul)
        self.dot = timer.wrap(f"{module_name}.np.dot", np.dot)

    def __getattr__(self, name):
        return getattr(np, name)


def profile_modules() -> list:
    """The bertnp modules a forward pass has imported (bertnp.model, bertnp.fast, bertnp.kernels.*, ...).

    Only modules already loaded are wrapped: importing others could run their top-level code.
    """
    return sorted(n for n in list(sys.modules) if (n.startswith("bertnp.") and n not in USER_LAYER))


def profile(run: Run) -> list:
    ids, mask = random_batch(json.loads((MINILM / "config.json").read_text())["vocab_size"])
    engines = [e for e in run.engines(("fast", "reference")) if not (e == "fast" and run.fast_missing)]
    for engine in engines:
        settle()
        runner = Bertnp(MINILM, engine)
        runner.hidden(ids, mask)  # JIT-compile before wrapping: compiled callers keep the originals
        timer = OpTimer()
        count = run.reps(5 if engine == "fast" else 2, 1)
        try:
            wrapped = timer.install(profile_modules())
            start = time.perf_counter()
            for _ in range(count):
                runner.hidden(ids, mask)
            total = (time.perf_counter() - start) / count
        except Exception as e:
            run.profiles.append((engine, None, f"profile failed: {type(e).__name__}: {e}"))
            continue
        finally:
            timer.restore()
        per_function = {name: (t / count, timer.calls[name] / count) for name, t in timer.self_time.items()}
        by_category = defaultdict(float)
        for name, (t, _) in per_function.items():
            by_category[category(name)] += t
        by_category[OUTSIDE] = total - sum(by_category.values())
        run.profiles.append((engine, {"total": total, "categories": dict(by_category), "functions": per_function,
                                      "wrapped": wrapped, "count": count}, ""))
        print(f"  profile {engine}: {total * 1e3:.1f} ms per forward")
        for title, t in sorted(by_category.items(), key=lambda kv: -kv[1]):
            print(f"    {title:52} {t * 1e3:9.2f} ms  {100 * t / total:5.1f}%")
    if run.fast_missing and "fast" not in engines:
        run.profiles.append(("fast", None, "n/a: " + run.fast_missing))
    return []


# ---- machine -------------------------------------------------------------------------------------------


def cpu_model() -> str:
    fields = {}
    with open("/proc/cpuinfo") as f:
        for line in f:
            if ":" in line:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    flags = fields.get("flags", "").split()
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return (f"{fields.get('model name', platform.processor())} (vendor {fields.get('vendor_id')}, family "
            f"{fields.get('cpu family')} model {fields.get('model')}, {isa})")


def memory_gib() -> float:
    with open("/proc/meminfo") as f:
        return int(f.readline().split()[1]) / 2**20


def cpu_busy_seconds() -> float:
    """Seconds of CPU time the whole machine has spent busy since boot (all processes)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def other_busy_seconds() -> float:
    """CPU seconds spent by every other process since boot (with this one's finished children excluded)."""
    return cpu_busy_seconds() - own_cpu_seconds()


def background_load(seconds=1.0) -> float:
    """Cores kept busy by other processes over a short idle interval."""
    before = other_busy_seconds()
    time.sleep(seconds)
    return (other_busy_seconds() - before) / seconds


def blas_pools() -> list:
    from threadpoolctl import threadpool_info

    return threadpool_info()


def numpy_blas(pools) -> dict | None:
    numpy_dir = os.path.dirname(np.__file__)
    for pool in pools:
        if pool.get("user_api") == "blas" and (pool["filepath"].startswith(numpy_dir) or "numpy" in pool["filepath"]):
            return pool
    return next((p for p in pools if p.get("user_api") == "blas"), None)


def versions() -> dict:
    found = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("bertnp", "numba", "torch", "transformers", "sentence_transformers", "onnxruntime", "onnx",
                 "tokenizers", "threadpoolctl"):
        try:
            found[name] = importlib.import_module(name).__version__
        except Exception as e:
            found[name] = f"unavailable ({type(e).__name__})"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "bertnp", "kernels"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        found["bertnp"] += f" (git {commit}{', with uncommitted changes in bertnp/ or kernels/' if dirty else ''})"
    except OSError:
        pass
    return found


def thread_counts(run: Run, pools) -> dict:
    import torch

    blas = numpy_blas(pools)
    counts = {"bertnp reference": f"NumPy BLAS {blas['num_threads'] if blas else '?'} threads"}
    if run.fast_missing:
        counts["bertnp fast"] = "n/a (" + run.fast_missing + ")"
    else:
        import numba

        try:
            layer = numba.threading_layer()
        except ValueError:
            layer = "not started"
        counts["bertnp fast"] = (f"Numba {numba.get_num_threads()} threads (layer {layer}), NumPy BLAS "
                                 f"{blas['num_threads'] if blas else '?'} threads")
    counts["transformers (torch)"] = (f"torch.get_num_threads() = {torch.get_num_threads()} intra-op, "
                                      f"{torch.get_num_interop_threads()} inter-op")
    counts["ONNX Runtime"] = f"intra_op_num_threads = {CORES}, inter_op_num_threads = 1, sequential"
    return counts


# ---- report --------------------------------------------------------------------------------------------


def fmt(value, unit=""):
    if value is None:
        return "n/a"
    text = f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return f"{text} {unit}".strip()


def fmt_ratio(value):
    return "n/a" if value is None else f"{value:.2f}x"


def verdict(result: Result, kind: str, needed: float) -> tuple[str, str]:
    """(measured, verdict) for one target."""
    fast = result.best("fast")
    if kind == "ratio":
        ratio = result.ratio("ort")
        if ratio is None:
            return "n/a", "not measured (bertnp fast or ORT missing)"
        if ratio >= needed:
            return f"{ratio:.2f}x ORT", f"**pass** by {100 * (ratio / needed - 1):.0f}%"
        return f"{ratio:.2f}x ORT", f"**miss**: needs {needed / ratio:.2f}x more speed"
    if fast is None:
        return "n/a", "not measured (bertnp fast missing)"
    value = f"{fmt(fast.value, result.unit)}"
    if fast.value <= needed:
        return value, f"**pass** by {100 * (1 - fast.value / needed):.0f}%"
    return value, f"**miss**: {100 * (fast.value / needed - 1):.0f}% over"


def write_report(path: Path, run: Run, meta: dict):
    lines = ["# bertnp benchmarks", ""]
    lines += [f"Run {meta['date']} with `{meta['command']}`: {meta['mode']}, {meta['elapsed']:.0f} s in all.", ""]
    if BLAS_ENV_SET:
        settings = ", ".join(f"{k}={v}" for k, v in BLAS_ENV_SET.items())
        lines += [f"> **WARNING: {settings} was set.** OpenBLAS then uses Haswell kernels on this AVX-512 CPU, "
                  "which halves sgemm speed: every NumPy figure below is too slow. Run `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py`.", ""]
    figures = [f for result in run.results.values() for f in result.figures if f.background is not None]
    noisy = [f for f in figures if noisy_figure(f)]
    if noisy:
        lines += [f"> **WARNING: other processes were busy** during {len(noisy)} of the {len(figures)} measurements "
                  "(marked †): those figures are worse than on an idle machine, and ratios involving them less "
                  "certain.", ""]
    lines += [f"Other processes kept {meta['background_before']:.2f} cores busy just before the run and "
              f"{meta['background']:.2f} on average over it, waits for an idle machine included.", ""]
    lines += ["## Machine", ""]
    lines += [f"- CPU: {meta['cpu']}; {CORES} cores available to this process ({os.cpu_count()} online); "
              f"{meta['memory']:.1f} GiB RAM; {platform.platform()}"]
    lines += ["- Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())]
    blas = meta["blas"]
    if blas:
        lines += [f"- BLAS under NumPy (threadpoolctl): internal_api {blas.get('internal_api')}, architecture "
                  f"{blas.get('architecture')}, num_threads {blas.get('num_threads')}, version "
                  f"{blas.get('version')}, threading layer {blas.get('threading_layer')}"]
    others = [p for p in meta["pools"] if p is not blas]
    if others:
        lines += ["- Other thread pools loaded in the process: " + "; ".join(
            f"{p.get('internal_api')} {p.get('architecture') or ''} {p.get('num_threads')} threads "
            f"({os.path.basename(p['filepath'])})".replace("  ", " ") for p in others)]
    lines += ["- " + ", ".join(f"{k}: {BLAS_ENV_SET.get(k, 'unset')}" for k in BLAS_ENV)]
    lines += ["", "Threads per engine:", ""]
    lines += [f"- {engine}: {count}" for engine, count in run.threads.items()]

    order = [name for name in ("minilm_batch", "minilm_latency", "corpus", "bert_base", "cold_start",
                               "cold_start_rss") if name in run.results]
    if order:
        lines += ["", "## Results", "",
                  "Ratios say how many times better bertnp fast is than the peer: fast / peer for throughputs, "
                  "peer / fast for times and memory (above 1: bertnp fast wins). Where a peer was run two ways "
                  "the better one counts, named beside the figure. † marks a figure measured while other "
                  f"processes kept more than {NOISY} of a core busy: it is worse than on an idle machine.", "",
                  "| workload | unit | bertnp fast | bertnp reference | transformers (torch) | ONNX Runtime "
                  "| fast vs reference | fast vs torch | fast vs ORT | other processes, worst figure (cores busy) |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name in order:
            result = run.results[name]
            cells = []
            for engine in ENGINES:
                best = result.best(engine)
                cells.append("n/a" if best is None else
                             fmt(best.value) + (f" ({best.variant})" if engine in ("torch", "ort") else "")
                             + (" †" if noisy_figure(best) else ""))
            ratios = [fmt_ratio(result.ratio(engine)) for engine in ("reference", "torch", "ort")]
            loads = [f.background for f in result.figures if f.background is not None]
            load = "n/a" if not loads else f"{max(loads):.2f}" + (" †" if max(loads) > NOISY else "")
            lines.append(f"| {result.title} | {result.unit} | " + " | ".join(cells + ratios + [load]) + " |")

        lines += ["", "## Targets for bertnp fast", "",
                  "| target | bertnp fast | verdict | reference, for scale |", "|---|---|---|---|"]
        for name, kind, needed, title in TARGETS:
            if name not in run.results:
                continue
            result = run.results[name]
            measured, word = verdict(result, kind, needed)
            ref, ort_best = result.best("reference"), result.best("ort")
            if kind == "ratio" and ref and ort_best:
                scale = (ref.value / ort_best.value if result.higher_is_better else ort_best.value / ref.value)
                scale = f"{scale:.2f}x ORT"
            else:
                scale = fmt(ref.value, result.unit) if ref else "n/a"
            lines.append(f"| {title} | {measured} | {word} | {scale} |")

        lines += ["", "## Details", ""]
        for name in order:
            result = run.results[name]
            lines += [f"### {result.title} ({result.unit}; the workload took {result.seconds:.0f} s)", "",
                      "| engine | variant | figure | max abs diff vs torch eager | other processes (cores busy) "
                      "| note |", "|---|---|---:|---:|---:|---|"]
            for f in result.figures:
                diff = "" if f.diff is None else f"{f.diff:.1e}"
                load = "" if f.background is None else f"{f.background:.2f}" + (" †" if noisy_figure(f) else "")
                lines.append(f"| {ENGINE_TITLES[f.engine]} | {f.variant} | {fmt(f.value, result.unit)} | {diff} | "
                             f"{load} | {f.note.replace('|', '/')} |")
            lines += [""] + [f"{note}." for note in result.notes] + [""]

    if run.onnx.notes:
        lines += ["## ONNX export", ""] + [f"- {note}" for note in run.onnx.notes + EXPORT_NOTES] + [""]

    if run.profiles:
        lines += ["## Per-op profile, MiniLM-L6 32x128 (ms per forward)", "",
                  "Self time of each wrapped function of bertnp.model / bertnp.erf (and bertnp.fast, "
                  "bertnp.kernels when they exist), summed by category; calls nested inside another wrapped "
                  "function count for the inner one only. Work done inside compiled (Numba) code is counted for "
                  "the Python-level function that launched it.", ""]
        for engine, data, note in run.profiles:
            lines += [f"### {ENGINE_TITLES[engine]}", ""]
            if data is None:
                lines += [note, ""]
                continue
            total = data["total"]
            lines += [f"{total * 1e3:.1f} ms per forward ({data['count']} forwards, {data['wrapped']} functions "
                      "wrapped).", "", "| category | ms | share |", "|---|---:|---:|"]
            for title, t in sorted(data["categories"].items(), key=lambda kv: -kv[1]):
                lines.append(f"| {title} | {t * 1e3:.2f} | {100 * t / total:.1f}% |")
            lines += ["", "| function | calls per forward | ms | share |", "|---|---:|---:|---:|"]
            for name, (t, calls) in sorted(data["functions"].items(), key=lambda kv: -kv[1][0]):
                lines.append(f"| {name} | {calls:.0f} | {t * 1e3:.2f} | {100 * t / total:.1f}% |")
            lines.append("")
    path.write_text("\n".join(lines).rstrip() + "\n")


# ---- main ----------------------------------------------------------------------------------------------

RUNNERS = {"minilm_batch": minilm_batch, "minilm_latency": minilm_latency, "corpus": corpus_workload,
           "bert_base": bert_base, "cold_start": cold_start, "profile": profile}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and a 200-text corpus (smoke run)")
    parser.add_argument("--only", action="append", choices=WORKLOADS, metavar="NAME",
                        help=f"run only this workload (repeatable): {', '.join(WORKLOADS)}")
    parser.add_argument("--skip-reference", action="store_true", help="leave out the NumPy reference path")
    parser.add_argument("--profile", action="store_true", help="add the per-op profile of bertnp (MiniLM 32x128)")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="before each measurement, wait up to this long for other processes to go idle, "
                             f"and take a disturbed measurement again (up to {RETRIES} times), keeping the quietest")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md", help="where to write the report")
    args = parser.parse_args(argv)
    WAIT_IDLE["seconds"] = args.wait_idle

    if BLAS_ENV_SET:
        banner = "!" * 100
        print(f"{banner}\nWARNING: {', '.join(f'{k}={v}' for k, v in BLAS_ENV_SET.items())} is set: OpenBLAS will use "
              "Haswell kernels and run sgemm at about half speed.\nRe-run as: env -u OPENBLAS_CORETYPE -u "
              f"OPENBLAS_L2_SIZE python benchmarks/run.py\n{banner}", file=sys.stderr, flush=True)
    if not MINILM.exists():
        sys.exit(f"{MINILM} is missing: run `python weights/fetch_minilm.py` first")

    started, clock = datetime.datetime.now(datetime.timezone.utc), time.perf_counter()
    background_before = background_load()
    busy_before = other_busy_seconds()
    if background_before > NOISY:
        print(f"WARNING: other processes keep {background_before:.2f} cores busy; figures will be worse than on an "
              "idle machine (--wait-idle SECONDS waits for them and retakes disturbed measurements)",
              file=sys.stderr, flush=True)

    import torch
    import transformers

    torch.set_num_threads(CORES)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)

    names = args.only or [w for w in WORKLOADS if w != "profile" or args.profile]
    workdir = Path(tempfile.mkdtemp(prefix="bertnp-bench-"))
    fast_missing = fast_status()
    if fast_missing:
        print(f"bertnp fast path: n/a ({fast_missing})", flush=True)
    run = Run(args, fast_missing, OnnxGraphs(workdir, []), workdir)
    try:
        for name in names:
            print(f"== {name}", flush=True)
            start = time.perf_counter()
            results = RUNNERS[name](run)
            print(f"  ({time.perf_counter() - start:.0f} s)", flush=True)
            for result in results:
                result.seconds = time.perf_counter() - start
                run.results[result.name] = result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.perf_counter() - clock
    background = (other_busy_seconds() - busy_before) / elapsed

    pools = blas_pools()
    run.threads = thread_counts(run, pools)
    mode = "full run" if not (args.quick or args.only) else \
        "PARTIAL run (" + ", ".join(filter(None, ["--quick" if args.quick else "",
                                                  "--only " + " ".join(args.only) if args.only else ""])) + ")"
    if args.skip_reference:
        mode += ", reference skipped"
    command = " ".join(["python", "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])])
    meta = {"date": started.strftime("%Y-%m-%d %H:%M UTC"), "command": command, "mode": mode, "elapsed": elapsed,
            "cpu": cpu_model(), "memory": memory_gib(), "versions": versions(), "pools": pools,
            "blas": numpy_blas(pools), "background": background, "background_before": background_before}
    write_report(args.output, run, meta)
    print(f"wrote {args.output} ({elapsed:.0f} s; other processes used {background:.2f} cores on average)")
    noisy = [f"{result.name}/{f.engine}/{f.variant}" for result in run.results.values() for f in result.figures
             if noisy_figure(f)]
    if noisy:
        print(f"WARNING: other processes disturbed {len(noisy)} measurements ({', '.join(noisy)}): those figures "
              "are worse than on an idle machine", file=sys.stderr)
    if BLAS_ENV_SET:
        print("WARNING: OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE were set: NumPy figures are too slow (see above)",
              file=sys.stderr)


if __name__ == "__main__":
    main()
