"""The resource contract for loading a model folder, enforced here for every file bertnp reads from it.

Model folders come from others (a git clone, a hub download, a file share), so nothing a file says is
trusted before it is checked, and a check never costs more than the bytes actually present:
- Only regular files are read, after resolving symlinks (the Hugging Face cache links snapshots to
  blobs). A file is opened non-blocking and checked with fstat on the open descriptor, so a FIFO cannot
  block `open`, `/dev/zero` is never read, and the file checked is the file read.
- Each kind of file has a size cap (LIMITS); weights files have none, because they are memory-mapped.
- JSON integers of more than MAX_DIGITS digits are refused while parsing; every number a loader uses is
  then range-checked where it is read (`integer`, `number`).
- Messages quote hostile content only through `excerpt`: a bounded piece, whatever its size or shape.
"""

from __future__ import annotations

import json
import os
import stat

import numpy as np

MiB = 1 << 20
# Size caps per kind of file, in bytes. Real files are far smaller (MiniLM: config 0.6 KB, tokenizer.json
# 0.5 MB, vocab.txt 0.2 MB); Python's JSON parser can take up to 30 times a file's size while it parses.
LIMITS = {
    "config.json": 4 * MiB,  # room for id2label and label2id with MAX_LABELS labels
    "tokenizer.json": 32 * MiB,  # LaBSE's 500k-token vocabulary is about 12 MB
    "tokenizer_config.json": 8 * MiB,
    "vocab.txt": 16 * MiB,
    "checkpoint index": 16 * MiB,
    "safetensors header": 16 * MiB,
    "sentence-transformers settings": 1 * MiB,  # modules.json, sentence_bert_config.json, 1_Pooling/config.json
    "hub reference": 1024,  # refs/main in the Hugging Face cache: a commit hash
}
MAX_DIGITS = 40  # digits of a JSON integer: 2**64 has 20; Python refuses to parse more than 4300 anyway
MAX_DIMS = 32  # a tensor's dimensions (NumPy's limit is 64; BERT's tensors have 1 or 2)
MAX_INDEX = 2**31 - 1  # sizes, counts and ids: token ids are int32 in bertnp and u32 in `tokenizers`
EXCERPT = 80  # characters of hostile content a message quotes


class _TooLong(ValueError):
    pass


def open_regular(path: str, error):
    """`path` opened for reading as a binary file object, after checking that it is a regular file (symlinks
    resolved). A FIFO, device, socket or folder raises `error` naming the path; a missing file raises
    FileNotFoundError, which callers turn into their own message."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) |
                     getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise
    except OSError as e:
        raise error(f"{path}: cannot open ({e.strerror or e})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(f"{path}: not a regular file (it is {_kind(mode)}); bertnp reads only regular files")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def read_bytes(path: str, kind: str, error) -> bytes:
    """The bytes of a regular file of `kind` (a key of LIMITS), refusing more than its cap without reading
    them. A missing file raises FileNotFoundError."""
    limit = LIMITS[kind]
    with open_regular(path, error) as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise error(f"{path}: {size} bytes, more than the {_size(limit)} bertnp reads from a {kind}")
        try:
            data = f.read(limit + 1)  # files whose size fstat does not know (/proc) stop here too
        except OSError as e:
            raise error(f"{path}: unreadable ({e.strerror or e})") from None
    if len(data) > limit:
        raise error(f"{path}: more than the {_size(limit)} bertnp reads from a {kind}")
    return data


def read_text(path: str, kind: str, error) -> str:
    """A regular file of `kind` as UTF-8 text (see read_bytes)."""
    return decode(read_bytes(path, kind, error), path, error)


def decode(data: bytes, path: str, error) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 (byte {e.start}: {excerpt(data[e.start:e.start + 8])})") from None


def read_json(path: str, kind: str, error, expect=dict):
    """A JSON file of `kind` whose top level must be an `expect` (dict or list). Integers of more than
    MAX_DIGITS digits, bad UTF-8, bad JSON and too deep nesting are `error`s naming the file."""
    return parse_json(read_bytes(path, kind, error), path, error, expect)


def parse_json(data: bytes | str, path: str, error, expect=dict, pairs_hook=None, what="not valid JSON"):
    """JSON bytes read from `path` (see read_json); pairs_hook is json's object_pairs_hook, `what` begins
    the message of a parse error."""
    text = data if isinstance(data, str) else decode(data, path, error)
    try:
        value = json.loads(text, parse_int=_parse_int, object_pairs_hook=pairs_hook)
    except _TooLong as e:
        raise error(f"{path}: {what} ({e})") from None
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise error(f"{path}: {what} ({type(e).__name__}: {str(e)[:160]})") from None
    if expect is not None and not isinstance(value, expect):
        raise error(f"{path}: expected a JSON {'object' if expect is dict else 'array'}, got {json_type(value)}")
    return value


def _parse_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_DIGITS:
        raise _TooLong(f"an integer of {len(digits.lstrip('-'))} digits; bertnp reads at most {MAX_DIGITS}")
    return int(digits)


def map_open(f, path: str, error) -> np.ndarray:
    """A file opened by open_regular as a read-only uint8 np.memmap (an empty array for an empty file)."""
    if os.fstat(f.fileno()).st_size == 0:
        return np.zeros(0, np.uint8)
    try:
        return np.memmap(f, dtype=np.uint8, mode="r")
    except (OSError, ValueError) as e:
        raise error(f"{path}: cannot memory-map ({e})") from None


def json_type(value) -> str:
    """The JSON name of a parsed value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


def integer(value, low: int = 0, high: int = MAX_INDEX) -> int | None:
    """value if it is a JSON integer (not a boolean) in [low, high], else None."""
    if type(value) is int and low <= value <= high:
        return value
    return None


def number(value, low: float, high: float) -> float | None:
    """value as a float if it is a finite JSON number (int or float, not a boolean) in [low, high], else None.
    Integers too large for a float (10**400) are out of range, not an OverflowError."""
    if type(value) is int:
        if not -(2**1023) < value < 2**1023:
            return None
        value = float(value)
    if type(value) is float and low <= value <= high:  # NaN fails both comparisons
        return value
    return None


def shown(text, limit: int = EXCERPT) -> str:
    """A name from a file (a tensor name, a token) as a message shows it: itself when it is short and printable,
    else its excerpt."""
    if isinstance(text, str) and len(text) <= limit and text.isprintable():
        return text
    return excerpt(text, limit)


def excerpt(value, limit: int = EXCERPT) -> str:
    """repr(value), cut to about `limit` characters, without ever walking more than `limit` nodes of it.

    Content from a hostile file may be megabytes long, nested thousands deep, or a pickle whose shared
    structure makes a plain repr exponential; this is the only way messages quote it."""
    pieces, budget = [], [limit]
    _excerpt(value, pieces, budget, depth=0)
    text = "".join(pieces)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _excerpt(value, pieces, budget, depth):
    if budget[0] <= 0:
        pieces.append("...")
        return
    budget[0] -= 1
    if isinstance(value, (str, bytes, bytearray)):
        piece = repr(value[: budget[0] + 1])
    elif isinstance(value, bool) or value is None or isinstance(value, float):
        piece = repr(value)
    elif isinstance(value, int):
        piece = repr(value) if value.bit_length() <= 128 else f"<a {value.bit_length()}-bit integer>"
    elif isinstance(value, (list, tuple, dict, set, frozenset)) and depth < 8:
        opening, closing = "[]" if isinstance(value, list) else "()" if isinstance(value, tuple) else "{}"
        pieces.append(opening)
        for i, item in enumerate(value.items() if isinstance(value, dict) else value):
            if budget[0] <= 0:
                pieces.append(", ..." if i else "...")
                break
            if i:
                pieces.append(", ")
            if isinstance(value, dict):
                _excerpt(item[0], pieces, budget, depth + 1)
                pieces.append(": ")
                item = item[1]
            _excerpt(item, pieces, budget, depth + 1)
        pieces.append(closing)
        return
    elif getattr(type(value), "bounded_repr", False):  # a class whose repr is short and flat (torch_checkpoint's records)
        piece = repr(value)[: budget[0] + 1]
    else:
        piece = f"<{type(value).__name__}>"
    budget[0] -= len(piece)
    pieces.append(piece)


def _size(n: int) -> str:
    return f"{n // MiB} MiB" if n >= MiB and n % MiB == 0 else f"{n} bytes"
