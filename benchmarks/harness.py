"""The benchmark harness: engines in worker processes, interleaved timing, the machine line, the report.

A run (Bench) first installs a snapshot of this working tree into a temp folder (`pip install --target`,
as a user installs it) with its own Numba cache, so that every figure measures one version of bertnp
even while the tree changes, and the cold-start workload can run it with an empty cache.

Each engine runs in its own worker process (Worker), started with the same environment: thread counts
set explicitly (BERTNP_NUM_THREADS, OPENBLAS_NUM_THREADS and RAYON_NUM_THREADS here; torch's and ORT's
in their engine modules), the snapshot first on sys.path. Engines do not share a process, so one's
thread pools, allocator and BLAS settings cannot slow another.

`interleave` times engines in turns (A B C, B C A, C A B, ...) after the same warm-up for each: a
machine whose speed drifts or that others share slows every engine alike, and medians over the rounds
drop the outliers. It also measures how many cores other processes kept busy meanwhile.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import importlib.metadata
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MINILM = ROOT / "weights" / "minilm"
CORES = len(os.sched_getaffinity(0))
BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
PAUSE = 0.2  # seconds between two engines' turns: the previous one's spinning threads go to sleep
NOISY = 0.25  # cores kept busy by other processes above which a measurement is flagged


# ---- engines in worker processes -----------------------------------------------------------------------


class WorkerError(RuntimeError):
    pass


class Worker:
    """One engine (benchmarks/engines/<key>.py) loaded in its own process; key None: a bare process for
    `apply`. Calls are synchronous; a failure in the worker raises WorkerError with its message."""

    def __init__(self, bench: Bench, key=None, variant=None, checkpoint=None):
        self.key, self.variant = key, variant
        self.title = importlib.import_module(f"engines.{key}").TITLE if key else "worker"
        ours, theirs = socket.socketpair()
        self.process = subprocess.Popen(
            [sys.executable, "-c", f"import harness; harness.serve({theirs.fileno()})"],
            pass_fds=[theirs.fileno()], env=bench.env(), cwd=bench.workdir)
        theirs.close()
        self.conn = Connection(ours.detach())
        if key:
            try:
                self.call("load", key, variant, str(checkpoint), bench.threads, bench.prepared(key, checkpoint))
            except WorkerError:
                self.close()
                raise

    def call(self, *message):
        try:
            self.conn.send(message)
            status, value = self.conn.recv()
        except (EOFError, OSError):
            code = self.process.wait(timeout=30)
            raise WorkerError(f"{self.title} ({self.variant}) worker died (exit code {code})") from None
        if status == "error":
            raise WorkerError(value)
        return value

    def time(self, method: str, args: tuple, repeat: int, keep: bool = False):
        """(seconds of each of `repeat` calls engine.method(*args), the last output when keep)."""
        return self.call("time", method, args, repeat, keep)

    def apply(self, fn, *args):
        """fn(engine, *args) in an engine's worker, fn(*args) in a bare one (fn: a module-level function,
        pickled by name)."""
        return self.call("apply", fn, args)

    def close(self):
        """The engine's thread settings as it reports them (None when it never loaded), then exit."""
        threads = None
        try:
            if self.key:
                threads = self.call("threads")
            self.call("exit")
        except WorkerError:
            pass
        self.conn.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return threads


def serve(fd: int):
    """The worker's loop: load, time, apply, threads, exit."""
    conn = Connection(fd)
    engine = None
    while True:
        try:
            command, *args = conn.recv()
        except EOFError:  # the parent is gone
            return
        try:
            if command == "load":
                key, variant, checkpoint, threads, prepared = args
                module = importlib.import_module(f"engines.{key}")
                engine = module.Engine(Path(checkpoint), variant, threads, prepared)
                reply = None
            elif command == "time":
                method, call_args, repeat, keep = args
                fn, times, out = getattr(engine, method), [], None
                for _ in range(repeat):
                    start = time.perf_counter()
                    out = fn(*call_args)
                    times.append(time.perf_counter() - start)
                reply = (times, out if keep else None)
            elif command == "apply":
                fn, fn_args = args
                reply = fn(engine, *fn_args) if engine is not None else fn(*fn_args)
            elif command == "threads":
                reply = engine.threads()
            else:  # exit
                conn.send(("ok", None))
                return
        except BaseException as e:  # anything: the parent reports it and carries on
            conn.send(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-3)}"))
            if isinstance(e, KeyboardInterrupt):
                return
            continue
        conn.send(("ok", reply))


# ---- timing --------------------------------------------------------------------------------------------


@dataclass
class Timing:
    """One engine's timed calls: rounds[i] holds the seconds of each call of round i."""

    rounds: list = field(default_factory=list)
    warmup: list = field(default_factory=list)
    output: object = None

    def per_round(self) -> list:
        return [statistics.median(r) for r in self.rounds]

    def calls(self) -> list:
        return [t for r in self.rounds for t in r]

    def median_rate(self, units) -> float:
        """Units per second: the median over rounds of units / (a round's median call)."""
        return statistics.median(units / t for t in self.per_round())

    def percentile(self, q) -> float:
        return float(np.percentile(self.calls(), q))


@dataclass
class Interleaved:
    timings: dict  # Worker -> Timing
    load: float  # cores other processes kept busy during the timed rounds


def interleave(workers, method, args, rounds, calls=1, warmup=1, warmup_args=None, caps=None):
    """Warm every worker up with the same `warmup` calls (of warmup_args, else args), then time `rounds`
    rounds; in each, every worker in turn (the first one rotating) makes `calls` timed calls. Each
    worker's output of its first round is kept, for the agreement check.

    caps: {engine key: rounds} for slow engines that join only the first rounds."""
    timings = {w: Timing() for w in workers}
    for w in workers:
        if warmup:
            timings[w].warmup, _ = w.time(method, warmup_args or args, warmup)
    meter = LoadMeter()
    for r in range(rounds):
        turn = workers[r % len(workers):] + workers[: r % len(workers)]
        for w in turn:
            if caps and r >= caps.get(w.key, rounds):
                continue
            time.sleep(PAUSE)
            times, out = w.time(method, args, calls, keep=r == 0)
            timings[w].rounds.append(times)
            if out is not None:
                timings[w].output = out
    return Interleaved(timings, meter.cores())


def max_diff(a, b) -> float | None:
    if a is None or b is None:
        return None
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# ---- how busy the machine is ---------------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has spent since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / TICK


def own_busy_seconds(exclude=()) -> float:
    """CPU seconds of this process and its descendants, the ones they waited for included, apart from the
    processes in `exclude` (the busy-machine workload's background load counts as other processes')."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # after the name: state ppid ... utime(12) stime(13) cutime(14) cstime(15), 0-based from state
            stats[int(entry)] = (int(fields[1]), sum(int(v) for v in fields[11:15]))
    children = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [os.getpid()]
    while todo:
        pid = todo.pop()
        if pid in exclude or pid not in stats:
            continue
        total += stats[pid][1]
        todo += children.get(pid, [])
    return total / TICK


class LoadMeter:
    """Cores that other processes kept busy from construction to `cores()`."""

    exclude: set = set()  # pids that count as other processes (the background load)

    def __init__(self):
        self.start = (time.perf_counter(), machine_busy_seconds(), own_busy_seconds(self.exclude))

    def cores(self) -> float:
        wall, machine, own = time.perf_counter(), machine_busy_seconds(), own_busy_seconds(self.exclude)
        return max(0.0, ((machine - self.start[1]) - (own - self.start[2])) / max(wall - self.start[0], 1e-9))


@contextlib.contextmanager
def busy_machine(processes: int):
    """`processes` CPU-bound Python busy loops beside the benchmark (one per core), stopped on exit."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    LoadMeter.exclude = {h.pid for h in hogs}
    try:
        time.sleep(1.0)  # the scheduler has spread them over the cores
        yield
    finally:
        for hog in hogs:
            hog.terminate()
        for hog in hogs:
            hog.wait()
        LoadMeter.exclude = set()


def run_process(command, env, cwd):
    """Run a command to its end: (wall seconds, peak RSS in MiB from wait4's rusage of that process, stdout)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if process.returncode:
            raise WorkerError(f"{Path(command[0]).name} {' '.join(command[1:3])} ... exited {process.returncode}: "
                              f"{err.read().decode(errors='replace')[-400:]}")
        return wall, usage.ru_maxrss / 1024, out.read().decode()


# ---- a run ---------------------------------------------------------------------------------------------


class Bench:
    """One benchmark run: its options, its temp folder, the installed snapshot, the sections written."""

    def __init__(self, quick: bool, threads: int):
        self.quick, self.threads = quick, threads
        self.workdir = Path(tempfile.mkdtemp(prefix="bertnp-bench-"))
        self.site = self.workdir / "site"  # the snapshot of bertnp under test
        self.cache = self.workdir / "numba-cache"  # its Numba cache for every warm figure
        self.sections: list[Section] = []
        self.engine_threads: dict = {}  # (title, variant) -> what the engine reported
        self.notes: dict = {}  # heading -> lines, for the report's end (ONNX export)
        self._prepared: dict = {}

    def pick(self, full, quick):
        return quick if self.quick else full

    def skim(self, engines):
        """engines; with --quick only bertnp fast and ONNX Runtime, the engines of the targets."""
        return [e for e in engines if not self.quick or e[0] in ("fast", "ort")]

    def env(self, **changes) -> dict:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(self.site), str(HERE)]),
                   NUMBA_CACHE_DIR=str(self.cache), BERTNP_NUM_THREADS=str(self.threads),
                   OPENBLAS_NUM_THREADS=str(self.threads), RAYON_NUM_THREADS=str(self.threads),
                   HF_HUB_OFFLINE="1", HF_HUB_DISABLE_PROGRESS_BARS="1", TRANSFORMERS_VERBOSITY="error",
                   TOKENIZERS_PARALLELISM="true", PYTHONDONTWRITEBYTECODE="1")
        env.update(changes)
        return env

    def install(self):
        """pip install this tree's bertnp (a copy: the build writes beside its sources) into self.site,
        then fill self.cache with one embedding; returns the seconds it took."""
        start = time.perf_counter()
        source = self.workdir / "source"
        skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc")
        for name in ("bertnp",):
            shutil.copytree(ROOT / name, source / name, ignore=skip)
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, source / name)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                        "--no-index", "--target", str(self.site), str(source)], check=True, cwd=self.workdir,
                       stdout=subprocess.DEVNULL)
        code = ("import bertnp, bertnp.kernels; print(bertnp.__file__); "
                f"bertnp.Embedder({str(MINILM)!r}, backend='numba').embed(['warm the cache'])")
        _, _, out = run_process([sys.executable, "-c", code], self.env(), self.workdir)
        if not out.strip().startswith(str(self.site)):
            raise WorkerError(f"the workers import bertnp from {out.strip()}, not from the snapshot {self.site}")
        cached = sum(1 for _ in self.cache.rglob("*.nbi"))
        return f"{time.perf_counter() - start:.0f} s; the warm Numba cache holds {cached} index files"

    def prepared(self, key, checkpoint):
        """What engine `key` builds once per checkpoint (ORT: the exported graphs), built in a worker."""
        module = importlib.import_module(f"engines.{key}")
        if not hasattr(module, "prepare") or checkpoint is None:
            return None
        if (key, str(checkpoint)) not in self._prepared:
            folder = self.workdir / f"{key}-{len(self._prepared)}"
            folder.mkdir()
            try:
                with self.worker() as w:
                    result = w.apply(module.prepare, str(checkpoint), str(folder))
                self.notes.setdefault(module.TITLE, []).extend(result.get("notes", []))
            except WorkerError as e:
                result = e  # raised again for every engine that needs it, without trying again
            self._prepared[key, str(checkpoint)] = result
        result = self._prepared[key, str(checkpoint)]
        if isinstance(result, Exception):
            raise WorkerError(f"preparing {key} for {Path(checkpoint).name} failed: {result}")
        return result

    @contextlib.contextmanager
    def worker(self):
        w = Worker(self)
        try:
            yield w
        finally:
            w.close()

    @contextlib.contextmanager
    def engines(self, specs, checkpoint, section: Section):
        """Workers for (key, variant) specs on one checkpoint. An engine that fails to start gets a row saying
        why in `section` and is left out; their thread reports are kept at the end."""
        workers = []
        try:
            for key, variant in specs:
                try:
                    workers.append(Worker(self, key, variant, checkpoint))
                except WorkerError as e:
                    section.failed(key, variant, e)
            yield workers
        finally:
            for w in workers:
                threads = w.close()
                if threads:
                    self.engine_threads[w.title, w.variant] = threads

    def cleanup(self):
        shutil.rmtree(self.workdir, ignore_errors=True)


# ---- results -------------------------------------------------------------------------------------------


@dataclass
class Column:
    name: str
    unit: str
    higher_is_better: bool


@dataclass
class Row:
    key: str  # engine module: fast, reference, torch, ort, ...
    title: str
    variant: str
    values: dict  # column name -> float or None
    note: str = ""
    diff: float | None = None


@dataclass
class Target:
    text: str
    column: str
    factor: float  # bertnp fast / ORT must be at least this (higher is better) or at most this (lower)
    variant: str = ""  # bertnp fast's row: the section's fast_variant unless given
    profile: str = ""  # where the report shows its time op by op, when it is missed


@dataclass
class Section:
    """One workload's part of the report: a table of engines, how it was measured, its targets."""

    title: str
    columns: list
    about: str = ""
    rows: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    targets: list = field(default_factory=list)
    markdown: list = field(default_factory=list)  # free-form lines after the table (the profile)
    truth: str = ""  # whose output the diffs are against
    fast_variant: str = "numba"  # bertnp fast's row that the ratios compare with
    loads: list = field(default_factory=list)
    background: int = 0  # busy loops of our own among the other processes (the busy-machine workload)
    rounds: str = ""
    seconds: float = 0.0
    error: str = ""

    def add(self, worker_or_key, variant=None, note="", **values) -> Row:
        if isinstance(worker_or_key, Worker):
            key, title, variant = worker_or_key.key, worker_or_key.title, worker_or_key.variant
        else:
            key, title = worker_or_key, importlib.import_module(f"engines.{worker_or_key}").TITLE
        row = Row(key, title, variant, values, note)
        self.rows.append(row)
        shown = ", ".join(f"{name} {fmt(v)}" for name, v in values.items())
        print(f"  {title:22} {variant:16} {shown}  {note}", flush=True)
        return row

    def failed(self, key, variant, error):
        message = str(error).strip().splitlines()[0][:300]
        self.add(key, variant, note=f"failed: {message}", **{c.name: None for c in self.columns})
        print(f"    {error}", file=sys.stderr)

    def measured(self, result: Interleaved):
        self.loads.append(result.load)

    def agreement(self, result: Interleaved, *truths):
        """Each row's max abs difference from the output of the first of the `truths` (key, variant) that
        ran, on the same inputs."""
        outputs = {(w.key, w.variant): t.output for w, t in result.timings.items()}
        key, variant = next((t for t in truths if outputs.get(t) is not None), (None, None))
        if key is None:
            return
        self.truth = f"{importlib.import_module(f'engines.{key}').TITLE} {variant}"
        for row in self.rows:
            if row.diff is None:
                row.diff = max_diff(outputs.get((row.key, row.variant)), outputs[key, variant])

    def best(self, key, column, variant=None) -> Row | None:
        col = next(c for c in self.columns if c.name == column)
        rows = [r for r in self.rows if r.key == key and (variant is None or r.variant == variant)
                and r.values.get(column) is not None]
        if not rows:
            return None
        return (max if col.higher_is_better else min)(rows, key=lambda r: r.values[column])

    def ratio(self, row: Row, column) -> float | None:
        """How many times better bertnp fast is than `row` (above 1: fast wins)."""
        col = next(c for c in self.columns if c.name == column)
        fast = self.best("fast", column, self.fast_variant)
        if fast is None or not row.values.get(column) or not fast.values[column]:
            return None
        a, b = fast.values[column], row.values[column]
        return a / b if col.higher_is_better else b / a


def fmt(value, unit="") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    text = f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return f"{text} {unit}".strip()


# ---- the machine ---------------------------------------------------------------------------------------


def cpu_model() -> str:
    fields = {}
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    flags = fields.get("flags", "").split()
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{fields.get('model name', platform.processor())} ({isa})"


def memory_gib() -> float:
    with open("/proc/meminfo") as f:
        return int(f.readline().split()[1]) / 2**20


def load_average() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def versions() -> str:
    found = [f"python {platform.python_version()}"]
    for name in ("numpy", "numba", "tokenizers", "threadpoolctl", "torch", "transformers", "onnxruntime", "onnx",
                 "pyspark"):
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} not installed")
    return ", ".join(found)


def blas_line() -> str:
    from threadpoolctl import threadpool_info

    pools = [p for p in threadpool_info() if p["user_api"] == "blas"]
    return "; ".join(f"{p['internal_api']} {p.get('version')}, kernel {p.get('architecture')}, {p['num_threads']} "
                     f"threads ({os.path.basename(p['filepath'])})" for p in pools) or "none found"


def git_state(output: Path) -> tuple[str, list]:
    """(HEAD's commit, the changed files under bertnp/ and benchmarks/ but the report itself)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.rstrip()

    commit = git("rev-parse", "HEAD").strip() or "unknown (not a git checkout)"
    changed = [line[3:] for line in git("status", "--porcelain", "--", "bertnp", "benchmarks").splitlines()]
    report = str(output.resolve().relative_to(ROOT)) if output.resolve().is_relative_to(ROOT) else None
    return commit, [path for path in changed if path != report]


# ---- the report ----------------------------------------------------------------------------------------


def ratio_text(factor: float, threshold: float, ok: bool) -> str:
    """factor as "1.23x", with more digits where a missed target's two would show the threshold itself
    (1.2989 against 1.3: "1.299x", not "1.30x")."""
    digits = 2
    while not ok and digits < 4 and round(factor, digits) == threshold:
        digits += 1
    return f"{factor:.{digits}f}x"


def target_rows(sections) -> list:
    """The targets' table, then for each one missed how far it is and where its profile is."""
    lines = ["| target | bertnp fast | ONNX Runtime | fast / ORT | needed | verdict |", "|---|---|---|---:|---:|---|"]
    missed = []
    for section in sections:
        for target in section.targets:
            col = next(c for c in section.columns if c.name == target.column)
            fast = section.best("fast", target.column, target.variant or section.fast_variant)
            ort = section.best("ort", target.column)
            if fast is None or ort is None:
                lines.append(f"| {target.text} | {fmt(fast and fast.values[target.column], col.unit)} | "
                             f"{fmt(ort and ort.values[target.column], col.unit)} | n/a | | not measured |")
                continue
            factor = fast.values[target.column] / ort.values[target.column]
            ok = factor >= target.factor if col.higher_is_better else factor <= target.factor
            needed = f"{'>=' if col.higher_is_better else '<='} {target.factor:.2g}x"
            word = "**pass**" if ok else "**MISS**"
            lines.append(f"| {target.text} | {fmt(fast.values[target.column], col.unit)} ({fast.variant}) | "
                         f"{fmt(ort.values[target.column], col.unit)} ({ort.variant}) | "
                         f"{ratio_text(factor, target.factor, ok)} | {needed} | {word} |")
            if not ok:
                gap = target.factor / factor if col.higher_is_better else factor / target.factor
                missed.append(f"- {target.text}: bertnp fast would need {100 * (gap - 1):.1f}% more speed than it "
                              f"measured here. Where its time goes: {target.profile or 'its section below'}.")
    return lines + ([""] + missed if missed else [])


def section_lines(section: Section) -> list:
    load = max(section.loads) if section.loads else None
    ours = f", our {section.background} busy loops included," if section.background else ""
    busy = "" if load is None else f"; other processes{ours} kept {load:.2f} cores busy" + \
        (" (**NOISY**)" if load - section.background > NOISY else "")
    lines = [f"## {section.title}", "", f"_{section.rounds or 'not measured'}; the workload took "
             f"{section.seconds:.0f} s{busy}._", ""]
    if section.error:
        lines += [f"**The workload failed:** `{section.error}`", ""]
    if section.about:
        lines += [section.about, ""]
    if section.rows:
        first = section.columns[0]
        ratios = [None if (r.key, r.variant) == ("fast", section.fast_variant) else section.ratio(r, first.name)
                  for r in section.rows]
        has_ratio, has_diff = any(x is not None for x in ratios), any(r.diff is not None for r in section.rows)
        head = ["engine", "variant"] + [f"{c.name} ({c.unit})" for c in section.columns]
        if has_ratio:
            head.append(f"bertnp fast vs this ({first.name})")
        if has_diff:
            head.append(f"max abs diff vs {section.truth}")
        head.append("note")
        lines += ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 3) + "---|"]
        for row, ratio in zip(section.rows, ratios):
            cells = [row.title, row.variant] + [fmt(row.values.get(c.name)) for c in section.columns]
            if has_ratio:
                cells.append("" if ratio is None else f"{ratio:.2f}x")
            if has_diff:
                cells.append("" if row.diff is None else f"{row.diff:.1e}")
            cells.append(row.note.replace("|", "/"))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += [f"- {note}" for note in section.notes]
    lines += section.markdown
    return lines + [""]


def write_report(path: Path, bench: Bench, meta: dict):
    commit, changed = meta["git"]
    lines = ["# bertnp benchmarks", "",
             f"Written by `{meta['command']}` on {meta['date']} in {meta['elapsed']:.0f} s: {meta['mode']}. "
             "Every line of this file comes from that run; ratios compare engines measured in the same run.", "",
             f"Commit `{commit}`" + (", clean in bertnp/ and benchmarks/." if not changed else ".")]
    lines.append("")
    if changed:
        lines += [f"> **DIRTY TREE: the figures are for uncommitted changes** in {len(changed)} files: "
                  + ", ".join(f"`{p}`" for p in changed[:12]) + (" ..." if len(changed) > 12 else ""), ""]
    if meta["blas_env"]:
        lines += [f"> **WARNING: {meta['blas_env']} was set**: OpenBLAS used other kernels than this CPU's own; "
                  "every NumPy figure is off. Run `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python "
                  "benchmarks/run.py`.", ""]
    if meta["background"] > NOISY:
        lines += [f"> **WARNING: the machine was shared**: other processes kept {meta['background']:.2f} cores busy "
                  "on average (the busy-machine workload's own background load excluded). Figures are lower and "
                  "noisier than on an idle machine; the interleaved rounds share the noise between engines.", ""]
    lines += ["## Machine", "",
              f"- CPU: {cpu_model()}; {CORES} cores for this process ({os.cpu_count()} online); "
              f"{memory_gib():.1f} GiB RAM; {platform.platform()}",
              f"- BLAS under NumPy (threadpoolctl, in this process): {meta['blas']}",
              "- " + ", ".join(f"{k}: {os.environ.get(k, 'unset')}" for k in BLAS_ENV),
              f"- Versions: {versions()}",
              f"- bertnp under test: the working tree at the commit above, installed with `pip install --target` "
              f"into a temp folder and imported from there by every worker ({meta['install']})",
              f"- Load: load average {meta['load_before']} before the run, {load_average()} after; other processes "
              f"kept {meta['background']:.2f} cores busy on average over the run",
              "", "## Threads", "",
              f"Every engine runs on {bench.threads} threads, set explicitly: BERTNP_NUM_THREADS, OPENBLAS_NUM_THREADS "
              "and RAYON_NUM_THREADS (the tokenizer) in every worker's environment, torch.set_num_threads, ORT's "
              "intra_op_num_threads. As each engine reported them after its runs:", ""]
    lines += [f"- {title}, {variant}: {threads}" for (title, variant), threads in sorted(bench.engine_threads.items())]
    lines += ["", "## Targets (issue 13)", "",
              "bertnp fast against the better ONNX Runtime graph, both measured in this run (each in its section "
              "below). bertnp fast is backend=\"numba\", except in the start-up targets: there it is what the CLI "
              "and `bertnp.Embedder(folder)` pick by default, as apps meet it.", ""]
    lines += target_rows(bench.sections) + [""]
    for section in bench.sections:
        lines += section_lines(section)
    for heading, notes in bench.notes.items():
        lines += [f"## {heading}: preparation", ""] + [f"- {note}" for note in notes] + [""]
    path.write_text("\n".join(lines).rstrip() + "\n")


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
