"""Threads, long streams, interrupts, and extreme but valid inputs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pytest

from conftest import WEIGHTS, require
from parity import compare_outputs

import bertnp

TINY = os.path.join(WEIGHTS, "tiny")
BERTNP = shutil.which("bertnp", path=os.path.dirname(sys.executable)) or shutil.which("bertnp")
WORDS = "the team won game on sunday stocks fell market rallied after company hello players kept playing".split()


def sentences(n, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(1, 30))) for _ in range(n)]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_one_model_from_eight_threads_equals_serial(backend):
    model = bertnp.load(TINY, backend=backend)
    classifier = bertnp.Classifier(model)
    embedder = bertnp.Embedder(model)
    jobs = [(kind, sentences(40, seed)) for seed, kind in enumerate(["embed", "predict", "classify"] * 8)]

    def run(kind, texts):
        if kind == "embed":
            return embedder.embed(texts, batch_size=8)
        if kind == "predict":
            return model.predict(texts, batch_size=8)
        return classifier.classify(texts, top_k=None, batch_size=8)

    serial = [run(kind, texts) for kind, texts in jobs]
    results, errors = [None] * len(jobs), []

    def worker(i):
        try:
            results[i] = run(*jobs[i])
        except BaseException as e:  # collected, so the assertion below reports it
            errors.append(e)

    for start in range(0, len(jobs), 8):  # 8 threads at a time
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(start, min(start + 8, len(jobs)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    for (kind, _), a, b in zip(jobs, results, serial):
        if kind == "classify":
            assert a == b
        else:
            assert np.array_equal(a, b), f"{kind}: max diff {np.abs(a - b).max()}"


def peak_rss_mib(args):
    """Peak RSS of a `bertnp` run, read from the child's rusage."""
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True); "
            "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024); "
            "sys.stderr.write(r.stderr.decode())")
    result = subprocess.run([sys.executable, "-c", code, BERTNP, *args], capture_output=True, text=True, timeout=600)
    status, rss = result.stdout.split()
    assert status == "0", result.stderr
    return int(rss)


def test_streaming_memory_stays_flat(tmp_path):
    small, large = tmp_path / "small.txt", tmp_path / "large.txt"
    small.write_text("\n".join(sentences(1_000)) + "\n")
    large.write_text("\n".join(sentences(30_000, seed=1)) + "\n")
    peaks = {}
    for name, source in (("small", small), ("large", large)):
        for suffix in (".jsonl", ".npy"):
            out = tmp_path / f"{name}{suffix}"
            peaks[name, suffix] = peak_rss_mib(["embed", TINY, "--input", str(source), "--output", str(out), "--quiet",
                                                "--backend", "numba"])  # one path: no hand-over mid-run
    assert np.load(tmp_path / "large.npy").shape == (30_000, 32)
    assert sum(1 for _ in open(tmp_path / "large.jsonl")) == 30_000
    for suffix in (".jsonl", ".npy"):  # 30x the input, the same memory
        assert peaks["large", suffix] <= peaks["small", suffix] + 25, peaks


@pytest.mark.parametrize("suffix", [".jsonl", ".npy"])
def test_interrupt_leaves_every_finished_row(tmp_path, suffix):
    source, out = tmp_path / "in.txt", tmp_path / f"out{suffix}"
    texts = sentences(200_000, seed=2)
    source.write_text("\n".join(texts) + "\n")
    process = subprocess.Popen([BERTNP, "embed", TINY, "--input", str(source), "--output", str(out), "--quiet"],
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or out.stat().st_size < 300_000):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "interrupted" in stderr, stderr
    if suffix == ".npy":
        rows = np.load(out)
    else:
        records = [json.loads(line) for line in open(out, encoding="utf-8")]  # every line whole
        assert [r["text"] for r in records] == texts[: len(records)]
        rows = np.array([r["embedding"] for r in records], np.float32)
    assert 0 < len(rows) < len(texts)
    expected = bertnp.Embedder(TINY).embed(texts[: len(rows)][-50:])
    np.testing.assert_allclose(rows[-50:], expected, atol=1e-6)


def test_embed_stream_reads_lazily():
    embedder = bertnp.Embedder(TINY)
    consumed = []

    def source():
        for text in sentences(10_000):
            consumed.append(text)
            yield text

    stream = embedder.embed_stream(source(), chunk_size=100)
    first = next(stream)
    assert len(consumed) == 100 and first.shape == (32,)


# ---- extreme but valid inputs ----------------------------------------------------------------------------


def torch_outputs(folder, enc, **kwargs):
    torch = require("torch")
    import transformers

    hf = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager", **kwargs).eval().float()
    with torch.no_grad():
        out = hf(**{k: torch.from_numpy(v) for k, v in enc.items()})
    return {"last_hidden_state": out.last_hidden_state.numpy(), "pooler_output": out.pooler_output.numpy()}


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_512_copies_of_one_token_and_all_padding_rows(minilm_path, backend):
    model = bertnp.load(minilm_path, backend=backend)
    enc = model.tokenize(["the " * 600, "hello", "hello"])
    assert enc["input_ids"].shape == (3, 512)
    enc["attention_mask"][2] = 0  # a row of padding only
    out = model(**enc)
    assert np.isfinite(out.last_hidden_state).all() and np.isfinite(out.pooler_output).all()
    ref = torch_outputs(minilm_path, enc)
    real = {k: v[:2] for k, v in enc.items()}
    compare_outputs(type(out)(last_hidden_state=out.last_hidden_state[:2], pooler_output=out.pooler_output[:2]),
                    {k: v[:2] for k, v in ref.items()}, real["attention_mask"], np.float32, claim="minilm")


def test_float16_checkpoint_near_the_float16_limits():
    torch = require("torch")
    from torch_ref import make_checkpoint

    with tempfile.TemporaryDirectory() as folder:
        make_checkpoint(folder, dict(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=24), seed=5)
        import transformers

        hf = transformers.AutoModel.from_pretrained(folder)
        with torch.no_grad():  # embeddings near the float16 maximum; LayerNorm brings them back to scale
            hf.embeddings.word_embeddings.weight[:, ::2] = 60000.0
            hf.embeddings.word_embeddings.weight[:, 1::2] = -65000.0
            hf.embeddings.position_embeddings.weight.mul_(100)
        hf.half().save_pretrained(folder, safe_serialization=True)
        model = bertnp.load(folder)
        enc = {"input_ids": np.array([[1, 5, 9, 2], [3, 4, 0, 0]]), "attention_mask": np.array([[1, 1, 1, 1], [1, 1, 0, 0]]),
               "token_type_ids": np.zeros((2, 4), np.int64)}
        out = model(**enc)
        assert np.isfinite(out.last_hidden_state).all()
        ref = torch_outputs(folder, enc, dtype=torch.float32)
        compare_outputs(out, ref, enc["attention_mask"], np.float32, claim="random")
