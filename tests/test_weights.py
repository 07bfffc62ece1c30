"""Loading checkpoints: memory-mapping, name variants, dtypes, shards, and every kind of broken file."""

from __future__ import annotations

import json
import os
import shutil
import struct

import numpy as np
import pytest

from conftest import WEIGHTS
from parity import assert_close

import bertnp
from bertnp.weights import read_safetensors

TINY = os.path.join(WEIGHTS, "tiny")


def write_safetensors(path, tensors: dict, dtypes: dict | None = None):
    """Our own writer, so tests can emit bfloat16 and deliberately broken headers."""
    header, chunks, offset = {}, [], 0
    for name, array in tensors.items():
        code = (dtypes or {}).get(name) or {"float32": "F32", "float64": "F64", "float16": "F16",
                                            "int64": "I64", "int32": "I32"}[array.dtype.name]
        data = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + b"".join(chunks))


def tiny_tensors() -> dict:
    return {name: np.array(a) for name, a in read_safetensors(os.path.join(TINY, "model.safetensors")).items()}


def tiny_copy(tmp_path, tensors=None, config=None):
    """weights/tiny into tmp_path, optionally with other tensors or config fields."""
    for name in os.listdir(TINY):
        if name != "model.safetensors":
            shutil.copy(os.path.join(TINY, name), tmp_path / name)
    write_safetensors(tmp_path / "model.safetensors", tiny_tensors() if tensors is None else tensors)
    if config:
        raw = json.load(open(tmp_path / "config.json"))
        raw.update(config)
        (tmp_path / "config.json").write_text(json.dumps(raw))
    return tmp_path


def run(model, text="The team won the game."):
    return model(**model.tokenize([text]))


def test_float32_weights_are_memory_mapped_not_copied():
    model = bertnp.load(TINY)
    word = model.weights.embeddings.word
    base = word
    while getattr(base, "base", None) is not None:
        base = base.base
    assert isinstance(base, np.memmap) or type(base).__name__ == "mmap", f"weights live in {type(base)}"
    assert not word.flags.owndata and not word.flags.writeable


def test_float64_load_upcasts():
    model = bertnp.load(TINY, dtype="float64")
    assert model.weights.embeddings.word.dtype == np.float64
    assert run(model).last_hidden_state.dtype == np.float64


def test_names_without_prefix_and_legacy_gamma_beta(tmp_path):
    renamed = {}
    for name, array in tiny_tensors().items():
        name = name.removeprefix("bert.").replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        renamed[name] = array
    reference = run(bertnp.load(TINY)).last_hidden_state
    assert_close("renamed checkpoint", run(bertnp.load(tiny_copy(tmp_path, renamed))).last_hidden_state, reference, 0)


def test_float16_and_bfloat16_files_upcast_exactly(tmp_path):
    tensors = tiny_tensors()
    half = {name: a.astype(np.float16) for name, a in tensors.items()}
    expected = {name: a.astype(np.float32) for name, a in half.items()}  # what an exact upcast gives
    bf16_bits = {name: (a.view(np.uint32) >> 16).astype(np.uint16) for name, a in tensors.items()}
    expected_bf16 = {name: (b.astype(np.uint32) << 16).view(np.float32) for name, b in bf16_bits.items()}

    (tmp_path / "f16").mkdir()
    model = bertnp.load(tiny_copy(tmp_path / "f16", half))
    np.testing.assert_array_equal(model.weights.embeddings.word, expected["bert.embeddings.word_embeddings.weight"])

    (tmp_path / "bf16").mkdir()
    folder = tiny_copy(tmp_path / "bf16")
    write_safetensors(folder / "model.safetensors", bf16_bits, dtypes={n: "BF16" for n in bf16_bits})
    model = bertnp.load(folder)
    np.testing.assert_array_equal(model.weights.layers[1].output.weight,
                                  expected_bf16["bert.encoder.layer.1.output.dense.weight"])
    assert np.isfinite(run(model).last_hidden_state).all()


def test_sharded_checkpoint(tmp_path):
    tensors = tiny_tensors()
    folder = tiny_copy(tmp_path)
    os.remove(folder / "model.safetensors")
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for shard, members in shards.items():
        write_safetensors(folder / shard, {n: tensors[n] for n in members})
    weight_map = {n: shard for shard, members in shards.items() for n in members}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    assert_close("sharded", run(bertnp.load(folder, backend="numpy")).last_hidden_state,
                 run(bertnp.load(TINY, backend="numpy")).last_hidden_state, 0)


# ---- broken files: each gets a bertnp error that names the file and what is wrong ----------------------


def test_truncated_file(tmp_path):
    folder = tiny_copy(tmp_path)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(bertnp.WeightsError, match=r"model.safetensors: tensor '.*' .*claims bytes"):
        bertnp.load(folder)


@pytest.mark.parametrize("content,message", [
    (b"", "too short"),
    (b"\x01\x02\x03", "too short"),
    (struct.pack("<Q", 10**12) + b"{}", "header claims"),
    (struct.pack("<Q", 8) + b"not json", "unreadable safetensors header"),
    (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
])
def test_corrupt_headers(tmp_path, content, message):
    folder = tiny_copy(tmp_path)
    (folder / "model.safetensors").write_bytes(content)
    with pytest.raises(bertnp.WeightsError, match=message) as e:
        bertnp.load(folder)
    assert "model.safetensors" in str(e.value)

def header(entries: dict, data: bytes = b"") -> bytes:
    return header_bytes(json.dumps(entries).encode(), data)


def header_bytes(raw: bytes, data: bytes = b"") -> bytes:
    return struct.pack("<Q", len(raw)) + raw + data


@pytest.mark.parametrize("content,message", [
    (header({"x": {"dtype": "F32", "shape": [0, 2**64], "data_offsets": [0, 0]}}), r"has shape \[0, 18446744073709551616\]"),
    (header({"x": {"dtype": "F64", "shape": [0, 2**61, 2**61], "data_offsets": [0, 0]}}), "too large for NumPy"),
    (header({"x": {"dtype": "F32", "shape": [1] * 65, "data_offsets": [0, 4]}}, bytes(4)), "at most 32 integers"),
    (header({"x": {"dtype": ["F32"], "shape": [2], "data_offsets": [0, 8]}}, bytes(8)), "has dtype \\['F32'\\]"),
    (header({"x": {"dtype": "F32", "shape": [2], "data_offsets": "0..8"}}, bytes(8)), "malformed header entry"),
    (header({"x": {"dtype": "F32", "shape": [2], "data_offsets": [10**30, 10**30 + 8]}}, bytes(8)), "claims bytes"),
    (header_bytes(b'{"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, ' + b"9" * 45 + b"]}}"),
     "an integer of 45 digits"),
])
def test_header_numbers_are_range_checked(tmp_path, content, message):
    folder = tiny_copy(tmp_path)
    (folder / "model.safetensors").write_bytes(content)
    with pytest.raises(bertnp.WeightsError, match=message) as e:
        bertnp.load(folder)
    assert "model.safetensors" in str(e.value) and len(str(e.value)) < 400



def test_offsets_past_the_end(tmp_path):
    folder = tiny_copy(tmp_path)
    header = {"bert.embeddings.word_embeddings.weight": {"dtype": "F32", "shape": [224, 32],
                                                          "data_offsets": [0, 224 * 32 * 4]}}
    raw = json.dumps(header).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 100)
    with pytest.raises(bertnp.WeightsError, match=r"word_embeddings.weight' \(F32\[224, 32\]\) claims bytes 0..28672"):
        bertnp.load(folder)


def test_wrong_shape_names_tensor_and_expected_shape(tmp_path):
    tensors = tiny_tensors()
    tensors["bert.encoder.layer.1.intermediate.dense.weight"] = np.zeros((36, 32), np.float32)
    with pytest.raises(bertnp.WeightsError, match=r"intermediate.dense.weight' has shape \[36, 32\], expected \[37, 32\]"):
        bertnp.load(tiny_copy(tmp_path, tensors))


def test_wrong_dtype(tmp_path):
    tensors = tiny_tensors()
    tensors["bert.pooler.dense.bias"] = np.zeros(32, np.int32)
    with pytest.raises(bertnp.WeightsError, match=r"pooler.dense.bias' has dtype int32"):
        bertnp.load(tiny_copy(tmp_path, tensors))
    with pytest.raises(bertnp.WeightsError, match=r"has dtype U8"):
        folder = tiny_copy(tmp_path)
        header = {"x": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}
        raw = json.dumps(header).encode()
        (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0")
        bertnp.load(folder)


def test_missing_and_unexpected_tensors(tmp_path):
    tensors = tiny_tensors()
    del tensors["bert.encoder.layer.0.attention.self.key.bias"]
    (tmp_path / "a").mkdir()
    with pytest.raises(bertnp.WeightsError, match=r"missing tensor\(s\) encoder.layer.0.attention.self.key.bias"):
        bertnp.load(tiny_copy(tmp_path / "a", tensors))
    tensors = tiny_tensors()
    tensors["bert.encoder.layer.2.output.dense.bias"] = np.zeros(32, np.float32)
    (tmp_path / "b").mkdir()
    with pytest.raises(bertnp.WeightsError, match=r"unexpected tensor\(s\) encoder.layer.2.output.dense.bias"):
        bertnp.load(tiny_copy(tmp_path / "b", tensors))


def test_no_weights_file(tmp_path):
    folder = tiny_copy(tmp_path)
    os.remove(folder / "model.safetensors")
    with pytest.raises(bertnp.WeightsError, match="no model.safetensors"):
        bertnp.load(folder)


def test_config_that_disagrees_with_weights(tmp_path):
    with pytest.raises(bertnp.WeightsError, match=r"classifier.weight' has shape \[3, 32\], expected \[4, 32\]"):
        bertnp.load(tiny_copy(tmp_path, config={"id2label": {str(i): f"L{i}" for i in range(4)},
                                                "label2id": None}))


def test_not_a_folder(tmp_path):
    with pytest.raises(bertnp.BertnpError, match="not a folder"):
        bertnp.load(tmp_path / "nowhere")
    with pytest.raises(bertnp.BertnpError, match="dtype='float16'"):
        bertnp.load(TINY, dtype="float16")


def test_broken_tokenizer_json_still_loads_model(tmp_path):
    folder = tiny_copy(tmp_path)
    (folder / "tokenizer.json").write_text("{broken")
    model = bertnp.load(folder)
    with pytest.raises(bertnp.TokenizerError, match="tokenizer.json: not a valid tokenizers file"):
        model.tokenize(["hello"])
