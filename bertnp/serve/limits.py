"""The server's limits and its error shapes, in one place.

Options holds every limit (and its default) that `bertnp serve` exposes as a flag. ApiError is the one
exception a route raises for a bad request; `error_response` renders it in the shape the route's clients
parse: OpenAI's `{"error": {"message", "type", "param", "code"}}` under /v1 (and /embeddings), TEI's
`{"error", "error_type"}` elsewhere. The status of each kind of error, per family, is the table KINDS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import orjson

from ..errors import InputError

OPENAI_PATHS = ("/v1/", "/embeddings")  # these speak OpenAI's error shape; every other path TEI's


@dataclass(frozen=True)
class Options:
    """What `bertnp serve` takes beside the model. Defaults follow TEI's where TEI has the option."""

    api_key: str | None = None  # every route but /health then needs `Authorization: Bearer KEY`
    labels: tuple | None = None  # zero-shot labels for a checkpoint without a classifier head (/predict)
    served_model_name: str | None = None  # the `model` answered in /v1/embeddings and /info; default: folder name
    max_batch_tokens: int = 16384  # tokens (summed over texts) in one forward pass; TEI's default
    max_batch_requests: int | None = None  # requests sharing one forward pass; None: as many as fit (1: no batching)
    max_wait_ms: float = 0.0  # how long an idle worker waits for more requests before a batch; 0: none
    max_queue: int = 8192  # texts waiting for a forward pass; a request beyond it gets 429
    max_inputs: int = 2048  # texts in one request (OpenAI's limit); beyond it 413
    max_body_bytes: int = 8 * 2**20  # request body; beyond it 413

    def __post_init__(self):
        for name in ("max_batch_tokens", "max_batch_requests", "max_queue", "max_inputs", "max_body_bytes"):
            value = getattr(self, name)
            if value is None and name == "max_batch_requests":  # no limit
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name}={value!r}: expected a positive integer")
        if not (isinstance(self.max_wait_ms, (int, float)) and 0 <= self.max_wait_ms < math.inf):
            raise InputError(f"max_wait_ms={self.max_wait_ms!r}: expected a number of milliseconds, 0 or more")
        if self.max_inputs > self.max_queue:
            raise InputError(f"max_inputs={self.max_inputs} exceeds max_queue={self.max_queue}: a request that "
                             "large could never be queued")
        if self.api_key is not None and not self.api_key:
            raise InputError("api_key is empty: give a key, or none to leave the server open")


# kind -> (status on OpenAI routes, status on TEI routes, TEI's error_type, OpenAI's type, OpenAI's code)
KINDS = {
    "malformed": (400, 400, "validation", "invalid_request_error", None),  # not JSON, not UTF-8
    "invalid": (400, 422, "validation", "invalid_request_error", None),  # a field of the wrong type or value
    "empty": (400, 400, "empty", "invalid_request_error", None),  # no inputs, an empty text
    "too_long": (400, 422, "validation", "invalid_request_error", "context_length_exceeded"),  # truncate=false
    "tokenizer": (400, 422, "tokenizer", "invalid_request_error", None),
    "too_large": (413, 413, "validation", "invalid_request_error", None),  # body or input count
    "wrong_model": (400, 400, "validation", "invalid_request_error", "model_not_supported"),
    "unauthorized": (401, 401, "unauthorized", "invalid_request_error", "invalid_api_key"),
    "not_found": (404, 404, "validation", "invalid_request_error", "not_found"),
    "method": (405, 405, "validation", "invalid_request_error", None),
    "overloaded": (429, 429, "overloaded", "requests", "rate_limit_exceeded"),
    "client_gone": (499, 499, "validation", "invalid_request_error", None),  # nginx's code; nobody reads it
    "unavailable": (503, 503, "unhealthy", "server_error", None),  # draining after SIGTERM
    "internal": (500, 500, "backend", "server_error", None),
}


class ApiError(Exception):
    """A request the server refuses: `kind` (a key of KINDS) decides the status; `param` names the field."""

    def __init__(self, kind: str, message: str, param: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.kind, self.message, self.param, self.headers = kind, message, param, headers or {}


def is_openai(path: str) -> bool:
    return path.startswith(OPENAI_PATHS)


def status_of(kind: str, path: str) -> int:
    openai_status, tei_status, *_ = KINDS[kind]
    return openai_status if is_openai(path) else tei_status


def error_body(error: ApiError, path: str) -> tuple[int, bytes]:
    """(status, JSON body) of an error in the shape of the route's family."""
    _, _, tei_type, openai_type, code = KINDS[error.kind]
    if is_openai(path):
        body = {"error": {"message": error.message, "type": openai_type, "param": error.param, "code": code}}
    else:
        body = {"error": error.message, "error_type": tei_type}
    return status_of(error.kind, path), orjson.dumps(body)


def retry_after(queued: int, texts_per_second: float | None) -> int:
    """Seconds until the queue has likely drained, for a 429's Retry-After: at least 1, at most 60."""
    if not texts_per_second:
        return 1
    return max(1, min(60, math.ceil(queued / texts_per_second)))
