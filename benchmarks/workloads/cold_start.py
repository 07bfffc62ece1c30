"""Cold start: the first run after install, with an empty Numba cache: `bertnp embed weights/minilm
"hello"` end to end, and the first embedding in process, against ONNX Runtime's first run."""

from __future__ import annotations

import tempfile
from pathlib import Path

from harness import MINILM, Section, Target, run_process
from workloads.warm_start import COLUMNS, TEXT, add_row, child_command, first_embedding, rounds

CLI = "CLI, empty cache"
IN_PROCESS = {"default": "default, empty cache", "numba": "numba, empty cache"}


def empty_cache(bench) -> Path:
    return Path(tempfile.mkdtemp(prefix="numba-cache-", dir=bench.workdir))


def cli(bench) -> dict:
    cache = empty_cache(bench)
    wall, peak, out = run_process([str(bench.site / "bin" / "bertnp"), "embed", str(MINILM), TEXT],
                                  bench.env(NUMBA_CACHE_DIR=str(cache)), bench.workdir)
    return {"process": wall, "rss": peak, "cache files": float(sum(1 for _ in cache.rglob("*.nb[ic]")))}


def in_process(bench, variant) -> dict:
    cache = empty_cache(bench)
    result = first_embedding(bench, child_command(bench, "fast", variant), bench.env(NUMBA_CACHE_DIR=str(cache)))
    return dict(result, **{"cache files": float(sum(1 for _ in cache.rglob("*.nb[ic]")))})


def run(bench):
    section = Section("Cold start: first run after install, empty Numba cache", COLUMNS,
                      fast_variant=IN_PROCESS["default"])
    stale = sorted(str(p) for p in bench.site.rglob("*.nb[ic]"))
    if stale:
        raise RuntimeError(f"the snapshot holds Numba cache files, the cold start would not be cold: {stale[:3]}")
    count = bench.pick(3, 1)
    plans = [(CLI, lambda: cli(bench))]
    plans += [(name, lambda v=variant: in_process(bench, v)) for variant, name in IN_PROCESS.items()]
    plans += [(f"ort/{v}", lambda v=v: first_embedding(bench, child_command(bench, "ort", v), bench.env()))
              for v in ("plain graph", "fused graph")]
    results = rounds(bench, plans, count)
    for name, samples in results.items():
        key, variant = ("ort", name[4:]) if name.startswith("ort/") else ("fast", name)
        files = "" if isinstance(samples, Exception) or "cache files" not in samples[0] else \
            f"{samples[0]['cache files']:.0f} Numba cache files written;"
        add_row(section, key, variant, samples, note=files)
    section.rounds = f"medians of interleaved rounds: {count}, of one fresh process per row"
    section.about = (
        "How the cache is emptied: bertnp is installed from this tree with `pip install --target` into a temp "
        "folder (Python byte code compiled, as pip does; no Numba cache files: checked) and every bertnp process "
        "here gets NUMBA_CACHE_DIR set to a new empty folder. With NUMBA_CACHE_DIR set, the first of Numba's "
        "cache locators (numba.core.caching.UserProvidedCacheLocator) serves every cached function, for files in "
        "site-packages and in a checkout alike, so no `__pycache__` beside the sources is read. The note counts "
        "the index and data files a process wrote into its empty folder (0: it answered without compiling). "
        f"`{CLI}`: `bertnp embed weights/minilm {TEXT!r}` (the installed console script, JSON to stdout), wall "
        "time from spawn to exit. `default` and `numba`: the warm-start child (below: `bertnp.Embedder(folder)`, "
        "and backend=\"numba\" by name) with the empty cache. ONNX Runtime has no compile cache: its first run is "
        "the warm-start child, timed in the same rounds. Peak RSS: ru_maxrss (wait4).")
    section.targets += [
        Target("cold first run: `bertnp embed` end to end <= ORT's process", "whole process", 1.0, CLI),
        Target("cold first run: import -> first embedding <= ORT's", "import -> first embedding", 1.0)]
    return section
