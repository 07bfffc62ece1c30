"""Fuzzed checkpoints: every mutation of a real checkpoint ends in a correct load or a bertnp error that
names the file, never another exception, never a hang, never an allocation the file does not justify.

BERTNP_FUZZ_EXAMPLES sets the number of cases per test (CI: the default, a few hundred in all).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import struct
import tempfile
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import WEIGHTS

import bertnp

TINY = os.path.join(WEIGHTS, "tiny")
EXAMPLES = int(os.environ.get("BERTNP_FUZZ_EXAMPLES", "80"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large])
CASE_SECONDS = 5.0


def load_and_use(folder: str):
    """What a user does: load, tokenize, run. Returns the outcome or raises."""
    model = bertnp.load(folder, backend="numpy")
    try:
        enc = model.tokenize(["the team won the game", "hello"])
    except bertnp.TokenizerError:
        enc = {"input_ids": np.array([[1, 2, 3]]) % model.config.vocab_size}
    out = model(**enc)
    # mutated weights may hold inf or NaN, so values can be anything: a correct load gives the right shapes
    assert out.last_hidden_state.shape == (*np.shape(enc["input_ids"]), model.config.hidden_size)
    assert out.last_hidden_state.dtype == np.float32
    return out


def check(folder, mutated_file: str, file_size: int):
    """The contract: a result, or a bertnp error naming the file; quickly; without a large allocation."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        load_and_use(str(folder))
    except bertnp.BertnpError as e:
        message = str(e)
        assert os.path.basename(mutated_file) in message or str(folder) in message, \
            f"error does not name the file {mutated_file}: {message}"
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        elapsed = time.perf_counter() - start
    assert elapsed < CASE_SECONDS, f"{elapsed:.1f} s"
    assert peak < 8 * file_size + 64 * 2**20, f"peak allocation {peak / 2**20:.0f} MiB for a {file_size} byte file"


@contextlib.contextmanager
def fresh_copy():
    """weights/tiny in a new folder for each example: hypothesis runs many examples per test call."""
    with tempfile.TemporaryDirectory() as tmp:
        target = pathlib.Path(tmp) / "model"
        shutil.copytree(TINY, target)
        yield target


def split_safetensors(data: bytes):
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def join_safetensors(header, body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


# ---- safetensors -----------------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_safetensors_byte_mutations(data):
    with fresh_copy() as folder:
        _test_safetensors_byte_mutations(folder, data)


def _test_safetensors_byte_mutations(folder, data):
    path = folder / "model.safetensors"
    original = path.read_bytes()
    kind = data.draw(st.sampled_from(["flip", "truncate", "extend", "header_len"]))
    blob = bytearray(original)
    if kind == "flip":
        (n,) = struct.unpack("<Q", original[:8])
        region = data.draw(st.sampled_from(["header", "anywhere"]))
        limit = 8 + n if region == "header" else len(blob)
        for position in data.draw(st.lists(st.integers(0, limit - 1), min_size=1, max_size=8)):
            blob[position] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "truncate":
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    elif kind == "extend":
        blob += bytes(data.draw(st.integers(1, 4096)))
    else:
        blob[:8] = struct.pack("<Q", data.draw(st.integers(0, 2**64 - 1)))
    path.write_bytes(bytes(blob))
    check(folder, "model.safetensors", len(blob))


@FUZZ
@given(data=st.data())
def test_safetensors_header_edits(data):
    with fresh_copy() as folder:
        _test_safetensors_header_edits(folder, data)


def _test_safetensors_header_edits(folder, data):
    path = folder / "model.safetensors"
    header, body = split_safetensors(path.read_bytes())
    names = sorted(k for k in header if k != "__metadata__")
    name = data.draw(st.sampled_from(names))
    entry = header[name]
    edit = data.draw(st.sampled_from(["offsets", "overlap", "huge_shape", "overflow_shape", "dtype", "shape_type",
                                      "drop", "duplicate", "rename", "not_dict", "negative"]))
    big = st.integers(-(2**70), 2**70)
    if edit == "offsets":
        entry["data_offsets"] = [data.draw(big), data.draw(big)]
    elif edit == "overlap":
        other = header[data.draw(st.sampled_from(names))]
        entry["data_offsets"] = list(other["data_offsets"])
        entry["shape"], entry["dtype"] = list(other["shape"]), other["dtype"]
    elif edit == "huge_shape":
        entry["shape"] = [2**20, 2**20, 2**10]  # claims terabytes
    elif edit == "overflow_shape":
        entry["shape"] = [2**63, 2**63]
    elif edit == "dtype":
        entry["dtype"] = data.draw(st.sampled_from(["F64", "F16", "BF16", "I64", "I32", "U8", "BOOL", "F8_E4M3", "", 3]))
    elif edit == "shape_type":
        entry["shape"] = data.draw(st.sampled_from([[1.5], "32", None, [True], [[1]], {}]))
    elif edit == "drop":
        del header[name]
    elif edit == "rename":
        header[name + ".x"] = header.pop(name)
    elif edit == "not_dict":
        header[name] = data.draw(st.sampled_from([[], "F32", 7, None]))
    elif edit == "negative":
        entry["shape"] = [-1] + entry["shape"][1:]
    blob = join_safetensors(header, body)
    if edit == "duplicate":  # JSON allows repeated names; the json module would keep the last silently
        raw = json.dumps(header)
        raw = raw[:-1] + ", " + json.dumps(name) + ": " + json.dumps(entry) + "}"
        blob = struct.pack("<Q", len(raw)) + raw.encode() + body
    path.write_bytes(blob)
    check(folder, "model.safetensors", len(blob))


# ---- config, tokenizer, vocabulary -----------------------------------------------------------------------

JUNK = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=True),
                 st.text(max_size=8), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@FUZZ
@given(data=st.data())
def test_config_mutations(data):
    with fresh_copy() as folder:
        _test_config_mutations(folder, data)


def _test_config_mutations(folder, data):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    kind = data.draw(st.sampled_from(["retype", "drop", "bytes", "nest"]))
    if kind == "retype":
        config[data.draw(st.sampled_from(sorted(config)))] = data.draw(JUNK)
        text = json.dumps(config)
    elif kind == "drop":
        del config[data.draw(st.sampled_from(sorted(config)))]
        text = json.dumps(config)
    elif kind == "nest":
        text = "[" * data.draw(st.integers(1000, 100_000)) + "]" * 3
    else:
        raw = bytearray(json.dumps(config).encode())
        for position in data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=5)):
            raw[position] = data.draw(st.integers(0, 255))
        path.write_bytes(bytes(raw))
        check(folder, "config.json", len(raw))
        return
    path.write_text(text)
    check(folder, "config.json", len(text))


@FUZZ
@given(data=st.data())
def test_tokenizer_mutations(data):
    with fresh_copy() as folder:
        _test_tokenizer_mutations(folder, data)


def _test_tokenizer_mutations(folder, data):
    target = data.draw(st.sampled_from(["tokenizer.json", "vocab.txt", "tokenizer_config.json"]))
    if target == "vocab.txt":
        os.remove(folder / "tokenizer.json")  # so that vocab.txt is what gets read
    path = folder / target
    raw = bytearray(path.read_bytes())
    kind = data.draw(st.sampled_from(["truncate", "flip", "garbage"]))
    if kind == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif kind == "flip":
        for position in data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=8)):
            raw[position] = data.draw(st.integers(0, 255))
    else:
        raw = bytearray(data.draw(st.binary(max_size=256)))
    path.write_bytes(bytes(raw))
    check(folder, target, len(raw))


# ---- torch checkpoints -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch_bin(tmp_path_factory):
    from conftest import require

    torch = require("torch")
    from safetensors.torch import load_file

    path = tmp_path_factory.mktemp("bin") / "pytorch_model.bin"
    torch.save(load_file(os.path.join(TINY, "model.safetensors")), path)
    return path.read_bytes()


@FUZZ
@given(data=st.data())
def test_pytorch_bin_mutations(torch_bin, data):
    with fresh_copy() as folder:
        _test_pytorch_bin_mutations(folder, torch_bin, data)


def _test_pytorch_bin_mutations(folder, torch_bin, data):
    os.remove(folder / "model.safetensors")
    raw = bytearray(torch_bin)
    kind = data.draw(st.sampled_from(["flip", "truncate", "flip_pickle"]))
    if kind == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif kind == "flip_pickle":  # the pickle sits near the start of the zip
        for position in data.draw(st.lists(st.integers(0, min(4000, len(raw) - 1)), min_size=1, max_size=6)):
            raw[position] = data.draw(st.integers(0, 255))
    else:
        for position in data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=8)):
            raw[position] ^= 1 << data.draw(st.integers(0, 7))
    (folder / "pytorch_model.bin").write_bytes(bytes(raw))
    check(folder, "pytorch_model.bin", len(raw))
