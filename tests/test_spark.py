"""bertnp.spark on pyspark local[2]: the same numbers as the local API, nulls, pairs, one load per worker.

One SparkSession for the module (it takes ~10 s to start). Arrow batches of 4 rows and several partitions
per DataFrame, so every job runs many batches through each Python worker. Workers log each model load
and each batch to a file (BERTNP_SPARK_LOG), which the load-once and thread tests read.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections import Counter

import numpy as np
import pytest

from conftest import WEIGHTS, require
from parity import assert_close
from test_families import tokenizer_folders  # noqa: F401
from texts import PAIRS, TEXTS

import bertnp
from bertnp.classifier import Classifier
from bertnp.embedder import Embedder

TINY = os.path.join(WEIGHTS, "tiny")
ATOL = 1e-6
ARROW_BATCH = 4
PARTITIONS = 3
NEWS = ["the team won the game on sunday", "stocks fell 12%", "hello", "the market rallied after the company",
        "Rain is expected. The match was called off! Shares rose?", "A CAPITALISED HEADLINE ABOUT SPORTS"]


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    require("pyspark")
    require("pyarrow")
    require("pandas")
    from pyspark.sql import SparkSession

    log = tmp_path_factory.mktemp("spark") / "workers.jsonl"
    saved = {name: os.environ.get(name) for name in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON")}
    os.environ["PYSPARK_PYTHON"] = os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable  # workers get our venv
    session = (SparkSession.builder.master("local[2]").appName("bertnp-tests")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.driver.host", "127.0.0.1")
               .config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.sql.shuffle.partitions", str(PARTITIONS))
               .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_BATCH))
               .config("spark.executorEnv.BERTNP_SPARK_LOG", str(log))
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
def bs(spark):
    from bertnp import spark as module

    return module


def worker_log(spark):
    path = spark.sparkContext.getConf().get("spark.executorEnv.BERTNP_SPARK_LOG")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def frame(spark, texts, pairs=None, partitions=PARTITIONS):
    """A DataFrame (id, text[, passage]) spread over `partitions`, in a shuffled row order."""
    rows = [(i, t) if pairs is None else (i, t, p) for i, (t, p) in enumerate(zip(texts, pairs or texts))]
    schema = "id long, text string" + ("" if pairs is None else ", passage string")
    return spark.createDataFrame(rows, schema).repartition(partitions)


def by_id(df, column):
    return {row["id"]: row[column] for row in df.collect()}


def has_text(*values):
    return all(isinstance(v, str) and v.strip() for v in values)


WITH_NULLS = TEXTS + [None, "   ", "a last short sentence", None]


def test_embeddings_equal_the_local_embedder(spark, bs, minilm_path):
    got = by_id(bs.with_embeddings(frame(spark, WITH_NULLS), minilm_path), "embedding")
    valid = [i for i, t in enumerate(WITH_NULLS) if has_text(t)]
    assert sorted(i for i in got if got[i] is None) == [i for i in range(len(WITH_NULLS)) if i not in valid]
    want = Embedder(minilm_path).embed([WITH_NULLS[i] for i in valid])
    error = assert_close("Spark embeddings vs Embedder", np.array([got[i] for i in valid]), want, ATOL)
    print(f"Spark vs local Embedder, {len(valid)} texts: max abs error {error:.2e}")


def test_embedding_options_and_pairs(spark, bs, minilm_path):
    pairs = PAIRS + [("a question", None), (None, "a passage")]
    queries, passages = [p[0] for p in pairs], [p[1] for p in pairs]
    unit = dict(pooling="max", normalize=True, max_length=24)
    raw = dict(pooling="cls", normalize=False, max_length=20)
    df = frame(spark, queries, passages)
    df = bs.with_embeddings(df, minilm_path, pair_col="passage", output_col="unit", batch_size=2, **unit)
    df = bs.with_embeddings(df, minilm_path, pair_col="passage", output_col="raw", **raw)
    rows = {row["id"]: row for row in df.collect()}
    assert all(rows[i]["unit"] is None and rows[i]["raw"] is None for i in (3, 4))
    got = np.array([rows[i]["unit"] for i in range(3)])
    error = assert_close("Spark pair embeddings vs Embedder", got, Embedder(minilm_path, **unit).embed(PAIRS), ATOL)
    print(f"Spark vs local Embedder on pairs (max pooling, 24 tokens): max abs error {error:.2e}")
    # Unnormalized vectors reach |x| ~ 6: float32 rounding (which the batch's padding can change on the
    # reference backend) is then judged relative to the largest value.
    got, want = np.array([rows[i]["raw"] for i in range(3)]), Embedder(minilm_path, **raw).embed(PAIRS)
    scale = float(np.abs(want).max())
    error = assert_close("Spark unnormalized pair embeddings / max |x|", got / scale, want / scale, ATOL)
    print(f"Spark vs local Embedder on pairs (cls, unnormalized, max |x| {scale:.1f}): relative error {error:.2e}")


def check_labels(got, classifier, items, top_k=1):
    """Each struct against Classifier.classify(top_k) and predict_proba; returns the max abs score error."""
    results = classifier.classify(items, top_k=top_k)
    proba = classifier.predict_proba(items)
    errors = [0.0]
    for struct, result, row in zip(got, results, proba):
        assert struct is not None
        assert struct["labels"] == [r["label"] for r in result]
        assert struct["label"] == (result[0]["label"] if result else None)
        if result:
            errors.append(abs(struct["score"] - result[0]["score"]))
        else:
            assert struct["score"] is None
        assert sorted(struct["scores"]) == sorted(classifier.labels)  # a Spark map keeps no order
        errors.append(float(np.abs(np.array([struct["scores"][name] for name in classifier.labels]) - row).max()))
    error = max(errors)
    assert error <= ATOL, f"Spark scores vs Classifier: max abs error {error:.3e} > {ATOL:.0e}"
    return error


def test_labels_equal_the_local_classifier(spark, bs):
    texts = NEWS + [None, ""]
    got = by_id(bs.with_labels(frame(spark, texts), TINY), "class")
    assert got[len(NEWS)] is None and got[len(NEWS) + 1] is None
    error = check_labels([got[i] for i in range(len(NEWS))], Classifier(TINY), NEWS)
    print(f"Spark vs local Classifier: max abs error {error:.2e}")


@pytest.mark.parametrize("model_type", ["distilbert", "xlm-roberta", "albert"])
def test_relatives_unchanged(spark, bs, tmp_path, tokenizer_folders, model_type):
    """BERT's relatives (issue 17) through the same functions: labels equal the local Classifier, embeddings
    the local Embedder, on a DistilBERT, an XLM-R (sentencepiece, RoBERTa positions) and an ALBERT checkpoint."""
    from test_families import NLI_LABELS, SMALL, make_family_checkpoint

    folder = make_family_checkpoint(tmp_path / "nli", model_type, "sequence", SMALL[model_type], 21, tokenizer_folders,
                                    0.3, labels=NLI_LABELS)
    texts = NEWS + [None]
    got = by_id(bs.with_labels(frame(spark, texts), folder, top_k=None), "class")
    assert got[len(NEWS)] is None
    check_labels([got[i] for i in range(len(NEWS))], Classifier(folder), NEWS, top_k=None)
    got = by_id(bs.with_embeddings(frame(spark, texts), folder), "embedding")
    assert_close(f"Spark {model_type} embeddings vs Embedder", np.array([got[i] for i in range(len(NEWS))]),
                 Embedder(folder).embed(NEWS), ATOL)


@pytest.mark.parametrize("options", [
    dict(activation="sigmoid", threshold=0.68, top_k=1),
    dict(case_sensitive=False, coalesce=True, max_length=12, top_k=None, labels=["w", "s", "b"]),
    dict(long_text="chunk", max_length=8, stride=2, top_k=2),
], ids=["sigmoid-threshold", "lowercase-coalesce", "chunk"])
def test_classifier_options(spark, bs, options):
    top_k = options.pop("top_k")
    got = by_id(bs.with_labels(frame(spark, NEWS), TINY, top_k=top_k, **options), "class")
    classifier = Classifier(TINY, **options)
    error = check_labels([got[i] for i in range(len(NEWS))], classifier, NEWS, top_k)
    print(f"Spark vs local Classifier {options}: max abs error {error:.2e}")
    if options.get("activation") == "sigmoid":
        sizes = {len(got[i]["labels"]) for i in got}
        assert {0, 2} <= sizes, f"expected texts with no label and with two labels over the threshold: {sizes}"


def test_label_pairs(spark, bs):
    queries = [q for q, _ in PAIRS] + ["no passage"]
    passages = [p for _, p in PAIRS] + [None]
    got = by_id(bs.with_labels(frame(spark, queries, passages), TINY, pair_col="passage", top_k=None), "class")
    assert got[len(PAIRS)] is None
    error = check_labels([got[i] for i in range(len(PAIRS))], Classifier(TINY), PAIRS, top_k=None)
    print(f"Spark vs local Classifier on pairs: max abs error {error:.2e}")


def test_model_shipped_with_add_file(spark, bs, tmp_path):
    folder = tmp_path / "tiny_shipped"
    shutil.copytree(TINY, folder)
    got = by_id(bs.with_labels(frame(spark, NEWS), str(folder), ship=True), "class")
    check_labels([got[i] for i in range(len(NEWS))], Classifier(TINY), NEWS)
    # Within 1e-6 again, not bit-equal to `got`: a worker may answer on the reference path while its numba
    # backend prepares.
    again = by_id(bs.with_labels(frame(spark, NEWS), "spark-files:tiny_shipped"), "class")
    check_labels([again[i] for i in range(len(NEWS))], Classifier(TINY), NEWS)
    loads = [e for e in worker_log(spark) if e["event"] == "load" and e["model"] == "spark-files:tiny_shipped"]
    assert loads and all(e["folder"] != str(folder) and e["folder"].endswith("tiny_shipped") for e in loads), loads
    with pytest.raises(bertnp.BertnpError, match="no folder 'elsewhere' in SparkFiles"):
        bs.with_labels(frame(spark, NEWS), "spark-files:elsewhere")


def test_one_load_per_worker_across_partitions_and_batches(spark, bs):
    texts = [f"sentence number {i} about the game and the market" for i in range(48)]
    partitions = 6
    df = bs.with_labels(frame(spark, texts, partitions=partitions), TINY, max_length=30)  # options no other test uses
    assert len(df.collect()) == len(texts)
    events = [e for e in worker_log(spark) if e["options"].get("max_length") == 30 and e["kind"] == "classify"]
    loads = Counter(e["pid"] for e in events if e["event"] == "load")
    batches = [e for e in events if e["event"] == "batch"]
    print(f"{len(batches)} Arrow batches over {partitions} partitions; loads per worker pid: {dict(loads)}")
    assert set(loads.values()) == {1}, f"a worker loaded the model more than once: {dict(loads)}"
    assert {e["pid"] for e in batches} <= set(loads)
    assert len(loads) < partitions, "every task loaded the model: workers were not reused"
    assert sum(e["rows"] for e in batches) == len(texts), "the UDF ran more than once per row"
    assert len(batches) >= len(texts) // ARROW_BATCH


def test_workers_run_cores_over_workers_threads(spark, bs):
    expected = max(1, len(os.sched_getaffinity(0)) // 2)  # C cores over local[2]'s 2 workers
    assert bs.worker_threads(spark) == expected
    bs.with_labels(frame(spark, NEWS), TINY, threshold=0.25).collect()
    loads = [e for e in worker_log(spark) if e["event"] == "load"]
    assert any(e["options"].get("threshold") == 0.25 for e in loads)
    for e in loads:
        assert e["threads"] == expected
        assert set(e.get("blas_threads", [expected])) == {expected}, e
        assert e.get("numba_threads", expected) == expected, e


class FakeSpark:
    def __init__(self, **conf):
        self.conf = conf


@pytest.mark.parametrize("conf,cores,threads", [
    ({"spark.master": "local"}, 8, 8),
    ({"spark.master": "local[2]"}, 8, 4),
    ({"spark.master": "local[*]"}, 8, 1),
    ({"spark.master": "local[16]"}, 8, 1),
    ({"spark.master": "local[4, 3]", "spark.task.cpus": "2"}, 8, 4),
    ({"spark.master": "yarn", "spark.executor.cores": "8"}, 8, 1),
    ({"spark.master": "spark://host:7077", "spark.task.cpus": "4"}, 8, 4),
])
def test_thread_rule(bs, monkeypatch, conf, cores, threads):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert bs.worker_threads(FakeSpark(**conf)) == threads


def test_tasks_carry_strings_not_weights(spark, bs, monkeypatch, minilm_path):
    from pyspark import cloudpickle

    functions = []
    real = bs.pandas_udf
    monkeypatch.setattr(bs, "pandas_udf", lambda f, kind: functions.append(f) or real(f, kind))
    bs.with_embeddings(frame(spark, NEWS), minilm_path)
    bs.with_labels(frame(spark, NEWS), TINY, pair_col=None)
    sizes = [len(cloudpickle.dumps(f)) for f in functions]
    print(f"pickled UDF sizes: {sizes} bytes")
    assert len(sizes) == 2 and max(sizes) < 20_000


def test_bad_models_and_options_fail_on_the_driver(spark, bs, tmp_path):
    df = frame(spark, NEWS)
    with pytest.raises(bertnp.BertnpError, match="not a folder"):
        bs.with_embeddings(df, str(tmp_path / "missing"))
    broken = tmp_path / "broken"
    shutil.copytree(TINY, broken)
    config = json.loads((broken / "config.json").read_text())
    del config["hidden_size"]
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(bertnp.ConfigError, match="hidden_size"):
        bs.with_labels(df, str(broken))
    with pytest.raises(bertnp.InputError, match="pooling='bogus'"):
        bs.with_embeddings(df, TINY, pooling="bogus")
    with pytest.raises(bertnp.InputError, match="labels has 2 names"):
        bs.with_labels(df, TINY, labels=["a", "b"])
    with pytest.raises(bertnp.InputError, match="column 'title' not in the DataFrame"):
        bs.with_labels(df, TINY, input_col="title")
    with pytest.raises(bertnp.InputError, match="column 'id' is bigint"):
        bs.with_labels(df, TINY, input_col="id")
    with pytest.raises(bertnp.InputError, match="long_text='chunk'"):
        bs.with_labels(frame(spark, NEWS, NEWS), TINY, pair_col="passage", long_text="chunk")
