"""A model loaded and used before fork works in every forked child (gunicorn --preload, multiprocessing's
fork start, Celery prefork): equal results, no hang, and the weights stay shared with the parent.

Each case runs in a fresh interpreter, so that memory this test process freed earlier (and a child would
copy on writing into it) does not blur the measure of what a child copies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

SCRIPT = r"""
import json, multiprocessing, os, sys
import numpy as np
sys.path.insert(0, os.path.join(sys.argv[3], "tests"))
import bertnp
from texts import TEXTS

LONG = [" ".join(TEXTS[8].split()[:100])] * 2  # 2 x 130 tokens: the fast path's threaded regime (its GEMM pool)
SHORT = ["Microsoft has taken its first step into the metaverse."]


def private_mib():
    fields = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                fields[parts[0][:-1]] = int(parts[1])
    return (fields["Private_Clean"] + fields["Private_Dirty"]) / 1024


def child(queue):
    before = private_mib()
    long, short = model.embed(LONG, batch_size=2), model.embed(SHORT)
    queue.put((long, short, private_mib() - before))


model = bertnp.load(sys.argv[1], backend=sys.argv[2])
want_long, want_short = model.embed(LONG, batch_size=2), model.embed(SHORT)  # the parent uses every path
context = multiprocessing.get_context("fork")
queue = context.Queue()
children = [context.Process(target=child, args=(queue,)) for _ in range(2)]
for process in children:
    process.start()
results = [queue.get(timeout=120) for _ in children]
for process in children:
    process.join(timeout=60)
print(json.dumps({
    "exitcodes": [p.exitcode for p in children],
    "long_error": [float(np.abs(long - want_long).max()) for long, _, _ in results],
    "long_equal": [bool(np.array_equal(long, want_long)) for long, _, _ in results],
    "short_equal": [bool(np.array_equal(short, want_short)) for _, short, _ in results],
    "grown_mib": [grown for _, _, grown in results],
}))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_children_of_a_used_model_answer_alike_and_share_the_weights(minilm_path, backend):
    run = subprocess.run([sys.executable, "-c", SCRIPT, minilm_path, backend, ROOT], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.splitlines()[-1])
    weights_mib = os.path.getsize(os.path.join(minilm_path, "model.safetensors")) / 2**20
    print(f"{backend}: children's private memory grew by {report['grown_mib']} MiB (weights file {weights_mib:.0f} MiB)")
    assert report["exitcodes"] == [0, 0]
    assert all(report["long_equal"]), f"long texts differ from the parent's by {report['long_error']}"
    assert all(report["short_equal"])
    assert max(report["grown_mib"]) < weights_mib / 4, "a child copied the weights instead of sharing them"
