"""pytorch_model.bin without torch: torch.save round trips, the converter, and hostile or broken files.

Checkpoints written by torch.save need torch; hostile and broken files are assembled by hand below, so
those tests run where torch is absent.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import shutil
import struct
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from conftest import WEIGHTS, require

import bertnp
from bertnp.errors import WeightsError
from bertnp.torch_checkpoint import convert, main, read_torch_checkpoint, read_torch_tensors
from bertnp.weights import read_safetensors

TINY = os.path.join(WEIGHTS, "tiny")
DTYPES = ["float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool"]


@pytest.fixture(scope="module")
def torch():
    return require("torch")


def torch_bits(tensor) -> np.ndarray:
    """A tensor's exact values as NumPy; bfloat16 as its raw uint16 bits."""
    torch = require("torch")
    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:
        return tensor.contiguous().view(torch.int16).numpy().view(np.uint16)
    return tensor.numpy()


def assert_bit_exact(name: str, got: np.ndarray, want: np.ndarray):
    """Same dtype, shape and bytes; a failure says how many elements differ and by how much."""
    assert (got.dtype, got.shape) == (want.dtype, want.shape), \
        f"{name}: got {got.dtype}{list(got.shape)}, want {want.dtype}{list(want.shape)}"
    if np.ascontiguousarray(got).tobytes() != np.ascontiguousarray(want).tobytes():
        differ = got != want
        error = np.abs(got.astype(np.float64) - want.astype(np.float64))[differ].max()
        raise AssertionError(f"{name}: {int(differ.sum())} of {got.size} elements differ, max abs error {error:.3e}")


def sample(torch, dtype_name: str):
    """A [5, 7] tensor of the dtype, plus the awkward values of its type (-0.0, inf, nan, extremes)."""
    dtype = getattr(torch, dtype_name)
    gen = torch.Generator().manual_seed(0)
    if dtype.is_floating_point:
        special = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), float("nan"), 1e-3, -65504.0])
        return (torch.randn(5, 7, generator=gen) * 100).to(dtype), special.to(dtype)
    if dtype == torch.bool:
        return torch.randint(0, 2, (5, 7), generator=gen).bool(), torch.tensor([True, False])
    info = torch.iinfo(dtype)
    return torch.randint(info.min, info.max, (5, 7), generator=gen, dtype=dtype), \
        torch.tensor([info.min, info.max, 0], dtype=dtype)


# --- checkpoints written by torch.save -----------------------------------------------------------------


@pytest.mark.parametrize("dtype_name", DTYPES)
def test_every_dtype_round_trips_bit_exactly(tmp_path, torch, dtype_name):
    values, special = sample(torch, dtype_name)
    torch.save({"values": values, "special": special}, tmp_path / "model.bin")
    stored = read_torch_tensors(tmp_path / "model.bin")
    arrays = read_torch_checkpoint(tmp_path / "model.bin")
    for name, tensor in (("values", values), ("special", special)):
        assert_bit_exact(name, stored[name][1], torch_bits(tensor))
        want = tensor.float().numpy() if dtype_name == "bfloat16" else tensor.numpy()
        assert_bit_exact(name, arrays[name], want)
    assert stored["values"][0] == {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64",
                                   "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8",
                                   "bool": "BOOL"}[dtype_name]


def views_of_shared_storages(torch) -> dict:
    base = torch.arange(60, dtype=torch.float32).reshape(6, 10)
    big = torch.randn(1000, generator=torch.Generator().manual_seed(1))
    return {
        "base": base,
        "flat": base.view(60),
        "transposed": base.t(),
        "rows": base[2:4],
        "columns": base[:, 3:7],
        "steps": base[1::2, ::3],
        "element": base[5, 9],
        "big.first": big[:300],
        "big.second": big[300:].view(7, 100),
        "expanded_row": torch.arange(8).expand(1, -1),  # like old BERT's position_ids buffer
        "unsqueezed": base[:, 2].unsqueeze(1),
        "parameter": torch.nn.Parameter(torch.ones(3, 2)),
        "empty": torch.zeros(0, 4),
    }


@pytest.mark.parametrize("protocol", [2, 4])
def test_views_keep_shape_strides_offset_and_values(tmp_path, torch, protocol):
    tensors = views_of_shared_storages(torch)
    torch.save(tensors, tmp_path / "model.bin", pickle_protocol=protocol)
    arrays = read_torch_checkpoint(tmp_path / "model.bin")
    assert list(arrays) == list(tensors)
    for name, tensor in tensors.items():
        assert_bit_exact(name, arrays[name], torch_bits(tensor))
        array = arrays[name]
        if tensor.numel() > 1:
            strides = [s * tensor.element_size() for n, s in zip(tensor.shape, tensor.stride()) if n > 1]
            assert [s for n, s in zip(array.shape, array.strides) if n > 1] == strides, f"{name}: strides"
        assert not array.flags.writeable, f"{name} is writeable"

    def address(array):
        return array.__array_interface__["data"][0]

    base = arrays["base"]
    for name in ("flat", "transposed", "rows", "columns", "steps", "element"):
        assert np.shares_memory(arrays[name], base), f"{name} is a copy, not a view of base"
        offset = tensors[name].storage_offset() * 4
        assert address(arrays[name]) - address(base) == offset, f"{name}: storage offset"
    assert address(arrays["big.second"]) - address(arrays["big.first"]) == 300 * 4


def test_an_ordered_state_dict_with_metadata_reads(tmp_path, torch):
    """Module.state_dict() is an OrderedDict with a `_metadata` attribute: the one BUILD we accept."""
    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
    state = module.state_dict()
    assert hasattr(state, "_metadata")
    torch.save(state, tmp_path / "model.bin")
    arrays = read_torch_checkpoint(tmp_path / "model.bin")
    assert list(arrays) == list(state)
    for name, tensor in state.items():
        assert_bit_exact(name, arrays[name], torch_bits(tensor))


def test_convert_writes_safetensors_bit_exactly(tmp_path, torch):
    from safetensors.torch import load_file

    tensors = views_of_shared_storages(torch)
    for dtype_name in DTYPES:
        tensors[dtype_name], tensors[dtype_name + ".special"] = sample(torch, dtype_name)
    torch.save(tensors, tmp_path / "model.bin")
    convert(tmp_path / "model.bin", tmp_path / "model.safetensors")
    loaded = load_file(tmp_path / "model.safetensors")  # the safetensors library is the judge of the format
    assert set(loaded) == set(tensors)
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype, f"{name}: {loaded[name].dtype} != {tensor.dtype}"
        assert_bit_exact(name, torch_bits(loaded[name]), torch_bits(tensor))
    assert not os.path.exists(tmp_path / "model.safetensors.partial")

    # bertnp's own reader takes the dtypes it reads (not I16, I8, U8, BOOL); bfloat16 comes back widened.
    readable = {name: tensors[name] for name in ("bfloat16", "float16", "float32", "float64", "int64", "int32",
                                                 "transposed", "steps")}
    torch.save(readable, tmp_path / "readable.bin")
    convert(tmp_path / "readable.bin", tmp_path / "readable.safetensors")
    ours = read_safetensors(tmp_path / "readable.safetensors")
    for name, tensor in readable.items():
        want = tensor.float().numpy() if tensor.dtype in (torch.bfloat16, torch.float16) else tensor.numpy()
        assert_bit_exact(name, ours[name], want)


@pytest.mark.parametrize("dtype_name", ["float32", "bfloat16"])
def test_converted_bert_classifier_runs_like_save_pretrained(tmp_path, torch, dtype_name):
    transformers = require("transformers")
    config = transformers.BertConfig.from_pretrained(TINY)
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config).eval().to(getattr(torch, dtype_name))
    saved, converted = tmp_path / "save_pretrained", tmp_path / "converted"
    model.save_pretrained(saved)
    converted.mkdir()
    torch.save(model.state_dict(), converted / "pytorch_model.bin")
    convert(converted / "pytorch_model.bin", converted / "model.safetensors")
    shutil.copy(saved / "config.json", converted / "config.json")

    reference, ours = read_safetensors(saved / "model.safetensors"), read_safetensors(converted / "model.safetensors")
    for name, array in reference.items():
        assert name in ours, f"{name} written by save_pretrained is missing from the converted file"
        assert_bit_exact(name, ours[name], array)

    rng = np.random.default_rng(0)
    input_ids = rng.integers(0, config.vocab_size, size=(3, 9))
    attention_mask = np.ones((3, 9), np.int64)
    attention_mask[1, 6:] = 0
    want = bertnp.load(saved, backend="numpy")(input_ids, attention_mask, output_hidden_states=True)
    got = bertnp.load(converted, backend="numpy")(input_ids, attention_mask, output_hidden_states=True)
    for field in ("last_hidden_state", "pooler_output", "logits"):
        assert_bit_exact(field, getattr(got, field), getattr(want, field))


def test_reading_never_imports_torch_and_the_cli_converts(tmp_path, torch):
    torch.save({"w": torch.arange(6.0).reshape(2, 3).t()}, tmp_path / "model.bin")
    script = ("import sys; from bertnp.torch_checkpoint import main; code = main(sys.argv[1:]); "
              "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(code)")
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "model.bin"), str(tmp_path / "model.safetensors")],
                   check=True)
    np.testing.assert_array_equal(read_safetensors(tmp_path / "model.safetensors")["w"], [[0, 3], [1, 4], [2, 5]])
    assert main([]) == 2


def test_legacy_format_is_refused_with_a_hint(tmp_path, torch):
    torch.save({"w": torch.ones(2)}, tmp_path / "old.bin", _use_new_zipfile_serialization=False)
    with pytest.raises(WeightsError, match="legacy torch format.*re-save with torch>=1.6") as error:
        read_torch_checkpoint(tmp_path / "old.bin")
    assert str(tmp_path / "old.bin") in str(error.value)


# --- pickles assembled by hand: no torch needed ---------------------------------------------------------


def value(x) -> bytes:
    """Pickle opcodes that push x (a str, int, tuple, bytes ...)."""
    return pickle.dumps(x, protocol=2)[2:-1]  # without PROTO and STOP


def global_(module: str, name: str) -> bytes:
    return f"c{module}\n{name}\n".encode()


def call(func: bytes, *args: bytes) -> bytes:
    """func(*args) as pickle opcodes: MARK, the arguments, TUPLE, REDUCE."""
    return func + b"(" + b"".join(args) + b"tR"


def program(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


def storage(key="0", numel=6, kind="FloatStorage") -> bytes:
    """The persistent id ('storage', torch.<kind>, key, 'cpu', numel), then BINPERSID."""
    return b"(" + value("storage") + global_("torch", kind) + value(key) + value("cpu") + value(numel) + b"tQ"


def tensor(store: bytes, offset=0, shape=(2, 3), stride=(3, 1), extra: bytes = b"") -> bytes:
    hooks = call(global_("collections", "OrderedDict"))
    return call(global_("torch._utils", "_rebuild_tensor_v2"), store, value(offset), value(shape), value(stride),
                value(False), hooks, extra)


def state_dict(**tensors: bytes) -> bytes:
    return b"}(" + b"".join(value(name) + t for name, t in tensors.items()) + b"u"


def torch_zip(path, pickled: bytes, storages=None, byteorder=b"little", top="archive",
              compression=zipfile.ZIP_STORED):
    """A zip laid out as torch.save lays it out, around any pickle."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr(f"{top}/data.pkl", pickled)
        archive.writestr(f"{top}/byteorder", byteorder)
        for key, data in (storages or {}).items():
            archive.writestr(f"{top}/data/{key}", data)
        archive.writestr(f"{top}/version", b"3\n")
    return path


WEIGHT = np.arange(6, dtype="<f4")


def good_checkpoint(path, **kwargs):
    return torch_zip(path, program(state_dict(weight=tensor(storage()))), {"0": WEIGHT.tobytes()}, **kwargs)


def test_a_hand_made_checkpoint_reads(tmp_path):
    arrays = read_torch_checkpoint(good_checkpoint(tmp_path / "model.bin", top="any_name"))
    np.testing.assert_array_equal(arrays["weight"], WEIGHT.reshape(2, 3))


def test_big_endian_storages_are_byte_swapped(tmp_path):
    path = torch_zip(tmp_path / "model.bin", program(state_dict(weight=tensor(storage(), stride=(1, 2)))),
                     {"0": WEIGHT.astype(">f4").tobytes()}, byteorder=b"big")
    array = read_torch_checkpoint(path)["weight"]
    assert array.dtype == np.dtype("<f4")
    np.testing.assert_array_equal(array, WEIGHT.reshape(3, 2).T)


def test_a_big_endian_storage_is_swapped_once_for_all_its_views(tmp_path):
    views = {"whole": tensor(storage()), "transposed": tensor(storage(), shape=(3, 2), stride=(1, 3)),
             "tail": tensor(storage(), offset=3, shape=(3,), stride=(1,))}
    path = torch_zip(tmp_path / "model.bin", program(state_dict(**views)), {"0": WEIGHT.astype(">f4").tobytes()},
                     byteorder=b"big")
    arrays = read_torch_checkpoint(path)
    np.testing.assert_array_equal(arrays["whole"], WEIGHT.reshape(2, 3))
    np.testing.assert_array_equal(arrays["transposed"], WEIGHT.reshape(2, 3).T)
    np.testing.assert_array_equal(arrays["tail"], WEIGHT[3:])
    assert np.shares_memory(arrays["whole"], arrays["tail"]) and arrays["tail"].dtype == np.dtype("<f4")


def test_one_storage_under_many_names_is_refused_before_any_copy(tmp_path):
    numel = 1 << 16  # 256 KiB of float32, named 100 times: 25 MiB of views in a file of 257 KiB
    names = {f"t{i}": tensor(storage(numel=numel), shape=(numel,), stride=(1,)) for i in range(100)}
    path = torch_zip(tmp_path / "model.bin", program(state_dict(**names)), {"0": bytes(4 * numel)}, byteorder=b"big")
    with pytest.raises(WeightsError, match="model.bin: its tensors view more than 2 times the file's"):
        read_torch_checkpoint(path)


def test_shared_tuples_are_refused_as_keys_and_quoted_as_excerpts(tmp_path):
    shared = b")q\x000" + b"".join(b"h" + bytes([i]) + b"h" + bytes([i]) + b"\x86q" + bytes([i + 1]) + b"0"
                                      for i in range(40))
    key = program(b"}(" + shared + b"h" + bytes([40]) + b"Nu")
    with pytest.raises(WeightsError, match="refused a dict key that is a tuple"):
        read_torch_checkpoint(torch_zip(tmp_path / "key.bin", key))
    entry = program(b"}(" + value("w") + shared + b"h" + bytes([40]) + b"u")
    with pytest.raises(WeightsError, match="state dict entry 'w' is a tuple") as e:
        read_torch_checkpoint(torch_zip(tmp_path / "value.bin", entry))
    assert len(str(e.value)) < 400


class Payload:
    """An object whose unpickling calls func(*args): what a hostile checkpoint hides in its pickle."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def touch_payloads(sentinel: str) -> dict:
    """Refused global -> a payload that, if it ran, would create `sentinel` (or, last two, do nothing bad)."""
    create = f"open({sentinel!r}, 'w').close()"
    return {
        f"{os.system.__module__}.system": Payload(os.system, f"touch '{sentinel}'"),
        "builtins.eval": Payload(eval, create),
        "builtins.exec": Payload(exec, create),
        "subprocess.Popen": Payload(subprocess.Popen, ["touch", sentinel]),
        "collections.Counter": Payload(collections.Counter, "abc"),
        "numpy.frombuffer": Payload(np.frombuffer, b"\0" * 8),
    }


PAYLOADS = list(touch_payloads("x"))


@pytest.mark.parametrize("refused", PAYLOADS[:4])
def test_the_payloads_are_live(tmp_path, refused):
    """Control: with plain pickle each payload does create its sentinel, so its absence below means something."""
    sentinel = tmp_path / "ran"
    result = pickle.loads(pickle.dumps(touch_payloads(str(sentinel))[refused], protocol=2, fix_imports=False))
    if isinstance(result, subprocess.Popen):
        result.wait()
    assert sentinel.exists()


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("layout", ["zip", "zip, inside a state dict", "bare pickle"])
@pytest.mark.parametrize("refused", PAYLOADS)
def test_hostile_globals_are_refused_before_running(tmp_path, refused, layout, protocol):
    sentinel = tmp_path / "ran"
    payload = touch_payloads(str(sentinel))[refused]
    if layout == "zip, inside a state dict":
        payload = collections.OrderedDict([("bert.embeddings.word_embeddings.weight", payload)])
    pickled = pickle.dumps(payload, protocol=protocol, fix_imports=False)
    path = tmp_path / "pytorch_model.bin"
    if layout == "bare pickle":
        path.write_bytes(pickled)
    else:
        torch_zip(path, pickled)
    with pytest.raises(WeightsError) as error:
        read_torch_checkpoint(path)
    time.sleep(0.05)  # a Popen, had it started, would have had time to touch the file
    assert not sentinel.exists(), f"the payload ran: {sentinel} exists"
    assert f"refused global {refused}:" in str(error.value)
    assert str(path) in str(error.value)


REBUILD_TENSOR = global_("torch._utils", "_rebuild_tensor_v2")
REBUILD_PARAMETER = global_("torch._utils", "_rebuild_parameter")
# case -> (pickle body, what the error must say)
HOSTILE_PICKLES = {
    "rebuild_tensor with a str storage": (
        state_dict(weight=call(REBUILD_TENSOR, value("touch x"), value(0), value((6,)), value((1,)), value(False),
                               value({}))),
        "refused torch._utils._rebuild_tensor_v2 called with ('touch x'"),
    "rebuild_tensor with shape and stride of different lengths": (
        state_dict(weight=tensor(storage(), shape=(2, 3), stride=(1,))),
        "refused torch._utils._rebuild_tensor_v2 called with (storage data/0"),
    "rebuild_tensor with conj/neg metadata": (
        state_dict(weight=tensor(storage(), extra=value({"conj": True}))),
        "refused torch._utils._rebuild_tensor_v2 called with (storage data/0"),
    "rebuild_parameter of a str": (
        state_dict(weight=call(REBUILD_PARAMETER, value("x"), value(False), value({}))),
        "refused torch._utils._rebuild_parameter called with ('x'"),
    "OrderedDict with arguments": (
        call(global_("collections", "OrderedDict"), value([("a", 1)])),
        "refused collections.OrderedDict called with arguments"),
    "REDUCE on a storage type": (
        call(global_("torch", "FloatStorage"), value("touch x")),
        "refused REDUCE on torch.FloatStorage"),
    "BUILD on a tensor": (
        state_dict(weight=tensor(storage()) + value({"data": 1}) + b"b"),
        "refused BUILD on tensor[2, 3]"),
    "BUILD on an allowed function": (
        REBUILD_TENSOR + b"N" + value({"__defaults__": (1,)}) + b"\x86b",  # (None, slot state): setattr
        "refused BUILD on torch._utils._rebuild_tensor_v2"),
    "BUILD on the state dict": (
        call(global_("collections", "OrderedDict")) + value({"__class__": 1}) + b"b",
        "refused BUILD on the state dict"),
    "persistent id without a storage type": (
        state_dict(weight=tensor(value(("storage", "FloatStorage", "0", "cpu", 6)) + b"Q")),
        "refused persistent id ('storage', 'FloatStorage'"),
    "one storage read as two types": (
        state_dict(a=tensor(storage()), b=tensor(storage(kind="IntStorage"))),
        "storage data/0 is read both as"),
    "rebuild_tensor_v3, not allowed": (
        state_dict(weight=call(global_("torch._utils", "_rebuild_tensor_v3"))),
        "refused global torch._utils._rebuild_tensor_v3:"),
    "INST opcode": (b"(i" + b"os\nsystem\n", "refused pickle opcode INST"),
    "NEWOBJ opcode": (global_("collections", "OrderedDict") + value(()) + b"\x81", "refused pickle opcode NEWOBJ"),
    "memo bomb": (b"Nr\xff\xff\xff\x0f", "refused memo index 268435455"),  # CPython would allocate 4 GB for it
    "a value that is not a tensor": (state_dict(weight=value("not a tensor")), "is a str, expected a tensor"),
    "not a dict": (value([1, 2]), "holds a list, expected a state dict"),
}


@pytest.mark.parametrize("case", list(HOSTILE_PICKLES))
def test_tricks_through_allowed_globals_are_refused(tmp_path, case):
    body, message = HOSTILE_PICKLES[case]
    path = torch_zip(tmp_path / "model.bin", program(body), {"0": WEIGHT.tobytes()})
    with pytest.raises(WeightsError) as error:
        read_torch_checkpoint(path)
    assert message in str(error.value) and str(path) in str(error.value), str(error.value)


def test_storages_outside_a_zip_are_refused(tmp_path):
    path = tmp_path / "bare.pkl"
    path.write_bytes(program(state_dict(weight=tensor(storage()))))
    with pytest.raises(WeightsError, match="persistent id outside a torch.save zip"):
        read_torch_checkpoint(path)


# --- tensors that reach outside their storage, and broken zips ------------------------------------------


@pytest.mark.parametrize("shape, stride, offset, storage_bytes, message", [
    ((10,), (1,), 0, 24, "reaches outside its 6-element storage"),
    ((2, 3), (3, 1), 1, 24, "reaches outside"),
    ((2, 3), (2**40, 1), 0, 24, "reaches outside"),
    ((4, 6), (0, 1), 0, 24, "repeats its elements"),
    ((2, 3), (3, 1), 0, 20, "tensor 'weight' needs 24 bytes (6 x torch.FloatStorage) but archive/data/0 holds 20"),
    ((0, 2**62, 2**62), (1, 1, 1), 0, 24, "impossible shape"),
])
def test_tensors_outside_their_storage_are_refused(tmp_path, shape, stride, offset, storage_bytes, message):
    pickled = program(state_dict(weight=tensor(storage(), offset=offset, shape=shape, stride=stride)))
    path = torch_zip(tmp_path / "model.bin", pickled, {"0": bytes(storage_bytes)})
    with pytest.raises(WeightsError) as error:
        read_torch_checkpoint(path)
    assert message in str(error.value) and "'weight'" in str(error.value), str(error.value)


def test_a_size_one_dimension_may_have_any_stride(tmp_path):
    pickled = program(state_dict(weight=tensor(storage(), shape=(1, 6), stride=(2**40, 1))))
    path = torch_zip(tmp_path / "model.bin", pickled, {"0": WEIGHT.tobytes()})
    np.testing.assert_array_equal(read_torch_checkpoint(path)["weight"], WEIGHT[None])


def rezip(src, dst, drop=(), compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w", compression) as new:
        for info in old.infolist():
            if info.filename not in drop:
                new.writestr(info.filename, old.read(info.filename))
    return dst


def declare_size(path, member: str, size: int):
    """Overwrite a member's uncompressed size in the zip's central directory."""
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        (name_len,) = struct.unpack_from("<H", data, at + 28)
        if data[at + 46 : at + 46 + name_len] == member.encode():
            struct.pack_into("<I", data, at + 24, size)
        at = data.find(b"PK\x01\x02", at + 1)
    path.write_bytes(bytes(data))


def test_broken_zips_name_the_file(tmp_path):
    good = good_checkpoint(tmp_path / "good.bin")
    whole = good.read_bytes()
    cases = {
        "truncated": (lambda p: p.write_bytes(whole[: len(whole) // 2]), "truncated or corrupt"),
        "no data.pkl": (lambda p: rezip(good, p, drop={"archive/data.pkl"}), "expected one <folder>/data.pkl"),
        "no storage": (lambda p: rezip(good, p, drop={"archive/data/0"}),
                       "tensor 'weight' needs archive/data/0, which is missing"),
        "compressed": (lambda p: rezip(good, p, compression=zipfile.ZIP_DEFLATED), "is compressed"),
        "declared size": (lambda p: (p.write_bytes(whole), declare_size(p, "archive/data/0", 2**31)),
                          "declare 2147483"),
        "empty": (lambda p: p.write_bytes(b""), "not a readable pickle"),
        "text": (lambda p: p.write_bytes(b"version https://git-lfs.github.com/spec/v1\n"), "not a readable pickle"),
    }
    for case, (make, message) in cases.items():
        path = tmp_path / f"{case}.bin"
        make(path)
        with pytest.raises(WeightsError) as error:
            read_torch_checkpoint(path)
        assert str(path) in str(error.value) and message in str(error.value), f"{case}: {error.value}"


def test_a_memo_bomb_is_refused_without_allocating(tmp_path):
    path = torch_zip(tmp_path / "model.bin", program(b"Nr\xff\xff\xff\x7f"))
    start = time.perf_counter()
    with pytest.raises(WeightsError, match="memo index"):
        read_torch_checkpoint(path)
    assert time.perf_counter() - start < 1.0


def test_value_helper_pushes_what_it_says():
    """The hand assembler's own check: its pickles unpickle to what they spell."""
    assert pickle.loads(program(value(("storage", 1, (2, 3))))) == ("storage", 1, (2, 3))
    assert pickle.load(io.BytesIO(program(call(global_("collections", "OrderedDict"))))) == collections.OrderedDict()
