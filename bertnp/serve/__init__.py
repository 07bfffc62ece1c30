"""bertnp serve: embeddings and labels over HTTP, for OpenAI and TEI clients, with dynamic batching.

    served.py   ServedModel: what the checkpoint is, and the one call that runs it (rows of a batch)
    batcher.py  Batcher: one queue for every client, one worker thread that forms and runs the batches
    schema.py   request bodies -> checked values, per route
    limits.py   Options (every limit) and ApiError (every error shape and status)
    metrics.py  Prometheus counters and histograms
    app.py      create_app(model, options): the routes, thin
    server.py   run(): uvicorn, the socket, SIGTERM

Needs the `serve` extra: pip install 'bertnp[serve]'.
"""

from .app import create_app
from .batcher import Batcher, Overloaded, Stopped
from .limits import ApiError, Options
from .served import ServedModel

__all__ = ["ApiError", "Batcher", "Options", "Overloaded", "ServedModel", "Stopped", "create_app"]
