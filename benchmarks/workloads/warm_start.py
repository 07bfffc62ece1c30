"""Warm start: a fresh process imports the engine, loads MiniLM and embeds one text, with a warm Numba
cache (the run's own, filled when the snapshot was installed). Time to the first embedding and peak RSS."""

from __future__ import annotations

import json
import statistics
import sys
import time

from harness import MINILM, PAUSE, Column, Section, Target, run_process

TEXT = "hello"
# The child: the clock starts before the first import; the engine's module imports NumPy and its library
# (import), builds the model (load), embeds TEXT (first embedding). Interpreter start-up is in `process`.
CHILD = """
import time
start = time.perf_counter()
import importlib, json, sys
from pathlib import Path
key, variant, checkpoint, threads, prepared, text = json.loads(sys.argv[1])
module = importlib.import_module("engines." + key)
module.import_library()
imported = time.perf_counter()
engine = module.Engine(Path(checkpoint), variant, threads, prepared)
loaded = time.perf_counter()
vector = engine.embed([text])
done = time.perf_counter()
bertnp = sys.modules.get("bertnp")
print(json.dumps({"import": imported - start, "load": loaded - imported, "first": done - loaded,
                  "total": done - start, "shape": list(vector.shape), "bertnp": bertnp and bertnp.__file__}))
"""
COLUMNS = [Column("import -> first embedding", "s", False), Column("peak RSS", "MiB", False),
           Column("whole process", "s", False), Column("import", "s", False), Column("load", "s", False),
           Column("first embedding", "s", False)]
ENGINES = [("fast", "default"), ("fast", "numba"), ("reference", "numpy"), ("ort", "plain graph"),
           ("ort", "fused graph")]


def child_command(bench, key, variant):
    spec = [key, variant, str(MINILM), bench.threads, bench.prepared(key, MINILM), TEXT]
    return [sys.executable, "-c", CHILD, json.dumps(spec)]


def first_embedding(bench, command, env) -> dict:
    """One fresh process: the child's own timings, its whole wall time and peak RSS (wait4)."""
    wall, peak, out = run_process(command, env, bench.workdir)
    report = json.loads(out.strip().splitlines()[-1]) if out.strip().startswith("{") else {}
    if report.get("bertnp") and not report["bertnp"].startswith(str(bench.site)):
        raise RuntimeError(f"the child imported bertnp from {report['bertnp']}, not from the snapshot")
    return dict(report, process=wall, rss=peak)


def rounds(bench, plans, count):
    """Every plan once per round, in rotating order: {plan name: [result dicts]} (or the error)."""
    results = {name: [] for name, _ in plans}
    for r in range(count):
        for name, measure in plans[r % len(plans):] + plans[: r % len(plans)]:
            time.sleep(PAUSE)
            if isinstance(results[name], list):
                try:
                    results[name].append(measure())
                except Exception as e:  # reported in the row; the other plans go on
                    results[name] = e
    return results


def add_row(section, key, variant, samples, note=""):
    if isinstance(samples, Exception):
        section.failed(key, variant, samples)
        return
    med = {k: statistics.median(s[k] for s in samples) for k in samples[0] if isinstance(samples[0][k], float)}
    section.add(key, variant, note=(note + f" processes: {len(samples)}").strip(),
                **{"import -> first embedding": med.get("total"), "peak RSS": max(s["rss"] for s in samples),
                   "whole process": med["process"], "import": med.get("import"), "load": med.get("load"),
                   "first embedding": med.get("first")})


def run(bench):
    section = Section("Warm start: import -> load -> first embedding, fresh process", COLUMNS,
                      fast_variant="default")
    count = bench.pick(5, 2)
    plans = [(f"{key}/{variant}", lambda k=key, v=variant: first_embedding(bench, child_command(bench, k, v),
                                                                            bench.env()))
             for key, variant in ENGINES]
    for _, measure in plans:  # untimed: the page cache holds every file afterwards
        measure()
    results = rounds(bench, plans, count)
    for key, variant in ENGINES:
        add_row(section, key, variant, results[f"{key}/{variant}"])
    section.rounds = (f"medians of interleaved rounds: {count}, of one fresh process per engine, after one untimed "
                      "run each")
    section.about = ("Each figure is a new Python process running the engine's module: the clock starts before "
                     "the first import; `import` is the engine's libraries (NumPy included), `load` builds the "
                     f"model (ORT: session and tokenizer), `first embedding` embeds {TEXT!r} (tokenize, forward, "
                     "pool, normalize). bertnp's Numba cache is warm. bertnp fast `default` is "
                     "`bertnp.Embedder(folder)` as an app writes it (the targets use it), `numba` asks for "
                     "backend=\"numba\" by name. `whole process` is the wall time from spawn to exit, interpreter "
                     "start-up included. Peak RSS: ru_maxrss of the process (wait4); "
                     "the figure is the largest over the rounds.")
    section.targets += [Target("warm start: import -> first embedding <= ORT's", "import -> first embedding", 1.0),
                        Target("warm start: peak RSS <= ORT's", "peak RSS", 1.0)]
    return section
