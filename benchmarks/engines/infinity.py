"""infinity-emb (michaelfeil/infinity), the peer server: `infinity_emb v2` on the same folder, torch on CPU.

infinity-emb 0.0.78 pins numpy<2, sentence-transformers<4 and transformers<=5.0, so it cannot share
bertnp's test environment (numpy 2, transformers 5): it lives in a virtual environment of its own, made
once, outside the checkout, with

    python3 -m venv ~/.venvs/infinity
    ~/.venvs/infinity/bin/pip install 'infinity-emb[server,torch]==0.0.78' torch==2.13.0

and found as $BERTNP_BENCH_INFINITY (the path of its `infinity_emb` script, here
~/.venvs/infinity/bin/infinity_emb), else as `infinity_emb` on PATH. Like bertnp serve, it is started as
its own process by workloads/serve.py, with its defaults: dynamic batching up to --batch-size 32, model
warm-up before it reports healthy, torch's BetterTransformer path where it applies.

Threads: OMP_NUM_THREADS and MKL_NUM_THREADS (torch's intra-op pool) and RAYON_NUM_THREADS (its
tokenizer) set to the run's thread count.
"""

from __future__ import annotations

import os
import shutil

from harness import WorkerError

TITLE = "infinity-emb"
VARIANTS = ("torch",)
ROUTE = "/embeddings"
INSTALL = ("python3 -m venv ~/.venvs/infinity && ~/.venvs/infinity/bin/pip install "
           "'infinity-emb[server,torch]==0.0.78' torch==2.13.0, then BERTNP_BENCH_INFINITY="
           "~/.venvs/infinity/bin/infinity_emb")


def executable() -> str | None:
    return os.environ.get("BERTNP_BENCH_INFINITY") or shutil.which("infinity_emb")


def command(bench, checkpoint, variant, port, name) -> list:
    program = executable()
    if program is None:
        raise WorkerError(f"infinity-emb is not installed: {INSTALL}")
    return [program, "v2", "--model-id", str(checkpoint), "--served-model-name", name, "--engine", variant,
            "--device", "cpu", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]


def environment(bench, variant) -> dict:
    env = bench.env(OMP_NUM_THREADS=str(bench.threads), MKL_NUM_THREADS=str(bench.threads),
                    HF_HUB_OFFLINE="1", INFINITY_ANONYMOUS_USAGE_STATS="0", DO_NOT_TRACK="1")
    env.pop("PYTHONPATH")  # its own environment: not the snapshot of bertnp, not the harness
    return env
