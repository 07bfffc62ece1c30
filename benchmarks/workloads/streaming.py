"""Streaming memory: `bertnp embed weights/minilm --input lines.txt --output out.npy` over many lines."""

from __future__ import annotations

import numpy as np

from harness import MINILM, Column, Section, run_process
from workloads.corpus import load

COLUMNS = [Column("throughput", "texts/s", True), Column("peak RSS", "MiB", False), Column("wall", "s", False)]


def write_lines(path, count, seed=0):
    """Sentences cut from the corpus: 3 to 40 words each."""
    texts, rng = load(), np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(count):
            words = texts[rng.integers(len(texts))].split()
            start = rng.integers(len(words))
            f.write(" ".join(words[start : start + rng.integers(3, 40)]) + "\n")


def run(bench):
    section = Section("Streaming: `bertnp embed --input` to .npy", COLUMNS)
    sizes = bench.pick((2_000, 20_000), (200, 1_000))
    for count in sizes:
        source, out = bench.workdir / f"lines-{count}.txt", bench.workdir / f"out-{count}.npy"
        write_lines(source, count)
        command = [str(bench.site / "bin" / "bertnp"), "embed", str(MINILM), "--input", str(source),
                   "--output", str(out), "--quiet"]
        wall, peak, _ = run_process(command, bench.env(), bench.workdir)
        shape = np.load(out, mmap_mode="r").shape
        section.add("fast", f"{count} lines", throughput=count / wall, **{"peak RSS": peak, "wall": wall},
                    note=f"output {list(shape)}")
    section.rounds = "one process per size (warm Numba cache), sizes run one after the other"
    section.about = ("The installed console script embeds a text file of sentences cut from the corpus (3 to 40 "
                     "words each) into an .npy file; throughput counts the whole process (start-up included). "
                     "Peak RSS: ru_maxrss (wait4). Two sizes, 10x apart: a flat peak means memory does not grow "
                     "with the stream.")
    return section
