"""bertnp serve: the snapshot's `bertnp serve` console script, one server process per variant.

A server engine is not loaded into a harness worker: workloads/serve.py starts `command(...)` as its own
process and sends it HTTP requests. Variants: "batching on" is `bertnp serve` as installed (requests share
forward passes up to 16384 tokens); "batching off" adds --max-batch-requests 1, so that each request runs
alone, as a server without a batcher would; "1 model thread" is batching on with BERTNP_NUM_THREADS=1,
which leaves the other cores to the HTTP side and the clients. Threads: BERTNP_NUM_THREADS (and
OpenBLAS's, and the tokenizer's) from the harness's environment otherwise.
"""

from __future__ import annotations

TITLE = "bertnp serve"
VARIANTS = ("batching on", "batching off", "1 model thread")
ROUTE = "/embeddings"  # OpenAI's embeddings API, which every server engine speaks (bertnp: also /v1/embeddings)


def command(bench, checkpoint, variant, port, name) -> list:
    flags = ["--max-batch-requests", "1"] if variant == "batching off" else []
    return [str(bench.site / "bin" / "bertnp"), "serve", str(checkpoint), "--host", "127.0.0.1", "--port", str(port),
            "--served-model-name", name, "--log-level", "warning", *flags]


def environment(bench, variant) -> dict:
    if variant == "1 model thread":
        return bench.env(BERTNP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return bench.env()
