"""Embed and classify Spark DataFrame columns with bertnp on every executor (pip install 'bertnp[spark]').

    from bertnp import spark as bs
    df = bs.with_embeddings(df, "/models/minilm", input_col="text")      # + embedding: array<float>
    df = bs.with_labels(df, "/models/agnews", input_col="title")        # + class: struct, see LABEL_TYPE
    df = bs.with_labels(df, "/models/reranker", input_col="query", pair_col="passage")

The same two steps as pyspark.ml stages, for Pipelines that are fitted, saved and loaded elsewhere:
bs.BertSentenceEmbeddings and bs.BertForSequenceClassification (bertnp/spark_ml.py).

How it runs. Each function checks the model and its options on the driver first: it loads the checkpoint
there (memory-mapped, reference backend) and builds the Embedder or Classifier, so a wrong path, a broken
config.json or a bad option fails at once with bertnp's own error, before any job starts. It then adds
one Arrow pandas UDF in the iterator form (Iterator[pd.Series] -> Iterator[pd.Series]). The UDF's closure
holds only strings and numbers (the model's path and the options): no weights travel with a task. Each
Python worker loads the model on its first batch and keeps it in a module-level cache keyed by path and
options; later batches, and later tasks of the same worker, reuse it (Spark reuses Python workers unless
spark.python.worker.reuse is false).

Where the model comes from:
  - model="/shared/models/minilm": a folder that every worker reads at that same path (a shared file
    system, or the same path on every node). A relative path is made absolute on the driver.
  - ship=True: the driver adds its own copy of the folder to SparkFiles and each worker reads the copy
    Spark fetched for it (SparkFiles.get): SparkContext.addFile(folder, recursive=True) in local mode, and
    elsewhere (where Spark adds no local folder) SparkContext.addArchive of an uncompressed zip, which each
    executor unpacks. Classic Spark only.
  - model="spark-files:NAME": a folder already distributed under NAME, by sc.addFile(folder,
    recursive=True), sc.addArchive("minilm.zip#NAME") or spark-submit --archives minilm.zip#NAME.
  - a Hugging Face hub id is resolved by each worker in its own cache (bertnp.load).

Threads. On a machine with C cores running W Python workers at once, each worker's bertnp runs on C/W
threads (BLAS, Numba, and the tokenizer's Rayon pool): local[N] gives W = N / spark.task.cpus on the
driver's C cores; on a cluster each task holds spark.task.cpus of its executor's cores, so a worker runs
on spark.task.cpus threads (raise it, with spark.executor.cores, to give each worker more). threads=n
overrides. Spark itself sets OMP_NUM_THREADS=spark.executor.cores (1 unless set) in Python workers,
which would leave local[1] on one thread of many; bertnp sets the pools itself instead.

Null, empty and whitespace-only texts (either text of a pair) give a null result; the job goes on.

BERTNP_SPARK_LOG=/path/file (set it for the workers, e.g. with spark.executorEnv.BERTNP_SPARK_LOG) makes
each worker append one JSON line per model load and per batch: pid, model, threads. A diagnostic; the
tests read it to show one load per worker.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import socket
import tempfile
import time
import zipfile
from typing import Iterator, Tuple

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import StringType

from .backends import BACKENDS
from .bert import load
from .classifier import Classifier
from .embedder import Embedder
from .errors import BertnpError, InputError
from .hub import resolve

SPARK_FILES = "spark-files:"
EMBEDDING_TYPE = "array<float>"
# The top label and its score, the labels `classify(top_k)` returns (every label over the threshold for
# sigmoid), and every label's score: Spark NLP's annotation result and metadata in one struct.
LABEL_TYPE = "struct<label: string, score: float, labels: array<string>, scores: map<string, float>>"
LOG_ENV = "BERTNP_SPARK_LOG"
LOCAL_MASTER = re.compile(r"local(?:\[(\*|\d+)(?:\s*,\s*\d+)?\])?")


def with_embeddings(df: DataFrame, model, input_col: str = "text", output_col: str = "embedding", *,
                    pair_col: str | None = None, max_length: int | None = None, pooling=None,
                    normalize: bool | None = None, case_sensitive: bool | None = None, batch_size: int = 32,
                    backend: str | None = None, threads: int | None = None, ship: bool = False) -> DataFrame:
    """df plus `output_col`: array<float>, Embedder(model, max_length, pooling, normalize).embed(texts).

    pair_col: a second string column; each row then embeds the pair (input_col, pair_col).
    batch_size: texts per forward pass (Spark NLP's batchSize); Spark's Arrow batches
    (spark.sql.execution.arrow.maxRecordsPerBatch rows) are split into these, sorted by length.
    max_length, pooling, normalize: as Embedder (Spark NLP's maxSentenceLength, poolingStrategy); None
    reads the sentence-transformers folder.
    case_sensitive=False lower-cases texts (both texts of a pair) first, as Classifier's and Spark NLP's
    caseSensitive; None or True leaves case to the model's own settings.
    """
    options = {"max_length": max_length, "pooling": _hashable(pooling), "normalize": normalize,
               "case_sensitive": case_sensitive}
    spec = _plan(df, model, "embed", options, input_col, pair_col, batch_size, backend, threads, ship)
    columns = _columns(input_col, pair_col)
    if pair_col is None:
        def embed(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
            return _embed_batches(spec, ((b,) for b in batches))
    else:
        def embed(batches: Iterator[Tuple[pd.Series, pd.Series]]) -> Iterator[pd.Series]:
            return _embed_batches(spec, batches)
    return df.withColumn(output_col, pandas_udf(embed, EMBEDDING_TYPE)(*columns))


def with_labels(df: DataFrame, model, input_col: str = "text", output_col: str = "class", *,
                pair_col: str | None = None, labels=None, activation: str | None = None, threshold: float = 0.5,
                max_length: int | None = None, case_sensitive: bool | None = None, long_text: str = "truncate",
                stride: int | None = None, coalesce: bool = False, top_k: int | None = 1, batch_size: int = 32,
                backend: str | None = None, threads: int | None = None, ship: bool = False) -> DataFrame:
    """df plus `output_col`: struct<label, score, labels, scores> (LABEL_TYPE) from bertnp's Classifier.

    labels, activation, threshold, max_length, case_sensitive, long_text, stride, coalesce: as Classifier
    (Spark NLP's activation, threshold, maxSentenceLength, caseSensitive, coalesceSentences). A checkpoint
    without a classifier head classifies zero-shot against `labels`.
    top_k: how many labels go into `labels`, as Classifier.classify(top_k): 1 (the default) keeps the best
    one for softmax and every label reaching `threshold` for sigmoid; None keeps them all. `label` and
    `score` are the first of them (null when no label reaches the threshold); `scores` holds every label.
    pair_col: a second string column; each row then classifies the pair (input_col, pair_col).
    """
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise InputError(f"top_k={top_k!r}: expected a positive integer or None")
    if pair_col is not None and long_text == "chunk":
        raise InputError("long_text='chunk' splits single texts; with pair_col, pairs are truncated instead")
    options = {"labels": _hashable(labels), "activation": activation, "threshold": threshold,
               "max_length": max_length, "case_sensitive": case_sensitive, "long_text": long_text,
               "stride": stride, "coalesce": coalesce}
    spec = _plan(df, model, "classify", options, input_col, pair_col, batch_size, backend, threads, ship)
    spec["top_k"] = top_k
    columns = _columns(input_col, pair_col)
    if pair_col is None:
        def classify(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
            return _classify_batches(spec, ((b,) for b in batches))
    else:
        def classify(batches: Iterator[Tuple[pd.Series, pd.Series]]) -> Iterator[pd.DataFrame]:
            return _classify_batches(spec, batches)
    result = pandas_udf(classify, LABEL_TYPE)(*columns)
    # A pandas UDF returns a struct as a DataFrame, which has no null rows: rows without text come back
    # with null fields, and this makes the whole struct null there (scores is null only for those rows).
    return df.withColumn(output_col, F.when(result["scores"].isNotNull(), result))


STAGES = ("BertSentenceEmbeddings", "BertForSequenceClassification")


def __getattr__(name):
    """bs.BertSentenceEmbeddings, bs.BertForSequenceClassification: imported (with pyspark.ml) when first named."""
    if name in STAGES:
        from . import spark_ml

        return getattr(spark_ml, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- driver side ---------------------------------------------------------------------------------------


def _plan(df, model, kind, options, input_col, pair_col, batch_size, backend, threads, ship) -> dict:
    """Check everything on the driver; return the spec the workers get: strings, numbers, tuples."""
    for name in (input_col, pair_col):
        if name is not None:
            _check_string_column(df, name)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size={batch_size!r}: expected a positive integer")
    if backend is not None and backend not in BACKENDS:
        raise BertnpError(f"backend={backend!r}: expected one of {', '.join(BACKENDS)} (or None for the fastest)")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise InputError(f"threads={threads!r}: expected a positive integer")
    spark = df.sparkSession
    local_folder, worker_model = _locate(spark, model, ship)
    _build(kind, load(local_folder, backend="numpy"), options)  # bertnp's error for a bad model or option
    if ship:
        worker_model = _ship(spark, local_folder)
    return {"kind": kind, "model": worker_model, "options": options, "batch_size": batch_size,
            "backend": backend, "threads": threads or worker_threads(spark)}


def _locate(spark, model, ship) -> tuple[str, str]:
    """(folder the driver validates, name the workers resolve)."""
    model = os.fspath(model)
    if model.startswith(SPARK_FILES):
        if ship:
            raise InputError(f"model={model!r} is already in SparkFiles: leave ship=False")
        name = model[len(SPARK_FILES):]
        folder = _spark_file(name)
        if folder is None:
            raise BertnpError(f"{model}: no folder {name!r} in SparkFiles on the driver; add one with "
                              f"sc.addFile(folder, recursive=True), sc.addArchive('model.zip#{name}') or "
                              f"spark-submit --archives model.zip#{name}, or pass a path with ship=True")
        return folder, model
    folder = resolve(model)  # a folder, or a hub id found in (or fetched into) the driver's cache
    if ship or os.path.isdir(model):
        return os.path.abspath(folder), os.path.abspath(folder)
    return folder, model  # a hub id: each worker resolves it in its own cache


_SHIPPED: dict = {}  # (SparkContext's applicationId, folder) -> the SparkFiles name the driver added it under


def _ship(spark, folder) -> str:
    """Add the driver's `folder` to SparkFiles, once per SparkContext; the name workers resolve.

    Spark adds a local folder (SparkContext.addFile(folder, recursive=True)) in local mode only: for any
    other master the folder goes as an archive instead, an uncompressed zip (weights hardly compress) that
    SparkContext.addArchive("NAME.zip#NAME") has each executor unpack under the folder's name.
    """
    try:
        sc = spark.sparkContext
    except Exception as e:  # Spark Connect has no SparkContext
        raise BertnpError(f"ship=True needs a classic SparkContext to add {folder} ({e}); copy the model to "
                          "a path every worker reads, or distribute it with --archives") from None
    key = (sc.applicationId, folder)
    if key in _SHIPPED:
        return SPARK_FILES + _SHIPPED[key]
    name = os.path.basename(folder.rstrip(os.sep))
    for uri in list(sc.listFiles) + list(sc.listArchives):
        location, _, fragment = uri.partition("#")
        path = re.sub(r"^file:(//)?", "", location).rstrip("/")
        if (fragment or os.path.basename(path)) == name:
            if os.path.abspath(path) == folder:  # added by the caller already
                return SPARK_FILES + name
            raise BertnpError(f"ship=True: SparkFiles already holds {name!r} from {uri}; {folder} has the "
                              "same folder name, so rename one of them")
    if LOCAL_MASTER.fullmatch(sc.master or ""):
        sc.addFile(folder, recursive=True)
    else:
        sc.addArchive(f"{_zip(folder, name)}#{name}")
    _SHIPPED[key] = name
    return SPARK_FILES + name


def _zip(folder, name) -> str:
    """`folder` as NAME.zip, uncompressed, in a temporary folder the driver keeps until it exits: Spark's
    file server reads it from there whenever an executor asks."""
    directory = tempfile.mkdtemp(prefix="bertnp-ship-")
    atexit.register(shutil.rmtree, directory, True)
    path = os.path.join(directory, f"{name}.zip")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for parent, _, files in os.walk(folder, followlinks=True):
            for file in sorted(files):
                archive.write(os.path.join(parent, file), os.path.relpath(os.path.join(parent, file), folder))
    return path


def _spark_file(name) -> str | None:
    """The folder SparkFiles holds under `name` on this machine, or None.

    Spark unpacks sc.addFile/addArchive and spark.archives under SparkFiles' root; YARN puts spark-submit
    --archives in the container's working directory (the root on executors, not on a cluster-mode driver).
    """
    from pyspark import SparkFiles

    candidates = []
    try:
        candidates.append(SparkFiles.get(name))
    except Exception:  # no SparkContext here (Spark Connect): SparkFiles has no root
        pass
    candidates.append(os.path.abspath(name))
    return next((path for path in candidates if os.path.isdir(path)), None)


def _check_string_column(df, name):
    if name not in df.columns:
        raise InputError(f"column {name!r} not in the DataFrame (columns: {', '.join(df.columns)})")
    kind = df.schema[name].dataType
    if not isinstance(kind, StringType):
        raise InputError(f"column {name!r} is {kind.simpleString()}: bertnp reads string columns")


def _columns(input_col, pair_col) -> list[Column]:
    return [F.col(input_col)] + ([F.col(pair_col)] if pair_col is not None else [])


def _hashable(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def worker_threads(spark) -> int:
    """Threads for each Python worker's bertnp: its executor's cores / the workers running at once.

    local[N] (local = local[1], local[*] = every core): the driver's C usable cores over
    W = N / spark.task.cpus workers. A cluster: spark.task.cpus, the cores Spark gives each task.
    """
    conf = spark.conf
    task_cpus = max(1, int(conf.get("spark.task.cpus", "1") or 1))
    match = LOCAL_MASTER.fullmatch(conf.get("spark.master", "") or "")
    if match is None:
        return task_cpus
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    slots = cores if match.group(1) == "*" else int(match.group(1) or 1)
    workers = max(1, slots // task_cpus)
    return max(1, cores // workers)


# -- worker side ---------------------------------------------------------------------------------------

_MODELS: dict = {}  # (kind, resolved folder, options, backend) -> Embedder | Classifier, per worker process
_THREADS: list = []  # the thread count this process's pools were set to


def _build(kind, model, options, backend=None):
    if kind == "embed":
        options = dict(options)
        lowercase = options.pop("case_sensitive") is False
        embedder = Embedder(model, backend=backend, **options)
        if lowercase:  # the rule Embedder applies for sentence-transformers' do_lower_case
            embedder.lowercase = True
        return embedder
    return Classifier(model, backend=backend, **{k: list(v) if k == "labels" and v else v for k, v in options.items()})


def _worker_model(spec):
    model = spec["model"]
    if model.startswith(SPARK_FILES):
        folder = _spark_file(model[len(SPARK_FILES):])
        if folder is None:
            raise BertnpError(f"{model}: no such folder in SparkFiles on worker {socket.gethostname()} (pid "
                              f"{os.getpid()}), nor in its working directory {os.getcwd()}")
        model = folder
    key = (spec["kind"], model, tuple(sorted(spec["options"].items())), spec["backend"])
    if key not in _MODELS:
        start = time.perf_counter()
        _use_threads(spec["threads"])  # before the load: the backend may start thread pools
        _MODELS[key] = _build(spec["kind"], model, spec["options"], spec["backend"])
        _log(spec, "load", folder=model, seconds=round(time.perf_counter() - start, 3), threads=spec["threads"],
             **_pool_sizes())
    return _MODELS[key]


def _use_threads(n):
    """BLAS, Numba and Rayon (the tokenizer) on n threads in this worker process."""
    if _THREADS == [n]:
        return
    os.environ.setdefault("RAYON_NUM_THREADS", str(n))  # read when the tokenizer first runs in parallel
    try:
        from .kernels import set_threads  # the fast path's own setter, when it has one
    except ImportError:
        set_threads = None
    if set_threads is not None:
        import numba

        set_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    else:
        try:
            import numba
        except ImportError:
            pass
        else:
            numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        pass
    else:
        threadpool_limits(limits=n, user_api="blas")
    _THREADS[:] = [n]


def _pool_sizes() -> dict:
    sizes = {}
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        pass
    else:
        sizes["blas_threads"] = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    try:
        import numba
    except ImportError:
        pass
    else:
        sizes["numba_threads"] = numba.get_num_threads()
    return sizes


def _log(spec, event, **fields):
    """With BERTNP_SPARK_LOG set: one JSON line naming the event, this process, and the model and options."""
    path = os.environ.get(LOG_ENV)
    if path:
        line = {"event": event, "pid": os.getpid(), "kind": spec["kind"], "model": spec["model"],
                "options": spec["options"], **fields}
        with open(path, "a", encoding="utf-8") as f:  # one short append per line: safe across processes
            f.write(json.dumps(line) + "\n")


def _texts(columns) -> tuple[list, list]:
    """(rows with text, their texts or pairs): null, empty and whitespace-only texts are left out."""
    rows, items = [], []
    for i, values in enumerate(zip(*columns)):
        if all(isinstance(v, str) and v.strip() for v in values):
            rows.append(i)
            items.append(values[0] if len(values) == 1 else tuple(values))
    return rows, items


def _embed_batches(spec, batches):
    embedder = _worker_model(spec)
    for columns in batches:
        rows, items = _texts(columns)
        result = [None] * len(columns[0])
        if items:
            for row, vector in zip(rows, embedder.embed(items, batch_size=spec["batch_size"])):
                result[row] = vector
        _log(spec, "batch", rows=len(result), texts=len(items))
        yield pd.Series(result, dtype=object)


def _classify_batches(spec, batches):
    classifier = _worker_model(spec)
    names = classifier.labels
    for columns in batches:
        rows, items = _texts(columns)
        n = len(columns[0])
        label, score, chosen, scores = [None] * n, np.full(n, np.nan, np.float32), [None] * n, [None] * n
        if items:
            for row, probabilities in zip(rows, classifier.predict_proba(items, batch_size=spec["batch_size"])):
                order = _selected(probabilities, classifier, spec["top_k"])
                if order:
                    label[row], score[row] = names[order[0]], probabilities[order[0]]
                chosen[row] = [names[j] for j in order]
                scores[row] = {name: float(p) for name, p in zip(names, probabilities)}
        _log(spec, "batch", rows=n, texts=len(items))
        yield pd.DataFrame({"label": label, "score": score, "labels": chosen, "scores": scores})


def _selected(probabilities, classifier, top_k) -> list[int]:
    """The label indices Classifier.classify(top_k) returns for one text, best first."""
    order = list(np.argsort(-probabilities, kind="stable"))
    if top_k is not None and classifier.activation == "sigmoid":
        order = [j for j in order if probabilities[j] >= classifier.threshold]
        return order[:top_k] if top_k > 1 else order
    return order if top_k is None else order[:top_k]
