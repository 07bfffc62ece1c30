"""No caller waits for the compiler: with backend=None, the numba backend prepares (imports Numba, lays the
weights out, compiles or loads its kernels) on a thread of its own while the reference path answers, then
takes over. Asked for by name, or in deterministic mode, it is ready before the first call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from conftest import ROOT
from parity import assert_claim

import bertnp
from bertnp import blas, fast

TEXTS = ["Microsoft has taken its first step into the metaverse.", "Hello", "Stocks fell sharply on Monday."]


def test_the_reference_path_answers_until_the_kernels_are_ready(minilm_path, monkeypatch):
    release = threading.Event()
    warm_up = fast.warm_up

    def slow_warm_up(*args):  # the kernels "compile" until the test says so
        release.wait(60)
        warm_up(*args)

    monkeypatch.setattr(fast, "warm_up", slow_warm_up)
    monkeypatch.delenv("BERTNP_BACKEND", raising=False)
    model = bertnp.load(minilm_path)
    reference = bertnp.load(minilm_path, backend="numpy")
    enc = model.tokenize(TEXTS)
    assert model.backend.name == "numba" and model.backend.fast is None  # preparing
    before = model(**enc).last_hidden_state
    with blas.single_threaded():  # as the fallback runs it (kernels.gemm says why)
        assert np.array_equal(before, reference(**enc).last_hidden_state)  # the reference path itself
    release.set()
    assert model.backend.wait(60) and model.backend.error is None
    after = model(**enc).last_hidden_state
    real = enc["attention_mask"].astype(bool)
    assert_claim("fast", "last_hidden_state before vs after the hand-over", after[real], before[real], np.float32)
    assert not after[~real].any()  # the fast path ran: it leaves padded positions at zero


def test_the_preparation_starts_after_the_first_answer(minilm_path, monkeypatch):
    """Begun at load, it competed with the first answer for the GIL and the cores (bertnp/backends.py)."""
    started = []
    prepare = fast.prepare
    monkeypatch.setattr(fast, "prepare", lambda *args: started.append(1) or prepare(*args))
    monkeypatch.delenv("BERTNP_BACKEND", raising=False)
    model = bertnp.load(minilm_path)
    enc = model.tokenize(TEXTS)
    assert not started and model.backend.fast is None
    model(**enc)
    assert model.backend.wait(60) and started == [1]  # begun by the first call, once
    model(**enc)
    assert started == [1]


def test_asked_for_by_name_or_deterministic_it_is_ready_at_once(minilm_path, monkeypatch):
    monkeypatch.delenv("BERTNP_BACKEND", raising=False)
    assert bertnp.load(minilm_path, backend="numba").backend.fast is not None
    assert bertnp.load(minilm_path, deterministic=True).backend.fast is not None  # never mixes paths


SCRIPT = r"""
import json, os, sys, time
import bertnp
report = {"numba_after_import": "numba" in sys.modules}
bertnp.load(sys.argv[1], backend="numpy")
report["numba_after_numpy_load"] = "numba" in sys.modules
model = bertnp.load(sys.argv[1])
vectors = model.embed(["hello world"])
report["fast_at_first_answer"] = model.backend.fast is not None
pid = os.fork()
if pid == 0:  # a fork waits for the preparation: the child has the kernels at once
    os._exit(0 if model.backend.fast is not None else 3)
report["child_exit"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
report["ready"] = model.backend.wait(300)
report["difference"] = float(abs(model.embed(["hello world"]) - vectors).max())
print(json.dumps(report))
"""


def test_first_answer_with_an_empty_numba_cache_does_not_wait(minilm_path, tmp_path):
    """A fresh install: Numba's cache is empty (NUMBA_CACHE_DIR points at an empty folder), so compiling
    takes seconds. The first answer comes from the reference path before that ends."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    env.pop("BERTNP_BACKEND", None)
    run = subprocess.run([sys.executable, "-c", SCRIPT, minilm_path], env=env, capture_output=True, text=True,
                         timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.splitlines()[-1])
    assert not report["numba_after_import"] and not report["numba_after_numpy_load"], report
    assert not report["fast_at_first_answer"], report  # answered while the kernels were compiling
    assert report["child_exit"] == 0 and report["ready"], report
    assert report["difference"] <= 1e-5, report
    assert os.listdir(tmp_path / "numba-cache"), "the kernels were not compiled into the empty cache"


RESIDENT = r"""
import json, sys
import bertnp
model = bertnp.load(sys.argv[1], backend="numba")  # prepared: weights packed, kernels warmed up

def mapped_rss_kib(path):
    total, inside = 0, False
    for line in open("/proc/self/smaps"):
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
            inside = fields[-1] == path
        elif inside and fields[0] == "Rss:":
            total += int(fields[1])
    return total

print(json.dumps({"mapped_mib": mapped_rss_kib(sys.argv[2]) / 1024}))
"""


def test_one_resident_copy_of_the_weights(minilm_path):
    """The fast path packs the GEMM weights into its own layout; the memory-mapped originals it copied
    leave resident memory. Measured right after load: a forward pass then maps the embedding rows it reads,
    and where the kernel keeps the file's page cache in huge pages, a row maps 2 MiB around it."""
    path = os.path.realpath(os.path.join(minilm_path, "model.safetensors"))
    run = subprocess.run([sys.executable, "-c", RESIDENT, minilm_path, path], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    mapped = json.loads(run.stdout.splitlines()[-1])["mapped_mib"]
    encoder = 6 * 4 * (4 * 384 * 384 + 2 * 384 * 1536) / 2**20  # MiniLM's GEMM weights: 42 MiB
    print(f"model.safetensors resident after packing: {mapped:.1f} MiB (GEMM weights: {encoder:.0f} MiB)")
    assert mapped < encoder / 4
