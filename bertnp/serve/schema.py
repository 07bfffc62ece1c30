"""Request bodies -> checked Python values, one function per route; a bad field raises ApiError naming it.

The shapes are OpenAI's embeddings request and TEI's /embed, /predict and /rerank requests. Fields that
the route does not know are ignored, as both servers do; a known field of the wrong type or value is
refused. Token-id inputs (which both APIs allow) are refused: bertnp serve takes text.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from .limits import ApiError, Options


def parse_json(body: bytes):
    """Bytes -> a JSON value; not UTF-8, or not JSON: a 'malformed' ApiError."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ApiError("malformed", f"the request body is not valid UTF-8 (byte {e.start})") from None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise ApiError("malformed", f"the request body is not valid JSON ({e})") from None


@dataclass
class Embeddings:
    texts: list
    encoding_format: str = "float"
    dimensions: int | None = None
    normalize: bool | None = None  # None: as the folder says
    truncate: bool = True


@dataclass
class Predict:
    items: list  # texts and (text, text) pairs
    single: bool  # one input, answered with one list (TEI)
    raw_scores: bool = False
    truncate: bool = True


@dataclass
class Rerank:
    query: str
    texts: list
    raw_scores: bool = False
    return_text: bool = False
    truncate: bool = True


def openai_embeddings(body, options: Options, dimension: int) -> Embeddings:
    """OpenAI's POST /v1/embeddings: input (a string or strings), model, encoding_format, dimensions, user."""
    body = _object(body)
    if "input" not in body:
        raise ApiError("invalid", "'input' is required: a string or a list of strings", "input")
    texts = _texts(body["input"], "input", options)
    for name in ("model", "user"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise ApiError("invalid", f"'{name}' must be a string", name)
    encoding_format = body.get("encoding_format") or "float"
    if encoding_format not in ("float", "base64"):
        raise ApiError("invalid", f"'encoding_format' is {encoding_format!r}: expected 'float' or 'base64'",
                       "encoding_format")
    return Embeddings(texts, encoding_format, _dimensions(body.get("dimensions"), dimension))


def tei_embed(body, options: Options, dimension: int) -> Embeddings:
    """TEI's POST /embed: inputs, normalize (default true), truncate (default true), dimensions."""
    body = _object(body)
    if "inputs" not in body:
        raise ApiError("invalid", "'inputs' is required: a string or a list of strings", "inputs")
    texts = _texts(body["inputs"], "inputs", options)
    _unsupported(body, "prompt_name")
    return Embeddings(texts, dimensions=_dimensions(body.get("dimensions"), dimension),
                      normalize=_bool(body, "normalize", True), truncate=_truncate(body))


def tei_predict(body, options: Options) -> Predict:
    """TEI's POST /predict: inputs is a text, a pair [text, text], or a batch [[text], [text, text], ...]."""
    body = _object(body)
    if "inputs" not in body:
        raise ApiError("invalid", "'inputs' is required: a string, a pair [a, b] or a batch [[a], [a, b], ...]",
                       "inputs")
    inputs = body["inputs"]
    if isinstance(inputs, str):
        items, single = [inputs], True
    elif isinstance(inputs, list) and inputs and all(isinstance(x, str) for x in inputs):
        if len(inputs) > 2:
            raise ApiError("invalid", f"'inputs' has {len(inputs)} strings: a pair has 2; send a batch as "
                           "[[text], [text, text], ...]", "inputs")
        items, single = [inputs[0] if len(inputs) == 1 else tuple(inputs)], True
    elif isinstance(inputs, list):
        if not inputs:
            raise ApiError("empty", "'inputs' is an empty list: give at least one input", "inputs")
        items, single = [], False
        for i, item in enumerate(inputs):
            if not (isinstance(item, list) and len(item) in (1, 2) and all(isinstance(x, str) for x in item)):
                raise ApiError("invalid", f"inputs[{i}] must be [text] or [text, text] in a batch", "inputs")
            items.append(item[0] if len(item) == 1 else tuple(item))
    else:
        raise ApiError("invalid", f"'inputs' must be a string, a pair or a batch, not {_kind(inputs)}", "inputs")
    _count(items, "inputs", options)
    for i, item in enumerate(items):
        for text in item if isinstance(item, tuple) else (item,):
            if not text:
                raise ApiError("empty", f"inputs[{i}] holds an empty text", "inputs")
    return Predict(items, single, _bool(body, "raw_scores", False), _truncate(body))


def tei_rerank(body, options: Options) -> Rerank:
    """TEI's POST /rerank: query, texts, raw_scores, return_text, truncate."""
    body = _object(body)
    query = body.get("query")
    if not isinstance(query, str):
        raise ApiError("invalid", "'query' is required: a string", "query")
    if not query:
        raise ApiError("empty", "'query' is empty", "query")
    if "texts" not in body:
        raise ApiError("invalid", "'texts' is required: a list of strings", "texts")
    texts = body["texts"]
    if not isinstance(texts, list):
        raise ApiError("invalid", f"'texts' must be a list of strings, not {_kind(texts)}", "texts")
    texts = _texts(texts, "texts", options)
    return Rerank(query, texts, _bool(body, "raw_scores", False), _bool(body, "return_text", False),
                  _truncate(body))


# ---- fields --------------------------------------------------------------------------------------------


def _object(body) -> dict:
    if not isinstance(body, dict):
        raise ApiError("invalid", f"the request body must be a JSON object, not {_kind(body)}")
    return body


def _texts(value, name: str, options: Options) -> list:
    """A string or a non-empty list of non-empty strings, at most max_inputs of them."""
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list):
        raise ApiError("invalid", f"'{name}' must be a string or a list of strings, not {_kind(value)}", name)
    if not texts:
        raise ApiError("empty", f"'{name}' is an empty list: give at least one text", name)
    _count(texts, name, options)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            token_ids = isinstance(text, list) or (isinstance(text, int) and not isinstance(text, bool))
            what = "token ids: bertnp serve takes text" if token_ids else _kind(text)
            raise ApiError("invalid", f"{name}[{i}] is {what}; expected a string", name)
        if not text:
            raise ApiError("empty", f"{name}[{i}] is an empty string", name)
    return texts


def _count(items: list, name: str, options: Options):
    if len(items) > options.max_inputs:
        raise ApiError("too_large", f"'{name}' has {len(items)} inputs, more than this server's limit of "
                       f"{options.max_inputs} per request", name)


def _dimensions(value, dimension: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= dimension:
        raise ApiError("invalid", f"'dimensions' is {value!r}: expected an integer from 1 to {dimension}",
                       "dimensions")
    return value


def _bool(body: dict, name: str, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ApiError("invalid", f"'{name}' must be true or false, not {_kind(value)}", name)
    return value


def _truncate(body: dict) -> bool:
    """TEI's truncate (default true, as TEI's --auto-truncate) and truncation_direction (right only)."""
    direction = body.get("truncation_direction")
    if direction is not None and str(direction).lower() != "right":
        raise ApiError("invalid", f"'truncation_direction' is {direction!r}: bertnp serve truncates on the right",
                       "truncation_direction")
    return _bool(body, "truncate", True)


def _unsupported(body: dict, name: str):
    if body.get(name) is not None:
        raise ApiError("invalid", f"'{name}' is not supported by bertnp serve", name)


def _kind(value) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)
