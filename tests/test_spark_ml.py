"""bertnp.spark's pyspark.ml stages: in a Pipeline with Spark ML's own stages, saved with the checkpoint inside
and loaded elsewhere (a fresh SparkSession in another process; a standalone cluster of separate JVMs), on a
streaming DataFrame, equal to the functions and the local API, and refusing bad params at transform().

One local[2] SparkSession for the module (test_spark's fixture). The pipeline is fitted once (`trained`),
saved, moved and stripped of its model folder; the tests that load it share that folder. The child processes
run this file as a script (`child`, at the bottom).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from types import SimpleNamespace

import numpy as np
import pytest

from parity import assert_close
from texts import PAIRS
from test_spark import ATOL, NEWS, TINY, bs, check_labels, frame, spark, worker_log  # noqa: F401  (fixtures too)

import bertnp
from bertnp.classifier import Classifier
from bertnp.embedder import Embedder

# Four topics a sentence encoder tells apart; LogisticRegression learns them from the embeddings.
TOPICS = ["sports", "markets", "weather", "cooking"]
TRAIN = {
    "sports": ["The striker scored twice as the home team won the cup final.",
               "The tennis champion lost her serve in the third set.",
               "Fans cheered when the goalkeeper saved a late penalty.",
               "The coach praised his players after a hard-fought league victory.",
               "The marathon runner broke the course record by two minutes.",
               "Their quarterback threw three touchdowns in the second half.",
               "The cyclist won the mountain stage of the race.",
               "The basketball team clinched a playoff spot with a win at home."],
    "markets": ["Shares fell sharply after the bank reported weaker quarterly profits.",
                "The central bank raised interest rates by a quarter point.",
                "Investors moved money into bonds as stock prices tumbled.",
                "The company's revenue beat analysts' forecasts this quarter.",
                "Oil prices climbed as traders worried about supply.",
                "The currency weakened against the dollar after the inflation report.",
                "The merger sent the retailer's stock up twelve percent.",
                "Bond yields rose as markets priced in more rate hikes."],
    "weather": ["Heavy rain and strong winds are expected along the coast tonight.",
                "Temperatures will drop below freezing with snow by the weekend.",
                "A heat wave brought record high temperatures to the city.",
                "Forecasters warned of thunderstorms and possible hail this afternoon.",
                "Thick fog delayed flights at the airport this morning.",
                "The hurricane is forecast to make landfall on Thursday.",
                "Sunny skies and a light breeze are expected tomorrow.",
                "Flood warnings were issued after days of steady rain."],
    "cooking": ["Whisk the eggs with sugar, then fold in the flour gently.",
                "Simmer the tomato sauce with garlic and basil for twenty minutes.",
                "Roast the chicken in a hot oven until the skin is crisp.",
                "Knead the bread dough and let it rise for an hour.",
                "Season the soup with salt, pepper and a squeeze of lemon.",
                "Chop the onions finely and fry them in butter until golden.",
                "Bake the cake at 180 degrees until a skewer comes out clean.",
                "Marinate the beef overnight in soy sauce and ginger."],
}
HELD_OUT = {
    "sports": ["The midfielder was sent off and his team lost the derby.",
               "She won the gold medal in the 200 metres sprint.",
               "The golfer sank a long putt to win the tournament."],
    "markets": ["Stocks rallied after the government announced tax cuts.",
                "The firm's shares slumped as sales disappointed investors.",
                "Gold prices hit a record as the dollar slipped."],
    "weather": ["Expect showers in the morning and clearing skies later.",
                "A blizzard buried the town under half a metre of snow.",
                "Gusty winds and cold temperatures will continue overnight."],
    "cooking": ["Stir the risotto slowly, adding the stock a ladle at a time.",
                "Grill the vegetables and drizzle them with olive oil.",
                "Melt the chocolate over a pan of simmering water."],
}
# LogisticRegression's probabilities from embeddings that may differ by float32 rounding between runs
# (other batches, another backend on a worker's first batch): |coefficients| stay small at this regParam.
PROBABILITY_ATOL = 1e-5
CHILD_TIMEOUT = 300
MASTER, WORKER = "org.apache.spark.deploy.master.Master", "org.apache.spark.deploy.worker.Worker"


def labelled(spark, texts_by_topic, start=0):
    rows = [(start + i, text, float(TOPICS.index(topic)))
            for i, (topic, text) in enumerate((t, x) for t in TOPICS for x in texts_by_topic[t])]
    return spark.createDataFrame(rows, "id long, text string, label double").repartition(3)


def predictions(df) -> dict:
    """{id: (prediction, probability list)} from a transformed DataFrame."""
    return {row["id"]: (row["prediction"], list(row["probability"]))
            for row in df.select("id", "prediction", "probability").collect()}


def compare_predictions(name, got, want) -> float:
    """Identical predictions, probabilities within PROBABILITY_ATOL; returns the max probability error."""
    assert sorted(got) == sorted(want), f"{name}: other rows"
    changed = {i: (got[i][0], want[i][0]) for i in want if got[i][0] != want[i][0]}
    assert not changed, f"{name}: predictions changed (got, want): {changed}"
    error = float(max(np.abs(np.array(got[i][1]) - np.array(want[i][1])).max() for i in want))
    print(f"{name}: {len(want)} identical predictions, max abs probability error {error:.2e}")
    assert error <= PROBABILITY_ATOL, f"{name}: max abs probability error {error:.3e} > {PROBABILITY_ATOL:.0e}"
    return error


def link_tree(source, target):
    """A model folder of symbolic links to `source`'s entries: what a Hugging Face cache snapshot looks like."""
    os.makedirs(target)
    for name in os.listdir(source):
        os.symlink(os.path.join(source, name), os.path.join(target, name))


@pytest.fixture(scope="module")
def trained(spark, bs, minilm_path, tmp_path_factory):
    """Pipeline([BertSentenceEmbeddings(vector), LogisticRegression]) fitted on TRAIN; its predictions on
    HELD_OUT; saved with the checkpoint inside, moved to another folder, and the model folder removed."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression

    root = tmp_path_factory.mktemp("pipeline")
    folder = root / "checkpoints" / "minilm"
    link_tree(minilm_path, folder)
    embed = bs.BertSentenceEmbeddings(model=str(folder), outputCol="features", outputType="vector",
                                      handleInvalid="skip", embedModel=True)
    classify = LogisticRegression(featuresCol="features", labelCol="label", regParam=0.01, maxIter=10)
    start = time.perf_counter()
    textless = spark.createDataFrame([(99, None, 0.0), (98, " ", 1.0)], "id long, text string, label double")
    model = Pipeline(stages=[embed, classify]).fit(labelled(spark, TRAIN).union(textless))  # handleInvalid skips
    fitted = time.perf_counter()
    held_out = labelled(spark, HELD_OUT, start=100)
    local = predictions(model.transform(held_out))
    print(f"\nPipeline.fit on {sum(map(len, TRAIN.values()))} texts: {fitted - start:.1f} s; "
          f"{model.stages[1].summary.totalIterations} LogisticRegression iterations; "
          f"predictions on {len(local)} texts: {time.perf_counter() - fitted:.1f} s")
    truth = {row["id"]: row["label"] for row in held_out.collect()}
    model.write().save(str(root / "saved" / "topics"))
    shutil.move(root / "saved" / "topics", root / "elsewhere")
    shutil.rmtree(root / "checkpoints")
    rows = [(row["id"], row["text"]) for row in held_out.collect()]
    return SimpleNamespace(path=str(root / "elsewhere"), local=local, truth=truth, rows=rows, stage=embed.uid,
                           original=str(folder))


def test_pipeline_predicts_held_out_topics(trained):
    right = sum(trained.local[i][0] == label for i, label in trained.truth.items())
    accuracy = right / len(trained.truth)
    print(f"held-out accuracy of BertSentenceEmbeddings -> LogisticRegression: {right}/{len(trained.truth)} "
          f"({accuracy:.0%}; chance 25%)")
    assert accuracy >= 0.75


def test_saved_pipeline_holds_its_model_and_loads_in_a_fresh_session(trained, tmp_path):
    stage_folder = glob.glob(os.path.join(trained.path, "stages", f"0_{trained.stage}"))
    assert len(stage_folder) == 1, os.listdir(os.path.join(trained.path, "stages"))
    copies = glob.glob(os.path.join(stage_folder[0], "model-*"))
    assert len(copies) == 1
    files = [os.path.join(d, f) for d, _, names in os.walk(copies[0]) for f in names if not f.endswith(".crc")]
    assert any(f.endswith("model.safetensors") for f in files) and any(f.endswith("1_Pooling/config.json") for f in files)
    assert not [f for f in files if os.path.islink(f)], "the embedded copy must hold the files, not links to them"
    assert not os.path.exists(trained.original)

    result = run_child(tmp_path, "local[2]", trained)
    assert result["stages"] == [{"uid": trained.stage, "model": copies[0], "ship": False}]
    compare_predictions("fresh local[2] session vs the fitted pipeline", result["rows"], trained.local)


def test_vectors_feed_kmeans_and_lsh(spark, bs, minilm_path):
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.feature import BucketedRandomProjectionLSH
    from pyspark.ml.linalg import DenseVector

    embed = bs.BertSentenceEmbeddings(model=minilm_path, outputType="vector", outputCol="features")
    df = embed.transform(labelled(spark, TRAIN)).cache()
    rows = df.collect()
    assert all(isinstance(row["features"], DenseVector) and len(row["features"]) == 384 for row in rows)
    clusters = KMeans(k=len(TOPICS), seed=7, featuresCol="features").fit(df).transform(df).collect()
    pairs = [(row["label"], row["prediction"]) for row in clusters]
    purity = sum(max(sum(1 for t, c in pairs if t == topic and c == cluster) for topic in range(4))
                 for cluster in set(c for _, c in pairs)) / len(pairs)
    lsh = BucketedRandomProjectionLSH(inputCol="features", outputCol="hashes", bucketLength=0.5, numHashTables=4,
                                      seed=7).fit(df)
    query = rows[0]["features"]
    neighbours = lsh.approxNearestNeighbors(df, query, 4).collect()
    print(f"KMeans(k=4) purity on the four topics: {purity:.2f}; LSH neighbours of a {TOPICS[int(rows[0]['label'])]} "
          f"text: {[TOPICS[int(r['label'])] for r in neighbours]}")
    df.unpersist()
    assert purity >= 0.5  # four clusters drawn at random from four balanced topics: ~0.35
    assert neighbours[0]["id"] == rows[0]["id"] and neighbours[0]["distCol"] < 1e-6
    assert sum(r["label"] == rows[0]["label"] for r in neighbours[1:]) >= 2


@pytest.fixture(scope="module")
def cased(tmp_path_factory):
    """weights/tiny with a cased tokenizer: lower-casing then changes the tokens, so caseSensitive shows."""
    folder = tmp_path_factory.mktemp("cased") / "tiny_cased"
    shutil.copytree(TINY, folder)
    path = folder / "tokenizer.json"
    tokenizer = json.loads(path.read_text())
    tokenizer["normalizer"]["lowercase"] = False
    path.write_text(json.dumps(tokenizer))
    return str(folder)


def by_id(df, column):
    return {row["id"]: row[column] for row in df.collect()}


def test_embedding_stage_equals_with_embeddings_and_the_embedder(spark, bs, cased):
    texts = NEWS + [None, "   "]
    options = dict(pooling="max", normalize=True, max_length=16)
    stage = bs.BertSentenceEmbeddings(model=cased, poolingStrategy="max", normalize=True, maxSentenceLength=16,
                                      caseSensitive=False, batchSize=3)
    got = by_id(stage.transform(frame(spark, texts)), "embedding")
    assert got[len(NEWS)] is None and got[len(NEWS) + 1] is None
    got = np.array([got[i] for i in range(len(NEWS))])
    embedder = Embedder(cased, **options)
    lowered = embedder.embed([t.lower() for t in NEWS])
    error = assert_close("BertSentenceEmbeddings(caseSensitive=False) vs Embedder on lower-cased texts", got, lowered, ATOL)
    function = by_id(bs.with_embeddings(frame(spark, NEWS), cased, case_sensitive=False, batch_size=3, **options),
                     "embedding")
    assert_close("stage vs with_embeddings", got, np.array([function[i] for i in range(len(NEWS))]), ATOL)
    print(f"embedding stage vs Embedder: max abs error {error:.2e}")
    difference = float(np.abs(embedder.embed(NEWS) - lowered).max())
    assert difference > 1e-2, f"lower-casing changed nothing on the cased model ({difference:.1e})"

    queries, passages = [q for q, _ in PAIRS], [p for _, p in PAIRS]
    stage.setPairCol("passage").setOutputType("vector").setOutputCol("vector")
    rows = by_id(stage.transform(frame(spark, queries + ["no passage"], passages + [None])), "vector")
    assert rows[len(PAIRS)] is None
    want = embedder.embed([(q.lower(), p.lower()) for q, p in PAIRS])
    error = assert_close("pair vectors vs Embedder", np.array([rows[i].toArray() for i in range(len(PAIRS))]), want, ATOL)
    print(f"pair vectors (caseSensitive=False) vs Embedder: max abs error {error:.2e}")


@pytest.mark.parametrize("params,options,top_k", [
    (dict(activation="sigmoid", threshold=0.3, topK=2, maxSentenceLength=12, batchSize=2, caseSensitive=False,
          coalesceSentences=True, labels=["w", "s", "b"]),
     dict(activation="sigmoid", threshold=0.3, max_length=12, case_sensitive=False, coalesce=True,
          labels=["w", "s", "b"]), 2),
    (dict(longText="chunk", maxSentenceLength=8, stride=2, topK=None, threads=1, backend="numpy"),
     dict(long_text="chunk", max_length=8, stride=2), None),
], ids=["sigmoid-lowercase-coalesce-labels", "chunk-threads-backend"])
def test_classification_stage_equals_with_labels_and_the_classifier(spark, bs, cased, params, options, top_k):
    texts = NEWS + [None, ""]
    stage = bs.BertForSequenceClassification(model=cased, outputCol="label", **params)
    got = by_id(stage.transform(frame(spark, texts)), "label")
    assert got[len(NEWS)] is None and got[len(NEWS) + 1] is None
    got = [got[i] for i in range(len(NEWS))]
    error = check_labels(got, Classifier(cased, **options), NEWS, top_k)
    function = by_id(bs.with_labels(frame(spark, NEWS), cased, top_k=top_k, batch_size=params.get("batchSize", 32),
                                    **options), "class")
    for struct, other in zip(got, [function[i] for i in range(len(NEWS))]):
        assert struct["labels"] == other["labels"]
        assert max(abs(struct["scores"][k] - other["scores"][k]) for k in struct["scores"]) <= ATOL
    print(f"classification stage {params} vs Classifier: max abs error {error:.2e}")
    if "threads" in params:
        loads = [e for e in worker_log(spark) if e["event"] == "load" and e["options"].get("stride") == 2]
        assert loads and {e["threads"] for e in loads} == {1}


def test_classification_pairs_and_persistence(spark, bs, tmp_path):
    stage = bs.BertForSequenceClassification(model=TINY, pairCol="passage", topK=None, threshold=0.25)
    queries, passages = [q for q, _ in PAIRS] + [None], [p for _, p in PAIRS] + ["a passage"]
    got = by_id(stage.transform(frame(spark, queries, passages)), "class")
    assert got[len(PAIRS)] is None
    check_labels([got[i] for i in range(len(PAIRS))], Classifier(TINY), PAIRS, top_k=None)

    stage.save(str(tmp_path / "stage"))
    assert not glob.glob(str(tmp_path / "stage" / "model-*")), "embedModel=False saves the path, not the model"
    loaded = bs.BertForSequenceClassification.load(str(tmp_path / "stage"))
    assert loaded.uid == stage.uid
    params = {p.name: v for p, v in stage.extractParamMap().items()}
    assert {p.name: v for p, v in loaded.extractParamMap().items()} == params
    assert params["topK"] is None and params["model"] == TINY


def write_json_lines(path, rows):
    """Write, then rename into place: a file source must never see half a file."""
    staging = f"{path}.tmp"
    with open(staging, "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"id": i, "text": t}) + "\n" for i, t in rows)
    os.rename(staging, path)


def test_streaming_two_micro_batches_equal_the_batch_run(spark, bs, trained, tmp_path):
    from pyspark.ml import PipelineModel

    model = PipelineModel.load(trained.path)
    source = tmp_path / "incoming"
    source.mkdir()
    rows = trained.rows + [(999, None)]
    schema = "id long, text string"

    def both(df):  # a function, then the saved pipeline's stages (which skip rows without text)
        return model.transform(bs.with_labels(df, TINY, output_col="class")).select(
            "id", "features", "prediction", "probability", "class")

    stream = spark.readStream.schema(schema).option("maxFilesPerTrigger", 1).json(str(source))
    query = (both(stream).writeStream.format("memory").queryName("bertnp_stream").outputMode("append")
             .option("checkpointLocation", str(tmp_path / "checkpoint")).start())
    try:
        write_json_lines(source / "part-0.json", rows[:7])
        query.processAllAvailable()
        write_json_lines(source / "part-1.json", rows[7:])
        query.processAllAvailable()
        batches = [p["numInputRows"] for p in query.recentProgress if p["numInputRows"]]
    finally:
        query.stop()
    assert batches == [7, len(rows) - 7], batches
    streamed = {row["id"]: row for row in spark.table("bertnp_stream").collect()}
    batch = {row["id"]: row for row in both(spark.read.schema(schema).json(str(source))).collect()}
    valid = [i for i, _ in trained.rows]
    assert sorted(streamed) == sorted(batch) == sorted(valid)  # handleInvalid="skip" dropped the row without text
    compare_predictions("streaming vs batch", {i: (streamed[i]["prediction"], list(streamed[i]["probability"]))
                                               for i in valid},
                        {i: (batch[i]["prediction"], list(batch[i]["probability"])) for i in valid})
    error = assert_close("streamed vs batch features", np.array([streamed[i]["features"].toArray() for i in valid]),
                         np.array([batch[i]["features"].toArray() for i in valid]), ATOL)
    for i in valid:
        assert streamed[i]["class"]["labels"] == batch[i]["class"]["labels"]
        assert max(abs(streamed[i]["class"]["scores"][k] - v) for k, v in batch[i]["class"]["scores"].items()) <= ATOL
    print(f"streaming ({batches} rows per micro-batch) vs batch: features max abs error {error:.2e}")


def test_bad_params_fail_at_transform_before_any_job(spark, bs, tmp_path):
    df = frame(spark, NEWS)
    embeddings, classification = bs.BertSentenceEmbeddings, bs.BertForSequenceClassification
    cases = [
        (embeddings(), bertnp.InputError, "model is not set"),
        (embeddings(model=str(tmp_path / "missing")), bertnp.ConfigError, "not a folder"),
        (embeddings(model=TINY, poolingStrategy="bogus"), bertnp.InputError, "pooling='bogus'"),
        (embeddings(model=TINY, outputType="matrix"), bertnp.InputError, "outputType='matrix'"),
        (embeddings(model=TINY, batchSize=0), bertnp.InputError, "batch_size=0"),
        (embeddings(model=TINY, inputCol="title"), bertnp.InputError, "column 'title' not in the DataFrame"),
        (classification(model=TINY, activation="bogus"), bertnp.InputError, "activation='bogus'"),
        (classification(model=TINY, topK=0), bertnp.InputError, "top_k=0"),
        (classification(model=TINY, labels=["a", "b"]), bertnp.InputError, "labels has 2 names"),
        (classification(model=TINY, inputCol="id"), bertnp.InputError, "column 'id' is bigint"),
        (classification(model=TINY, maxSentenceLength=4096), bertnp.InputError, "max_length=4096"),
    ]
    sc, group = spark.sparkContext, "bertnp-bad-params"
    sc.setJobGroup(group, "transform() with bad params")
    try:
        for stage, error, match in cases:
            with pytest.raises(error, match=match) as raised:
                stage.transform(df)
            message = str(raised.value)
            assert message.startswith(f"{stage.uid}: ") and "\n" not in message, message
        assert list(sc.statusTracker().getJobIdsForGroup(group)) == []
        classification(model=TINY).transform(df).collect()  # the tracker does see this group's jobs
        assert list(sc.statusTracker().getJobIdsForGroup(group))
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
        sc.setLocalProperty("spark.job.description", None)
    with pytest.raises(bertnp.InputError, match="batchSize='many': expected an integer$"):
        embeddings().setBatchSize("many")  # a wrong type fails when it is set
    with pytest.raises(bertnp.ConfigError, match="embedModel: .*not a folder"):
        embeddings(model=str(tmp_path / "missing"), embedModel=True).save(str(tmp_path / "saved"))


# -- a standalone cluster ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_process(pid: int, main_class: str) -> bool:
    """Is `pid` a live (not zombie) JVM running main_class? Only those are ever signalled."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            command = f.read().decode(errors="replace")
    except (OSError, IndexError):
        return False
    return state != "Z" and main_class in command


@contextlib.contextmanager
def standalone_cluster(root, workers=2):
    """A master and `workers` workers of one core each, each its own JVM, started with the spark-daemon.sh that
    pyspark ships: what Spark's sbin/start-master.sh and start-worker.sh run (pyspark's wheel leaves those two
    out). Yields the master's URL. Always stopped with spark-daemon.sh stop; a JVM still alive 20 s
    later is killed by the pid spark-daemon.sh recorded."""
    import pyspark

    home = os.path.dirname(pyspark.__file__)
    daemon = os.path.join(home, "sbin", "spark-daemon.sh")
    for name in ("conf", "logs", "pids", "local", "work"):
        (root / name).mkdir()
    env = {**os.environ, "SPARK_HOME": home, "SPARK_CONF_DIR": str(root / "conf"), "SPARK_LOG_DIR": str(root / "logs"),
           "SPARK_PID_DIR": str(root / "pids"), "SPARK_LOCAL_DIRS": str(root / "local"),
           "SPARK_IDENT_STRING": f"bertnp-test-{os.getpid()}", "SPARK_LOCAL_IP": "127.0.0.1",
           "PYSPARK_PYTHON": sys.executable}
    for name in ("SPARK_NO_DAEMONIZE", "SPARK_MASTER"):  # foreground mode; rsync from a master
        env.pop(name, None)
    started, jvms = [], {}

    def daemons(action, *commands):
        """spark-daemon.sh ACTION for each (class, instance, args...), run side by side (each start waits ~3 s)."""
        running = [subprocess.Popen(["bash", daemon, action, cls, str(n), *args], env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True) for cls, n, *args in commands]
        for process in running:
            out, _ = process.communicate(timeout=120)
            print(out.strip())

    def record_pids():
        for cls, n in started:
            path = root / "pids" / f"spark-{env['SPARK_IDENT_STRING']}-{cls}-{n}.pid"
            if path.exists():
                jvms[int(path.read_text())] = cls

    master_port, master_ui = free_port(), free_port()
    url = f"spark://127.0.0.1:{master_port}"
    try:
        started.append((MASTER, 1))
        daemons("start", (MASTER, 1, "--host", "127.0.0.1", "--port", str(master_port), "--webui-port", str(master_ui)))
        record_pids()
        worker_commands = []
        for n in range(1, workers + 1):
            started.append((WORKER, n))
            worker_commands.append((WORKER, n, "--host", "127.0.0.1", "--port", str(free_port()), "--webui-port",
                                    str(free_port()), "--cores", "1", "--memory", "1g", "--work-dir",
                                    str(root / "work" / f"worker-{n}"), url))
        daemons("start", *worker_commands)
        record_pids()
        deadline, alive = time.monotonic() + 120, 0
        while alive < workers:
            assert time.monotonic() < deadline, f"{alive} of {workers} workers registered with the master in 120 s"
            time.sleep(1)
            with contextlib.suppress(OSError, ValueError):
                with urllib.request.urlopen(f"http://127.0.0.1:{master_ui}/json/", timeout=5) as response:
                    state = json.load(response)
                alive = sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")
        yield url
    finally:
        record_pids()
        with contextlib.suppress(Exception):
            daemons("stop", *[(cls, n) for cls, n in reversed(started) if cls == WORKER])
        with contextlib.suppress(Exception):
            daemons("stop", (MASTER, 1))
        deadline = time.monotonic() + 20
        while any(spark_process(pid, cls) for pid, cls in jvms.items()) and time.monotonic() < deadline:
            time.sleep(0.5)
        for pid, cls in jvms.items():
            if spark_process(pid, cls):
                print(f"{cls} (pid {pid}) still running after spark-daemon.sh stop: SIGKILL")
                os.kill(pid, signal.SIGKILL)


def logs_tail(folder, lines=30) -> str:
    parts = []
    for path in sorted(glob.glob(os.path.join(folder, "**", "*"), recursive=True)):
        if os.path.isfile(path) and (path.endswith(".out") or os.path.basename(path) == "stderr"):
            with open(path, encoding="utf-8", errors="replace") as f:
                parts.append(f"--- {path}\n" + "".join(f.readlines()[-lines:]))
    return "\n".join(parts)


def test_saved_pipeline_on_a_standalone_cluster(trained, tmp_path):
    log = tmp_path / "workers.jsonl"
    conf = {"spark.cores.max": "2", "spark.executor.cores": "1", "spark.executor.memory": "512m",
            "spark.scheduler.minRegisteredResourcesRatio": "1.0",  # both executors up before the first task
            "spark.scheduler.maxRegisteredResourcesWaitingTime": "120s",
            "spark.executorEnv.BERTNP_SPARK_LOG": str(log)}
    try:
        with standalone_cluster(tmp_path) as url:
            result = run_child(tmp_path, url, trained, conf=conf, ship=True)
    except Exception:
        print(logs_tail(tmp_path / "logs"), logs_tail(tmp_path / "work"))
        raise
    name = os.path.basename(result["stages"][0]["model"])
    assert result["stages"][0]["ship"] and name.startswith("model-")
    compare_predictions("standalone cluster (2 workers) vs the fitted pipeline", result["rows"], trained.local)
    events = [json.loads(line) for line in log.read_text().splitlines()]
    loads = [e for e in events if e["event"] == "load"]
    print(f"model loads on the cluster: {[(e['pid'], e['folder']) for e in loads]}")
    assert all(e["model"] == f"spark-files:{name}" for e in loads)
    folders = {e["folder"] for e in loads}  # each executor's own SparkFiles copy, under its worker's folder
    assert len({e["pid"] for e in loads}) >= 2 and len(folders) >= 2, loads
    assert all(f.startswith(str(tmp_path / "work")) and not f.startswith(trained.path) for f in folders), folders


# -- the child process: a fresh SparkSession that loads the saved pipeline -----------------------------


def run_child(tmp_path, master, trained, conf=None, ship=False) -> dict:
    spec = {"master": master, "conf": conf or {}, "pipeline": trained.path, "rows": trained.rows, "ship": ship,
            "out": str(tmp_path / "child.json")}
    (tmp_path / "child-spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    start = time.perf_counter()
    process = subprocess.run([sys.executable, os.path.abspath(__file__), str(tmp_path / "child-spec.json")],
                             env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    assert process.returncode == 0, f"child failed ({process.returncode}):\n{process.stdout[-4000:]}\n{process.stderr[-8000:]}"
    result = json.loads((tmp_path / "child.json").read_text())
    steps = ", ".join(f"{name} {value:.1f} s" for name, value in result["seconds"].items())
    print(f"child process with a SparkSession on {master}: {time.perf_counter() - start:.1f} s ({steps})")
    result["rows"] = {int(i): tuple(v) for i, v in result["rows"].items()}
    return result


def child(spec_path):
    from pyspark.ml import PipelineModel
    from pyspark.sql import SparkSession

    from bertnp.spark import BertForSequenceClassification, BertSentenceEmbeddings

    spec = json.loads(open(spec_path, encoding="utf-8").read())
    builder = (SparkSession.builder.master(spec["master"]).appName("bertnp-child")
               .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
               .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.pyspark.python", sys.executable))
    for key, value in spec["conf"].items():
        builder = builder.config(key, value)
    start = time.perf_counter()
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    seconds = {"session": time.perf_counter() - start}
    try:
        model = PipelineModel.load(spec["pipeline"])
        seconds["load"] = time.perf_counter() - start - sum(seconds.values())
        stages = [stage for stage in model.stages if isinstance(stage, (BertSentenceEmbeddings, BertForSequenceClassification))]
        for stage in stages:
            if spec["ship"]:
                stage.setShip(True)
        rows = predictions(model.transform(spark.createDataFrame(spec["rows"], "id long, text string")))
        seconds["predict"] = time.perf_counter() - start - sum(seconds.values())
        result = {"seconds": seconds, "rows": rows, "stages": [{"uid": s.uid, "model": s.getModel(), "ship": s.getShip()} for s in stages]}
        with open(spec["out"], "w", encoding="utf-8") as f:
            json.dump(result, f)
    finally:
        spark.stop()


if __name__ == "__main__":
    child(sys.argv[1])
