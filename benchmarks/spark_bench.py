"""bertnp through Spark (local[1], local[2], ...) against bertnp alone in one process, on the same texts.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/spark_bench.py [--texts 2000]
        [--masters local[1],local[2]] [--repeats 3] [--wait-idle SECONDS] [--output PATH]

Workload: the stdlib docstring corpus (benchmarks/corpus.py), all-MiniLM-L6-v2 through bertnp's Embedder
(mean pooling, normalized, 256 tokens), batches of 32.
- "bertnp, one process": Embedder.embed on every text in this process, bertnp on all cores.
- "Spark local[N]": bertnp.spark.with_embeddings on a DataFrame of the same texts in 4N partitions,
  forced with a noop write. Each of the N Python workers runs bertnp on cores/N threads. The first job
  starts the workers and loads the model in each (reported as "first job"); the next --repeats jobs
  reuse the loaded workers.
Each Spark job is timed right after a run of bertnp alone (the idle Spark session costs ~0.02 cores), so
both see the same machine, and each figure is the best of its runs: on a shared machine, the least
disturbed one. Throughput is texts/s; the ratios are measured in this run. "background cores": the most cores anything
else kept busy in the idle second before each timed run (an idle Spark costs ~0.02; --wait-idle waits
for it to drop); above 0.1 the figure is flagged as noisy. Prints a markdown table for RESULTS.md (and
writes it to --output when given).
"""

from __future__ import annotations

import os
import sys

BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
BLAS_ENV_SET = {name: os.environ[name] for name in BLAS_ENV if name in os.environ}  # read before numpy loads

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
MINILM = HERE.parent / "weights" / "minilm"
BATCH = 32
PARTITIONS_PER_WORKER = 4  # evens out long and short partitions between the workers
WAIT_IDLE = {"seconds": 0.0}  # --wait-idle
NOISY = 0.1  # cores busy elsewhere, just before a timed run, above which its figure is flagged


def load_corpus(limit: int) -> list[str]:
    sys.path.insert(0, str(HERE))
    import corpus

    return corpus.load(limit)


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def blas() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown BLAS (threadpoolctl not installed)"
    pools = [p for p in threadpool_info() if p["user_api"] == "blas"]
    return ", ".join(f"{p['internal_api']} {p.get('version')} ({p.get('architecture')}, {p['num_threads']} threads)"
                     for p in pools) or "no BLAS found"


def busy_seconds() -> float:
    """CPU seconds every process on the machine has spent busy since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def background_load(seconds=1.0) -> float:
    """Cores kept busy over a short interval in which this benchmark (and its idle Spark) does nothing."""
    before = busy_seconds()
    time.sleep(seconds)
    return (busy_seconds() - before) / seconds


def settle() -> float:
    """Before a timed run: wait (up to --wait-idle seconds) for the machine to go idle; the cores still busy."""
    deadline = time.perf_counter() + WAIT_IDLE["seconds"]
    busy = background_load()
    while busy > NOISY and time.perf_counter() < deadline:
        busy = background_load()
    return busy


class Timings:
    """Timed runs of one engine: texts/s of the best run (the least disturbed), and the background then."""

    def __init__(self, texts):
        self.texts, self.runs = texts, []  # (texts/s, background cores)

    def time(self, fn):
        busy = settle()
        start = time.perf_counter()
        out = fn()
        self.runs.append((len(self.texts) / (time.perf_counter() - start), busy))
        return out

    @property
    def best(self):
        return max(self.runs)


def spark_run(master, texts, embedder, alone, repeats):
    """Spark local[N], timed alternately with bertnp alone in this process so that both see the same
    machine: (first job s, Timings, threads per worker, workers, embeddings)."""
    os.environ["PYSPARK_PYTHON"] = os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    from bertnp import spark as bs

    session = (SparkSession.builder.master(master).appName("bertnp-spark-bench")
               .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
               .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    try:
        workers = session.sparkContext.defaultParallelism
        rows = [(i, t) for i, t in enumerate(texts)]
        df = session.createDataFrame(rows, "id long, text string").repartition(PARTITIONS_PER_WORKER * workers).cache()
        df.count()  # the texts sit in the JVM before timing: the figures time embedding, not parallelize
        embedded = bs.with_embeddings(df, str(MINILM), batch_size=BATCH)
        noop = embedded.write.format("noop").mode("overwrite")
        start = time.perf_counter()
        noop.save()
        first = time.perf_counter() - start
        timings = Timings(texts)
        for _ in range(repeats):
            alone.time(lambda: embedder.embed(texts, batch_size=BATCH))
            timings.time(noop.save)
        result = {row["id"]: row["embedding"] for row in embedded.collect()}
        vectors = np.array([result[i] for i in range(len(texts))], np.float32)
        return first, timings, bs.worker_threads(session), workers, vectors
    finally:
        session.stop()


def noisy(busy, short=False) -> str:
    if busy <= NOISY:
        return ""
    return " (noisy)" if short else f"  WARNING: other processes kept {busy:.2f} cores busy: figures are low"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=2000, help="corpus paragraphs (default 2000)")
    parser.add_argument("--masters", default="local[1],local[2]", help="comma-separated Spark masters")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per engine and session (best)")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="before each timed run, wait up to this long for other processes to go idle")
    parser.add_argument("--output", help="also write the markdown here")
    args = parser.parse_args(argv)
    WAIT_IDLE["seconds"] = args.wait_idle
    if BLAS_ENV_SET:
        print(f"warning: {BLAS_ENV_SET} set: OpenBLAS may run slower kernels; run under "
              f"env -u {' -u '.join(BLAS_ENV)}", file=sys.stderr)

    texts = load_corpus(args.texts)
    print(f"{len(texts)} docstring paragraphs, MiniLM, batches of {BATCH}, {cores()} cores", flush=True)
    from bertnp.embedder import Embedder

    embedder = Embedder(str(MINILM))
    reference = embedder.embed(texts, batch_size=BATCH)  # warm-up: Numba's cached kernels, the page cache
    alone = Timings(texts)
    spark_rows = []
    for master in args.masters.split(","):
        first, timings, threads, workers, vectors = spark_run(master.strip(), texts, embedder, alone, args.repeats)
        diff = float(np.abs(vectors - reference).max())
        rate, busy = timings.best
        print(f"  Spark {master}: {rate:.1f} texts/s ({workers} x {threads} threads; first job "
              f"{first:.1f} s; max abs diff from one process {diff:.1e}){noisy(busy)}", flush=True)
        layout = f"{workers} worker{'s' * (workers > 1)} x {threads} thread{'s' * (threads > 1)}"
        spark_rows.append((f"Spark {master}", layout, rate, first, diff, busy))
    rate, busy = alone.best
    backend = embedder.model.backend.name
    print(f"  bertnp, one process ({backend}, {cores()} threads): {rate:.1f} texts/s{noisy(busy)}", flush=True)
    rows = [("bertnp, one process", f"1 process x {cores()} threads", rate, None, 0.0, busy)] + spark_rows
    alone = rate

    base = {row[0]: row[2] for row in rows}
    lines = [
        "### Spark: bertnp on every executor (`benchmarks/spark_bench.py`)",
        "",
        f"{len(texts)} stdlib docstring paragraphs, all-MiniLM-L6-v2 Embedder (mean, normalized, 256 tokens), "
        f"batches of {BATCH}, float32, backend {backend}. {cpu_model()}, {cores()} cores; BLAS: {blas()}. "
        f"Python {platform.python_version()}. Spark jobs: {PARTITIONS_PER_WORKER} partitions per worker, "
        f"best of {args.repeats} noop writes after a first job that starts the workers and loads the model; "
        f"bertnp alone: best of {args.repeats} runs per Spark session, each just before a Spark run.",
        "",
        "| engine | layout | texts/s | vs one process | vs local[1] | first job (s) | max abs diff "
        "| background cores |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    local1 = base.get("Spark local[1]")
    for name, layout, rate, first, diff, busy in rows:
        vs_local1 = f"{rate / local1:.2f}x" if local1 and name.startswith("Spark") else ""
        lines.append(f"| {name} | {layout} | {rate:.1f} | {rate / alone:.2f}x | {vs_local1} | "
                     f"{'' if first is None else f'{first:.1f}'} | {diff:.1e} | {busy:.2f}{noisy(busy, short=True)} |")
    markdown = "\n".join(lines) + "\n"
    print("\n" + markdown)
    if args.output:
        Path(args.output).write_text(markdown, encoding="utf-8")


if __name__ == "__main__":
    main()
