"""pyspark.ml stages over bertnp.spark's functions, with the names and setters Spark NLP users know.

    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.ml.classification import LogisticRegression
    from bertnp.spark import BertSentenceEmbeddings

    embed = BertSentenceEmbeddings().setModel("/models/minilm").setOutputCol("features").setOutputType("vector")
    model = Pipeline(stages=[embed.setEmbedModel(True), LogisticRegression()]).fit(train)
    model.write().overwrite().save("/pipelines/topics")              # the checkpoint goes inside
    PipelineModel.load("/pipelines/topics").transform(df)             # anywhere; batch or streaming

A stage is its Params and nothing else: `_transform` is `with_embeddings` / `with_labels` called with them.
So everything is checked on the driver when transform() is called (or when Pipeline.fit reaches the stage):
the model is loaded there and the options built, and a bad value raises bertnp's one-line error, prefixed
with the stage's uid, before any job runs. The workers then do what the functions do: one model per
Python worker, null texts give null results. Both work on Structured Streaming DataFrames as they are.

Persistence (DefaultParamsWritable / DefaultParamsReadable, so a stage saves and loads inside a
PipelineModel next to Spark's own stages): the metadata holds the params. With embedModel=True the writer
also copies the checkpoint folder the driver reads into the stage's folder, under a name of its own
(`model-<12 hex digits>`, unique per save, so that stages shipped from two saved pipelines never share a
SparkFiles name), through Hadoop's FileSystem: a pipeline saved to HDFS or S3 carries its model too. The
reader points `model` at that copy: in place on the local file system; from another file system it copies
it to a temporary folder on the driver and sets ship=True, since only the driver then holds it.
"""

from __future__ import annotations

import os
import tempfile
import uuid

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.functions import array_to_vector
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasInputCol, HasOutputCol
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsReader, DefaultParamsWritable, DefaultParamsWriter
from pyspark.sql import functions as F

from .errors import BertnpError, InputError
from .spark import _locate, with_embeddings, with_labels

OUTPUT_TYPES = ("array", "vector")
HANDLE_INVALID = ("keep", "skip")
EMBEDDED = "embeddedModel"  # the metadata field naming the stage's copy of its checkpoint
STRING, INTEGER, BOOLEAN = TypeConverters.toString, TypeConverters.toInt, TypeConverters.toBoolean


def _param(name: str, doc: str, convert, expected: str, optional: bool = True) -> Param:
    """A typed Param whose converter raises bertnp's InputError naming the param. optional: None is a
    value (it means "as the model's folder says"); saved params go through the converter again on load."""
    def converter(value):
        if value is None and optional:
            return None
        try:
            return convert(value)
        except TypeError:
            raise InputError(f"{name}={value!r}: expected {expected}{' or None' if optional else ''}") from None
    return Param(Params._dummy(), name, doc, typeConverter=converter)


class _BertParams(HasInputCol, HasOutputCol):
    """The params both stages share: the model, where it comes from, the columns, batching, threads."""

    model = _param("model", "checkpoint folder, hub id or spark-files:NAME, as bertnp.spark's functions take it",
                   STRING, "a string")
    pairCol = _param("pairCol", "a second string column: each row then reads (inputCol, pairCol) as a pair",
                     STRING, "a column name")
    batchSize = _param("batchSize", "texts per forward pass (batch_size)", INTEGER, "an integer", optional=False)
    maxSentenceLength = _param("maxSentenceLength", "tokens kept per text (max_length); None: the model's",
                               INTEGER, "an integer")
    caseSensitive = _param("caseSensitive", "False lower-cases texts before WordPiece; None or True: the model's "
                           "own settings", BOOLEAN, "a boolean")
    backend = _param("backend", "bertnp backend on the workers; None: the fastest", STRING, "a string")
    threads = _param("threads", "threads per Python worker; None: its cores / the workers running at once",
                     INTEGER, "an integer")
    ship = _param("ship", "send the driver's copy of the model to every executor (SparkContext.addFile)",
                  BOOLEAN, "a boolean", optional=False)
    embedModel = _param("embedModel", "save the checkpoint folder inside the saved stage, so that the saved "
                        "pipeline is self-contained", BOOLEAN, "a boolean", optional=False)

    def __init__(self):
        super().__init__()
        self._setDefault(inputCol="text", model=None, pairCol=None, batchSize=32, maxSentenceLength=None,
                         caseSensitive=None, backend=None, threads=None, ship=False, embedModel=False)

    def setInputCol(self, value: str):
        return self._set(inputCol=value)

    def setOutputCol(self, value: str):
        return self._set(outputCol=value)

    def setModel(self, value: str):
        return self._set(model=os.fspath(value))

    def getModel(self) -> str | None:
        return self.getOrDefault(self.model)

    def setPairCol(self, value: str | None):
        return self._set(pairCol=value)

    def getPairCol(self) -> str | None:
        return self.getOrDefault(self.pairCol)

    def setBatchSize(self, value: int):
        return self._set(batchSize=value)

    def getBatchSize(self) -> int:
        return self.getOrDefault(self.batchSize)

    def setMaxSentenceLength(self, value: int | None):
        return self._set(maxSentenceLength=value)

    def getMaxSentenceLength(self) -> int | None:
        return self.getOrDefault(self.maxSentenceLength)

    def setCaseSensitive(self, value: bool | None):
        return self._set(caseSensitive=value)

    def getCaseSensitive(self) -> bool | None:
        return self.getOrDefault(self.caseSensitive)

    def setBackend(self, value: str | None):
        return self._set(backend=value)

    def getBackend(self) -> str | None:
        return self.getOrDefault(self.backend)

    def setThreads(self, value: int | None):
        return self._set(threads=value)

    def getThreads(self) -> int | None:
        return self.getOrDefault(self.threads)

    def setShip(self, value: bool):
        return self._set(ship=value)

    def getShip(self) -> bool:
        return self.getOrDefault(self.ship)

    def setEmbedModel(self, value: bool):
        return self._set(embedModel=value)

    def getEmbedModel(self) -> bool:
        return self.getOrDefault(self.embedModel)

    def _common(self) -> dict:
        """The keyword arguments both functions take, from the params."""
        return {"pair_col": self.getPairCol(), "max_length": self.getMaxSentenceLength(),
                "case_sensitive": self.getCaseSensitive(), "batch_size": self.getBatchSize(),
                "backend": self.getBackend(), "threads": self.getThreads(), "ship": self.getShip()}

    def _required_model(self) -> str:
        model = self.getModel()
        if model is None:
            raise InputError("model is not set: call setModel(folder)")
        return model


class _Stage(Transformer, DefaultParamsReadable, DefaultParamsWritable):
    """Transformer plumbing: bertnp's errors name the stage; persistence can carry the checkpoint."""

    def _transform(self, dataset):
        try:
            return self._add_column(dataset)
        except BertnpError as e:  # the same one-line error, saying which stage of a pipeline it is
            raise type(e)(f"{self.uid}: {e}") from None

    def write(self):
        return _StageWriter(self)

    @classmethod
    def read(cls):
        return _StageReader(cls)


class BertSentenceEmbeddings(_Stage, _BertParams):
    """outputCol: a sentence embedding per row of inputCol, as bertnp.spark.with_embeddings (Spark NLP's
    BertSentenceEmbeddings). outputType "array" gives array<float>; "vector" a pyspark.ml.linalg dense
    vector, which LogisticRegression, KMeans or BucketedRandomProjectionLSH take as features. A null, empty
    or whitespace-only text gives null (handleInvalid="keep"), or its row is dropped ("skip", as
    VectorAssembler's): Spark ML's estimators and models fail on a null vector."""

    poolingStrategy = _param("poolingStrategy", "token pooling: mean, max, cls or mean_sqrt_len_tokens; None: "
                             "the sentence-transformers folder's", STRING, "a string")
    normalize = _param("normalize", "scale each embedding to unit length; None: the sentence-transformers "
                       "folder's", BOOLEAN, "a boolean")
    outputType = _param("outputType", "array (array<float>) or vector (a pyspark.ml.linalg DenseVector)",
                        STRING, "a string", optional=False)
    handleInvalid = _param("handleInvalid", "rows without text (null, empty, whitespace): keep them with a null "
                           "embedding, or skip them, as Spark ML estimators refuse null vectors", STRING,
                           "a string", optional=False)

    @keyword_only
    def __init__(self, *, inputCol="text", outputCol="embedding", model=None, pairCol=None, batchSize=32,
                 maxSentenceLength=None, caseSensitive=None, poolingStrategy=None, normalize=None,
                 outputType="array", handleInvalid="keep", backend=None, threads=None, ship=False,
                 embedModel=False):
        super().__init__()
        self._setDefault(outputCol="embedding", poolingStrategy=None, normalize=None, outputType="array",
                         handleInvalid="keep")
        self._set(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, inputCol="text", outputCol="embedding", model=None, pairCol=None, batchSize=32,
                  maxSentenceLength=None, caseSensitive=None, poolingStrategy=None, normalize=None,
                  outputType="array", handleInvalid="keep", backend=None, threads=None, ship=False,
                  embedModel=False):
        return self._set(**self._input_kwargs)

    def setPoolingStrategy(self, value: str | None):
        return self._set(poolingStrategy=value)

    def getPoolingStrategy(self) -> str | None:
        return self.getOrDefault(self.poolingStrategy)

    def setNormalize(self, value: bool | None):
        return self._set(normalize=value)

    def getNormalize(self) -> bool | None:
        return self.getOrDefault(self.normalize)

    def setOutputType(self, value: str):
        return self._set(outputType=value)

    def getOutputType(self) -> str:
        return self.getOrDefault(self.outputType)

    def setHandleInvalid(self, value: str):
        return self._set(handleInvalid=value)

    def getHandleInvalid(self) -> str:
        return self.getOrDefault(self.handleInvalid)

    def _add_column(self, dataset):
        output_type, invalid = self.getOutputType(), self.getHandleInvalid()
        if output_type not in OUTPUT_TYPES:
            raise InputError(f"outputType={output_type!r}: expected one of {', '.join(OUTPUT_TYPES)}")
        if invalid not in HANDLE_INVALID:
            raise InputError(f"handleInvalid={invalid!r}: expected one of {', '.join(HANDLE_INVALID)}")
        output = self.getOutputCol()
        df = with_embeddings(dataset, self._required_model(), self.getInputCol(), output,
                             pooling=self.getPoolingStrategy(), normalize=self.getNormalize(), **self._common())
        if output_type == "vector":
            column = F.col(output)
            # array_to_vector fails on a null array: rows without text keep a null vector
            df = df.withColumn(output, F.when(column.isNotNull(), array_to_vector(column)))
        return df.where(F.col(output).isNotNull()) if invalid == "skip" else df


class BertForSequenceClassification(_Stage, _BertParams):
    """outputCol: struct<label, score, labels, scores> per row of inputCol (bertnp.spark.LABEL_TYPE), as
    bertnp.spark.with_labels (Spark NLP's BertForSequenceClassification). A null, empty or whitespace-only
    text gives null."""

    labels = _param("labels", "label names: renames a classifier head's, or the labels to classify against "
                    "zero-shot for a checkpoint without one", TypeConverters.toListString, "a list of strings")
    activation = _param("activation", "softmax, sigmoid (multi-label) or none; None: from the checkpoint's "
                        "problem_type", STRING, "a string")
    threshold = _param("threshold", "with sigmoid, the score a label needs", TypeConverters.toFloat, "a number",
                       optional=False)
    longText = _param("longText", "truncate, or chunk: average over overlapping windows of maxSentenceLength",
                      STRING, "a string", optional=False)
    stride = _param("stride", "tokens consecutive chunks share; None: maxSentenceLength / 4", INTEGER,
                    "an integer")
    coalesceSentences = _param("coalesceSentences", "classify each sentence and average their scores into one "
                               "result per text", BOOLEAN, "a boolean", optional=False)
    topK = _param("topK", "labels kept in `labels` (Classifier.classify's top_k); None: all", INTEGER,
                  "an integer")

    @keyword_only
    def __init__(self, *, inputCol="text", outputCol="class", model=None, pairCol=None, batchSize=32,
                 maxSentenceLength=None, caseSensitive=None, labels=None, activation=None, threshold=0.5,
                 longText="truncate", stride=None, coalesceSentences=False, topK=1, backend=None, threads=None,
                 ship=False, embedModel=False):
        super().__init__()
        self._setDefault(outputCol="class", labels=None, activation=None, threshold=0.5, longText="truncate",
                         stride=None, coalesceSentences=False, topK=1)
        self._set(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, inputCol="text", outputCol="class", model=None, pairCol=None, batchSize=32,
                  maxSentenceLength=None, caseSensitive=None, labels=None, activation=None, threshold=0.5,
                  longText="truncate", stride=None, coalesceSentences=False, topK=1, backend=None, threads=None,
                  ship=False, embedModel=False):
        return self._set(**self._input_kwargs)

    def setLabels(self, value: list[str] | None):
        return self._set(labels=value)

    def getLabels(self) -> list[str] | None:
        return self.getOrDefault(self.labels)

    def setActivation(self, value: str | None):
        return self._set(activation=value)

    def getActivation(self) -> str | None:
        return self.getOrDefault(self.activation)

    def setThreshold(self, value: float):
        return self._set(threshold=value)

    def getThreshold(self) -> float:
        return self.getOrDefault(self.threshold)

    def setLongText(self, value: str):
        return self._set(longText=value)

    def getLongText(self) -> str:
        return self.getOrDefault(self.longText)

    def setStride(self, value: int | None):
        return self._set(stride=value)

    def getStride(self) -> int | None:
        return self.getOrDefault(self.stride)

    def setCoalesceSentences(self, value: bool):
        return self._set(coalesceSentences=value)

    def getCoalesceSentences(self) -> bool:
        return self.getOrDefault(self.coalesceSentences)

    def setTopK(self, value: int | None):
        return self._set(topK=value)

    def getTopK(self) -> int | None:
        return self.getOrDefault(self.topK)

    def _add_column(self, dataset):
        return with_labels(dataset, self._required_model(), self.getInputCol(), self.getOutputCol(),
                           labels=self.getLabels(), activation=self.getActivation(), threshold=self.getThreshold(),
                           long_text=self.getLongText(), stride=self.getStride(),
                           coalesce=self.getCoalesceSentences(), top_k=self.getTopK(), **self._common())


# -- persistence ---------------------------------------------------------------------------------------


class _StageWriter(DefaultParamsWriter):
    """The params as DefaultParamsWriter saves them; with embedModel, the checkpoint folder beside them."""

    def saveImpl(self, path: str) -> None:
        stage, spark = self.instance, self.sparkSession
        extra = None
        if stage.getEmbedModel():
            try:
                folder, _ = _locate(spark, stage._required_model(), ship=False)  # the folder the driver reads
            except BertnpError as e:
                raise type(e)(f"{stage.uid}: embedModel: {e}") from None
            name = f"model-{uuid.uuid4().hex[:12]}"
            fs, target, jvm = _hadoop(spark, os.path.join(path, name))
            fs.copyFromLocalFile(False, True, jvm.org.apache.hadoop.fs.Path(folder), target)
            extra = {EMBEDDED: name}
        DefaultParamsWriter.saveMetadata(stage, path, spark, extraMetadata=extra)


class _StageReader(DefaultParamsReader):
    """DefaultParamsReader's load; then `model` names the embedded copy, if the stage was saved with one."""

    def load(self, path: str):
        spark = self.sparkSession
        metadata = DefaultParamsReader.loadMetadata(path, spark)
        stage = self.cls()
        stage._resetUid(metadata["uid"])
        DefaultParamsReader.getAndSetParams(stage, metadata)
        if metadata.get(EMBEDDED):
            fs, source, jvm = _hadoop(spark, os.path.join(path, metadata[EMBEDDED]))
            if fs.getScheme() == "file":
                stage._set(model=fs.makeQualified(source).toUri().getPath())
            else:  # only the driver will hold this copy: the executors get it from the driver
                local = os.path.join(tempfile.mkdtemp(prefix="bertnp-"), metadata[EMBEDDED])
                fs.copyToLocalFile(False, source, jvm.org.apache.hadoop.fs.Path(local), True)
                stage._set(model=local, ship=True)
        return stage


def _hadoop(spark, path: str):
    """(Hadoop FileSystem of `path`, its Hadoop Path, the JVM view): the file system Spark itself writes to."""
    try:
        sc = spark.sparkContext
    except Exception as e:  # Spark Connect has no SparkContext
        raise BertnpError(f"embedModel needs a classic SparkSession to copy the model to or from {path} ({e})") from None
    target = sc._jvm.org.apache.hadoop.fs.Path(path)
    return target.getFileSystem(sc._jsc.hadoopConfiguration()), target, sc._jvm
