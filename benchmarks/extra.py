"""Two more figures for RESULTS.md, each measured in one process:

- the cost of deterministic mode: the docstring corpus embedded (MiniLM, mean pooling, length-sorted
  batches of 32) with deterministic=False and True, both on the numba backend;
- streaming memory: `bertnp embed weights/minilm --input` over 200k lines to .npy, peak RSS and texts/s.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/extra.py [--lines 200000]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
MINILM = os.path.join(HERE, "..", "weights", "minilm")


def deterministic_cost(texts) -> str:
    import bertnp

    rows = []
    for deterministic in (False, True):
        embedder = bertnp.Embedder(MINILM, backend="numba", deterministic=deterministic)
        embedder.embed(texts[:64])  # warm-up
        best = min(_timed(lambda: embedder.embed(texts, batch_size=32)) for _ in range(2))
        rows.append((deterministic, len(texts) / best))
    ratio = rows[1][1] / rows[0][1]
    return (f"| deterministic=False | {rows[0][1]:.0f} texts/s |\n| deterministic=True | {rows[1][1]:.0f} texts/s "
            f"({ratio:.2f}x) |")


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def streaming(lines: int) -> str:
    import corpus

    texts = corpus.load()
    rng = np.random.default_rng(0)
    bertnp_cli = shutil.which("bertnp", path=os.path.dirname(sys.executable)) or shutil.which("bertnp")
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "lines.txt")
        with open(source, "w", encoding="utf-8") as f:  # sentences cut from the corpus: 3 to 40 words
            for _ in range(lines):
                words = texts[rng.integers(len(texts))].split()
                start = rng.integers(len(words))
                f.write(" ".join(words[start : start + rng.integers(3, 40)]) + "\n")
        out = os.path.join(tmp, "out.npy")
        start = time.perf_counter()
        subprocess.run([bertnp_cli, "embed", MINILM, "--input", source, "--output", out, "--quiet"], check=True)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        shape = np.load(out, mmap_mode="r").shape
    return (f"| `bertnp embed weights/minilm --input` ({lines} lines) -> .npy {shape} | peak RSS {peak:.0f} MiB | "
            f"{seconds:.0f} s, {lines / seconds:.0f} texts/s |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=200_000)
    args = parser.parse_args()
    import corpus

    if os.environ.get("OPENBLAS_CORETYPE") or os.environ.get("OPENBLAS_L2_SIZE"):
        print("WARNING: OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE are set: run with env -u ... (slow Haswell kernels)")
    print("| mode | docstring corpus, MiniLM |\n| --- | --- |")
    print(deterministic_cost(corpus.load()))
    print()
    print("| stream | memory | speed |\n| --- | --- | --- |")
    print(streaming(args.lines))
