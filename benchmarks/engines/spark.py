"""bertnp on Spark: bertnp.spark.with_embeddings on a DataFrame of the texts, master local[N].

Threads: bertnp.spark gives each of the N Python workers cores / N threads (bertnp.spark.worker_threads).
embed(texts): the first call puts the texts in a cached DataFrame of 4 partitions per worker; every call
runs with_embeddings on it and collects the embeddings to the driver (one Spark job).
"""

from __future__ import annotations

import os
import sys

import numpy as np

TITLE = "bertnp on Spark"
VARIANTS = ("local[1]", "local[2]")
PARTITIONS_PER_WORKER = 4  # evens out long and short partitions between the workers


def import_library():
    import pyspark  # noqa: F401


class Engine:
    def __init__(self, checkpoint, variant, threads, prepared):
        os.environ["PYSPARK_PYTHON"] = os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
        os.environ.pop("RAYON_NUM_THREADS", None)  # bertnp.spark sets each worker's own
        from pyspark.sql import SparkSession

        from bertnp import spark

        self.spark = spark
        self.session = (SparkSession.builder.master(variant).appName("bertnp-bench")
                        .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
                        .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
                        .getOrCreate())
        self.session.sparkContext.setLogLevel("ERROR")
        self.checkpoint, self.frames = str(checkpoint), {}

    def embed(self, texts):
        key = hash(tuple(texts))
        if key not in self.frames:
            workers = self.session.sparkContext.defaultParallelism
            df = self.session.createDataFrame(list(enumerate(texts)), "id long, text string")
            self.frames[key] = df = df.repartition(PARTITIONS_PER_WORKER * workers).cache()
            df.count()
        embedded = self.spark.with_embeddings(self.frames[key], self.checkpoint, batch_size=32)
        rows = embedded.select("id", "embedding").collect()
        result = np.empty((len(texts), len(rows[0]["embedding"])), np.float32)
        for row in rows:
            result[row["id"]] = row["embedding"]
        return result

    def threads(self) -> str:
        context = self.session.sparkContext
        where = context.parallelize([0], 1).map(lambda _: __import__("bertnp").__file__).collect()[0]
        return (f"{context.defaultParallelism} Python workers x {self.spark.worker_threads(self.session)} bertnp "
                f"threads; the workers import {where}")
