"""The HTTP layer: create_app(model, options) -> a FastAPI app whose routes validate, queue and translate.

Routes (each answers by what the checkpoint is; a route the checkpoint cannot serve says so, 400):
    POST /v1/embeddings (and /embeddings)   OpenAI's embeddings API
    POST /embed, /predict, /rerank          TEI's
    GET  /info, /health, /metrics           TEI's info and health; Prometheus text

A route parses its body (schema.py), submits the texts to the one Batcher and awaits their rows without
blocking the event loop, then shapes the answer. While it waits it watches its connection: a client that
goes away has its queued texts dropped. The Gate, an ASGI layer around everything, checks the API key
(in constant time; /health stays open), refuses an oversized body by its Content-Length, and counts every
request and its latency. Errors are ApiErrors, rendered by limits.error_body in the route's family shape.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import time
from contextlib import asynccontextmanager

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from .. import __version__
from ..errors import InputError, TokenizerError
from . import schema
from .batcher import Batcher, Overloaded, Stopped
from .limits import ApiError, Options, error_body, retry_after
from .metrics import Metrics
from .served import ServedModel

ROUTES = ("/v1/embeddings", "/embeddings", "/embed", "/predict", "/rerank", "/info", "/health", "/metrics")
OPEN = ("/health",)  # answered without the API key


def create_app(model, options: Options | None = None) -> FastAPI:
    """model: a ServedModel, a loaded bertnp.Bert, or a folder (ServedModel built with options.labels and
    options.served_model_name). The model worker starts and stops with the app (its lifespan)."""
    options = options or Options()
    served = model if isinstance(model, ServedModel) else \
        ServedModel(model, labels=options.labels, name=options.served_model_name)
    metrics = Metrics()
    batcher = Batcher(served, options.max_batch_tokens, options.max_wait_ms, options.max_queue, metrics,
                      options.max_batch_requests)

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        await asyncio.to_thread(batcher.stop)  # after uvicorn has answered every request in flight

    app = FastAPI(title="bertnp serve", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.served, app.state.batcher, app.state.metrics, app.state.options = served, batcher, metrics, options

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError):
        return error_response(error, request.url.path)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):  # Starlette's 404 and 405
        kind = {404: "not_found", 405: "method"}.get(error.status_code, "invalid")
        return error_response(ApiError(kind, f"{request.method} {request.url.path}: {error.detail}",
                                       headers=error.headers), request.url.path)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception):
        return error_response(ApiError("internal", f"internal error ({type(error).__name__})"), request.url.path)

    async def compute(request: Request, items: list, limit: int, truncate: bool):
        """Queue the items, await their rows: (rows, tokens)."""
        try:
            job = batcher.submit(items, limit, truncate)
        except Overloaded as e:
            raise ApiError("overloaded", str(e), headers={
                "Retry-After": str(retry_after(e.queued + e.count, e.texts_per_second))}) from None
        except Stopped as e:
            raise ApiError("unavailable", str(e)) from None
        rows = asyncio.wrap_future(job.future)
        gone = asyncio.ensure_future(disconnected(request))
        try:
            await asyncio.wait((rows, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not rows.done():
            batcher.cancel(job)
            raise ApiError("client_gone", "the client closed the connection")
        try:
            return rows.result(), job.tokens
        except TokenizerError as e:
            raise ApiError("tokenizer", str(e)) from None
        except InputError as e:
            raise ApiError("too_long", str(e)) from None

    def embedding_model(route: str):
        if served.kind != "embedding":
            raise ApiError("wrong_model", f"{route} answers embedding models; this server's model is "
                           f"{served.description}: use /predict" + (" or /rerank" if served.can_rerank else ""))

    async def embeddings(request: Request, parse) -> tuple:
        embedding_model(request.url.path)
        req = parse(await read_json(request, options.max_body_bytes), options, served.dimension)
        texts = [t.lower() for t in req.texts] if served.lowercase else req.texts
        rows, tokens = await compute(request, texts, served.embed_limit, req.truncate)
        return req, np.ascontiguousarray(served.embeddings(rows, req.normalize, req.dimensions)), tokens

    @app.post("/v1/embeddings")
    @app.post("/embeddings")
    async def openai_embeddings(request: Request):
        req, vectors, tokens = await embeddings(request, schema.openai_embeddings)
        if req.encoding_format == "base64":
            data = [base64.b64encode(v.astype("<f4").tobytes()).decode("ascii") for v in vectors]
        else:
            data = list(vectors)
        return json_response({"object": "list",
                              "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(data)],
                              "model": served.name, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    @app.post("/embed")
    async def embed(request: Request):
        _, vectors, _ = await embeddings(request, schema.tei_embed)
        return json_response(vectors)

    @app.post("/predict")
    async def predict(request: Request):
        if served.classifier is None:
            raise ApiError("wrong_model", f"/predict needs a sequence classifier, or labels for zero-shot "
                           f"classification; this server's model is {served.description}: start it with --labels")
        req = schema.tei_predict(await read_json(request, options.max_body_bytes), options)
        rows, _ = await compute(request, req.items, served.predict_limit, req.truncate)
        scores = served.scores(rows, req.raw_scores)
        labels = served.labels
        results = [[{"score": float(row[j]), "label": labels[j]} for j in np.argsort(-row, kind="stable")]
                   for row in scores]
        return json_response(results[0] if req.single else results)

    @app.post("/rerank")
    async def rerank(request: Request):
        if not served.can_rerank:
            raise ApiError("wrong_model", "/rerank needs a cross-encoder (a sequence classifier with one or two "
                           f"outputs); this server's model is {served.description}")
        req = schema.tei_rerank(await read_json(request, options.max_body_bytes), options)
        rows, _ = await compute(request, [(req.query, text) for text in req.texts], served.predict_limit,
                                req.truncate)
        scores = served.relevance(rows, req.raw_scores)
        ranks = []
        for i in np.argsort(-scores, kind="stable"):
            rank = {"index": int(i), "score": float(scores[i])}
            if req.return_text:
                rank["text"] = req.texts[i]
            ranks.append(rank)
        return json_response(ranks)

    @app.get("/info")
    async def info():
        bert = served.model
        return json_response({
            "model_id": bert.folder, "model_sha": None, "model_dtype": np.dtype(bert.dtype).name,
            "served_model_name": served.name, "model_type": served.info(),
            "max_concurrent_requests": options.max_queue,
            "max_input_length": served.embed_limit if served.kind == "embedding" else served.predict_limit,
            "max_batch_tokens": options.max_batch_tokens, "max_batch_requests": options.max_batch_requests,
            "max_client_batch_size": options.max_inputs, "auto_truncate": True, "tokenization_workers": 1,
            "version": __version__, "backend": type(bert.backend).__name__,
            "dimension": served.dimension, "max_queue": options.max_queue, "max_wait_ms": options.max_wait_ms,
            "max_body_bytes": options.max_body_bytes})

    @app.get("/health")
    async def health():
        return json_response({"status": "ok"})

    @app.get("/metrics")
    async def prometheus():
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    app.add_middleware(Gate, options=options, metrics=metrics)
    return app


class Gate:
    """The ASGI layer around the app: API key, body size by Content-Length, and the request metrics."""

    def __init__(self, app, options: Options, metrics: Metrics):
        self.app, self.metrics, self.limit = app, metrics, options.max_body_bytes
        self.key = options.api_key.encode() if options.api_key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":  # lifespan
            return await self.app(scope, receive, send)
        path, start, status = scope["path"], time.perf_counter(), 500
        self.metrics.started()

        async def counted(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            error = self.refuse(scope, path)
            if error is not None:
                await send_response(counted, error_response(error, path))
            else:
                await self.app(scope, receive, counted)
        finally:
            self.metrics.answered(path if path in ROUTES else "other", status, time.perf_counter() - start)

    def refuse(self, scope, path) -> ApiError | None:
        headers = dict(scope["headers"])
        if self.key is not None and path not in OPEN:
            scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
            # compare_digest takes the same time wherever the bytes differ (it still shows the key's length)
            if not (scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key)):
                return ApiError("unauthorized", "missing or wrong API key: send 'Authorization: Bearer KEY'",
                                headers={"WWW-Authenticate": "Bearer"})
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return ApiError("too_large", f"the request body has {int(length)} bytes, more than this server's limit "
                            f"of {self.limit}")
        return None


async def read_json(request: Request, limit: int):
    """The body, read up to `limit` bytes (a chunked body has no Content-Length for the Gate to check),
    parsed as JSON."""
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError("too_large", f"the request body is larger than this server's limit of {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ApiError("client_gone", "the client closed the connection before its body arrived") from None
    return schema.parse_json(b"".join(chunks))


async def disconnected(request: Request):
    """Returns when the client closes the connection (the body has been read: receive() then waits for
    that, or for the response to be sent)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def json_response(value, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY), status, headers,
                    media_type="application/json")


def error_response(error: ApiError, path: str) -> Response:
    status, body = error_body(error, path)
    return Response(body, status, error.headers, media_type="application/json")


async def send_response(send, response: Response):
    await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
