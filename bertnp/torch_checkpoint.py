"""pytorch_model.bin -> NumPy arrays, and -> model.safetensors, without importing torch.

The format. Since torch 1.6, `torch.save` writes an uncompressed zip whose one top folder has a name that
varies ("archive", or the file's stem):
    <top>/data.pkl      a pickle of the state dict; each tensor is a call
                        torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride,
                                                        requires_grad, backward_hooks)
                        whose `storage` is a persistent id ('storage', torch.FloatStorage, key, location, numel)
    <top>/data/<key>    the raw bytes of that storage: numel elements, no header
    <top>/byteorder     b"little" or b"big" (absent before torch 2.1: little)
    <top>/version, ...  not needed
Tensors that share a storage (a weight and its transpose, slices of one buffer) name the same key; size,
stride and offset count elements, as NumPy's strides count bytes. We return read-only views into one
memory map of the file, like `weights.read_safetensors`, so nothing is copied.

Why an allowlist. Unpickling runs code: a pickle names any importable callable (GLOBAL `posix system`)
and calls it (REDUCE), so a .bin from the internet can run a shell command. Our `find_class` never imports
anything: it answers the few names a state dict uses with bertnp's own stand-ins, and refuses every other
name before anything is called. The stand-ins check their arguments and build inert records; records can
neither be called (REDUCE) nor rewritten (BUILD). Arrays are made only after the whole pickle is read,
with each tensor's extent checked against its storage.

Why a scan first. A pickle of a few hundred bytes can still cost hours or gigabytes without calling
anything: memo indices it never filled (CPython's unpickler allocates up to them: 10 bytes can cost
4 GB), tuples that share sub-tuples so that one has 2**100 leaves (hashing it as a dict key, or a repr
of it, never ends), or thousands of empty containers from one byte each. `_scan` runs the pickle's
stack machine on the kinds of values only, and refuses all three before the unpickler builds anything;
messages quote content only through `files.excerpt`. Then the tensors: a storage may be shared, but all
the tensors together may view at most twice the file's bytes (tied embeddings view it twice), so one
storage named 100,000 times is refused before any of them is converted. The zip's members must be
stored uncompressed, as torch writes them, and may not declare more bytes than the file holds.

The pre-1.6 format (a sequence of bare pickles) is refused with a hint to re-save it.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import pickletools
import struct
import sys
import zipfile
from collections import OrderedDict

import numpy as np

from . import files
from .errors import WeightsError

# torch storage class -> (safetensors dtype code, NumPy dtype without byte order). bfloat16 has no NumPy
# dtype: its raw bits are read as uint16.
STORAGE_TYPES = {
    "DoubleStorage": ("F64", "f8"),
    "FloatStorage": ("F32", "f4"),
    "HalfStorage": ("F16", "f2"),
    "BFloat16Storage": ("BF16", "u2"),
    "LongStorage": ("I64", "i8"),
    "IntStorage": ("I32", "i4"),
    "ShortStorage": ("I16", "i2"),
    "CharStorage": ("I8", "i1"),
    "ByteStorage": ("U8", "u1"),
    "BoolStorage": ("BOOL", "b1"),
}
# Opcodes that build objects without REDUCE (INST, OBJ, NEWOBJ*), look names up in copyreg's extension
# registry (EXT*), build sets (whose elements are hashed) or use out-of-band buffers: torch.save never
# writes them, so we refuse them rather than reason about them.
REFUSED_OPCODES = {"INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4", "EMPTY_SET", "ADDITEMS", "FROZENSET",
                   "BYTEARRAY8", "NEXT_BUFFER", "READONLY_BUFFER"}
MAX_PICKLE_BYTES = 8 << 20  # data.pkl: torch writes about 110 bytes per tensor (BERT-large: 45 KB)
# What the objects a pickle builds may take in memory, per byte of pickle (torch's pickles: about 6), and
# how many bytes all tensors may view per byte of file (a tied decoder views the word embeddings twice).
MEMORY_PER_PICKLE_BYTE = 16
VIEWS_PER_FILE_BYTE = 2
MIN_MEMBER_BYTES = 30 + 46  # a zip member's local header plus its central directory entry, name aside
# The first pickle of the legacy (pre-1.6) format is this magic number.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _Refused(Exception):
    """Raised inside the unpickler; turned into a WeightsError naming the file."""


class _Record:
    """Base of what the stand-ins build. A hostile pickle may neither call one (REDUCE) nor rewrite it (BUILD)."""

    __slots__ = ()
    bounded_repr = True  # files.excerpt may call repr: it is flat (a storage key, a shape)

    def __call__(self, *args):
        raise _Refused(f"refused REDUCE on {self!r}: it is not callable")

    def __setstate__(self, state):
        raise _Refused(f"refused BUILD on {self!r}")


class _StorageType(_Record):
    """What `find_class` answers for torch.FloatStorage and its siblings."""

    __slots__ = ("name", "code", "dtype")

    def __init__(self, name: str):
        self.name = name
        self.code, self.dtype = STORAGE_TYPES[name]

    def __repr__(self):
        return f"torch.{self.name}"


class _Storage(_Record):
    """One persistent id: `numel` elements of `kind` in the zip member <top>/data/<key>."""

    __slots__ = ("kind", "key", "numel")

    def __init__(self, kind: _StorageType, key: str, numel: int):
        self.kind, self.key, self.numel = kind, key, numel

    def __repr__(self):
        return f"storage data/{files.shown(self.key)} ({self.numel} x {self.kind!r})"


class _Tensor(_Record):
    """A tensor as _rebuild_tensor_v2 describes it; made into an array once the pickle is fully read."""

    __slots__ = ("storage", "offset", "shape", "stride")

    def __init__(self, storage: _Storage, offset: int, shape: tuple, stride: tuple):
        self.storage, self.offset, self.shape, self.stride = storage, offset, shape, stride

    def __repr__(self):
        return f"tensor{files.excerpt(list(self.shape))} on {self.storage!r}"


class _StateDict(OrderedDict):
    """collections.OrderedDict, whose BUILD accepts only the `_metadata` that Module.state_dict() attaches."""

    def __setstate__(self, state):
        if not (isinstance(state, dict) and all(type(k) is str for k in state) and set(state) <= {"_metadata"}):
            raise _Refused(f"refused BUILD on the state dict with {type(state).__name__} state "
                           f"(a state dict carries only _metadata)")
        # _metadata holds per-module version numbers, which bertnp does not need.


def _is_index(x) -> bool:
    return type(x) is int and 0 <= x <= sys.maxsize


def _is_shape(x) -> bool:
    return type(x) is tuple and all(_is_index(n) for n in x)


def _is_empty_dict(x) -> bool:
    return isinstance(x, dict) and not x


def _ordered_dict(*args):
    """Stand-in for collections.OrderedDict: torch pickles it as OrderedDict(), its items added after."""
    if args:
        raise _Refused(f"refused collections.OrderedDict called with arguments {files.excerpt(args, 200)}")
    return _StateDict()


def _rebuild_tensor_v2(*args):
    """Stand-in for torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
    backward_hooks[, metadata]); metadata (conjugate or negative bits) is refused."""
    if not (len(args) == 6 and isinstance(args[0], _Storage) and _is_index(args[1]) and _is_shape(args[2])
            and _is_shape(args[3]) and len(args[2]) == len(args[3]) and type(args[4]) is bool
            and _is_empty_dict(args[5])):
        raise _Refused(f"refused torch._utils._rebuild_tensor_v2 called with {files.excerpt(args, 200)}: expected "
                       f"(storage, offset, size, stride, requires_grad, OrderedDict())")
    storage, offset, shape, stride = args[:4]
    return _Tensor(storage, offset, shape, stride)


def _rebuild_parameter(*args):
    """Stand-in for torch._utils._rebuild_parameter(data, requires_grad, backward_hooks): the data itself."""
    if not (len(args) == 3 and isinstance(args[0], _Tensor) and type(args[1]) is bool and _is_empty_dict(args[2])):
        raise _Refused(f"refused torch._utils._rebuild_parameter called with {files.excerpt(args, 200)}: expected "
                       f"(tensor, requires_grad, OrderedDict())")
    return args[0]


class _StandIn(_Record):
    """An allowed callable global. A call goes to a function that checks its arguments; BUILD, which could
    otherwise set attributes on a module-level function, is refused like on every record."""

    __slots__ = ("name", "function")

    def __init__(self, name: str, function):
        self.name, self.function = name, function

    def __call__(self, *args):
        return self.function(*args)

    def __repr__(self):
        return self.name


# The only globals a state dict pickle may name, and what each name stands for here.
ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): _StandIn("collections.OrderedDict", _ordered_dict),
    ("torch._utils", "_rebuild_tensor_v2"): _StandIn("torch._utils._rebuild_tensor_v2", _rebuild_tensor_v2),
    ("torch._utils", "_rebuild_parameter"): _StandIn("torch._utils._rebuild_parameter", _rebuild_parameter),
    **{("torch", name): _StorageType(name) for name in STORAGE_TYPES},
}


class _StateDictUnpickler(pickle.Unpickler):
    """pickle.Unpickler that imports nothing: names resolve only through ALLOWED_GLOBALS."""

    def __init__(self, stream, in_archive: bool):
        super().__init__(stream)
        self.in_archive = in_archive
        self.storages = {}  # key -> _Storage, so that tensors sharing a storage share one record

    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            allowed = ", ".join(sorted({f"{m}.{n}" for m, n in ALLOWED_GLOBALS if m != "torch"}))
            raise _Refused(f"refused global {files.shown(module)}.{files.shown(name)}: a state dict pickle may name "
                           f"only {allowed} and torch.<Type>Storage") from None

    def persistent_load(self, pid):
        if not self.in_archive:
            raise _Refused("refused a persistent id outside a torch.save zip archive")
        if not (type(pid) is tuple and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)
                and type(pid[2]) is str and type(pid[3]) is str and _is_index(pid[4])):
            raise _Refused(f"refused persistent id {files.excerpt(pid, 200)}: expected "
                           f"('storage', torch.<Type>Storage, key, location, numel)")
        _, kind, key, _location, numel = pid
        storage = self.storages.setdefault(key, _Storage(kind, key, numel))
        if (storage.kind, storage.numel) != (kind, numel):
            raise _Refused(f"storage data/{files.shown(key)} is read both as {storage!r:.200} and as {numel} x {kind!r}")
        return storage


_TUPLE, _OTHER = "tuple", "other"  # what the scan knows of a value: whether it is a tuple
_PUTS, _GETS = {"PUT", "BINPUT", "LONG_BINPUT"}, {"GET", "BINGET", "LONG_BINGET"}


def _scan(data: bytes):
    """Run the pickle's stack machine on the kinds of values, before the unpickler builds anything. Refuses
    opcodes no state dict uses, memo indices beyond what the pickle so far could have filled, dict keys
    that are tuples (hashing a tuple walks all of it, shared sub-tuples included; a state dict's keys are
    strings), and objects that would take more than MEMORY_PER_PICKLE_BYTE times the pickle's size.
    A pickle the unpickler could not run either raises pickle.UnpicklingError."""
    stack, fences, memo = [], [], {}
    budget, cost = MEMORY_PER_PICKLE_BYTE * len(data) + (1 << 20), 0
    for opcode, arg, pos in pickletools.genops(io.BytesIO(data)):
        name = opcode.name
        if name in REFUSED_OPCODES:
            raise _Refused(f"refused pickle opcode {name} at byte {pos}: torch.save never writes it")
        fence = fences[-1] if fences else 0
        if name in _PUTS or name == "MEMOIZE":
            index = len(memo) if name == "MEMOIZE" else arg
            if index > pos:
                raise _Refused(f"refused memo index {index} at byte {pos}: larger than the pickle so far could fill")
            if len(stack) <= fence:
                raise pickle.UnpicklingError(f"{name} at byte {pos} on an empty stack")
            memo[index] = stack[-1]
            continue
        if name in _GETS:
            if arg not in memo:
                raise pickle.UnpicklingError(f"{name} at byte {pos} reads memo index {arg}, which is empty")
            stack.append(memo[arg])
            continue
        if name == "MARK":
            fences.append(len(stack))
            continue
        before, after = opcode.stack_before, opcode.stack_after
        items = []
        if pickletools.markobject in before:  # pop back to the MARK; the target of APPENDS/SETITEMS stays below it
            if not fences:
                raise pickle.UnpicklingError(f"{name} at byte {pos} without a MARK")
            items = stack[fences.pop() :]
            del stack[len(stack) - len(items) :]
            kept = before.index(pickletools.markobject)
            if len(stack) - (fences[-1] if fences else 0) < kept:
                raise pickle.UnpicklingError(f"{name} at byte {pos} on an empty stack")
            pushed = len(after) - kept
        else:
            if len(stack) - fence < len(before):
                raise pickle.UnpicklingError(f"{name} at byte {pos} on an empty stack")
            items = stack[len(stack) - len(before) :]
            del stack[len(stack) - len(before) :]
            pushed = len(after)
        if name in ("SETITEMS", "DICT", "SETITEM"):
            keys = items[1::2] if name == "SETITEM" else items[0::2]
            if name != "SETITEM" and len(items) % 2:
                raise pickle.UnpicklingError(f"{name} at byte {pos} with an odd number of items")
            if _TUPLE in keys:
                raise _Refused(f"refused a dict key that is a tuple at byte {pos}: a state dict's keys are strings")
        if name == "DUP":
            stack += items * 2
            continue
        if name in ("APPEND", "SETITEM", "BUILD"):  # the object stays; it grows
            stack.append(items[0])
            cost += 40 * (len(items) - 1)
        else:
            stack += [_TUPLE if kind is pickletools.pytuple else _OTHER for kind in after[len(after) - pushed :]]
            if pushed:
                cost += 64 + 8 * len(items)
            if name in ("APPENDS", "SETITEMS"):
                cost += 40 * len(items)
        if isinstance(arg, (str, bytes)):
            cost += len(arg)
        elif isinstance(arg, int):
            cost += arg.bit_length() // 8
        if cost > budget:
            raise _Refused(f"refused a pickle whose objects would take more than {MEMORY_PER_PICKLE_BYTE} times its "
                           f"{len(data)} bytes (at byte {pos})")


def _unpickle(data: bytes, path: str, in_archive: bool):
    """Restricted unpickling of `data`; every refusal or malformation becomes a WeightsError naming `path`."""
    what = "data.pkl" if in_archive else "the file"
    try:
        _scan(data)
        return _StateDictUnpickler(io.BytesIO(data), in_archive).load()
    except _Refused as e:
        raise WeightsError(f"{path}: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            OverflowError, MemoryError, RecursionError) as e:
        raise WeightsError(f"{path}: {what} is not a readable pickle ({type(e).__name__}: {str(e)[:200]})") from None


def _refuse_non_zip(f, path: str):
    """A file that is not a zip: say whether it is the legacy format, a hostile pickle, or neither."""
    f.seek(0)
    head = f.read(1 << 20)  # the legacy magic-number pickle is 17 bytes; a hostile one is refused by name
    if _unpickle(head, path, in_archive=False) == LEGACY_MAGIC:
        raise WeightsError(f"{path}: legacy torch format (torch.save before 1.6, or "
                           f"_use_new_zipfile_serialization=False): re-save with torch>=1.6")
    raise WeightsError(f"{path}: a pickle, but not a torch.save zip archive")


def _check_members(archive: zipfile.ZipFile, path: str, size: int):
    """Refuse a zip that claims more than the file can hold: too many members, or compressed ones."""
    infos = archive.infolist()
    if len(infos) * MIN_MEMBER_BYTES > size:
        raise WeightsError(f"{path}: the zip lists {len(infos)} members, more than {size} bytes can hold")
    declared = sum(info.file_size for info in infos)
    if declared > size:
        raise WeightsError(f"{path}: the zip's members declare {declared} bytes, more than the file's {size}")
    compressed = [info.filename for info in infos if info.compress_type != zipfile.ZIP_STORED]
    if compressed:
        raise WeightsError(f"{path}: member {compressed[0]} is compressed; torch.save stores members "
                           f"uncompressed: re-save with torch.save")


def _top_folder(archive: zipfile.ZipFile, path: str) -> str:
    """The zip's top folder: the one holding data.pkl."""
    tops = [name[: -len("/data.pkl")] for name in archive.namelist()
            if name.endswith("/data.pkl") and name.count("/") == 1]
    if len(tops) != 1:
        raise WeightsError(f"{path}: expected one <folder>/data.pkl in the zip, found {len(tops)}: "
                           f"not a torch.save checkpoint")
    return tops[0]


def _byteorder(archive: zipfile.ZipFile, top: str, path: str) -> str:
    """'<' or '>' from <top>/byteorder; files older than torch 2.1 have none and are little-endian."""
    name = f"{top}/byteorder"
    try:
        order = archive.read(name)
    except KeyError:
        return "<"
    if order not in (b"little", b"big"):
        raise WeightsError(f"{path}: {name} says {order[:20]!r}, expected b'little' or b'big'")
    return "<" if order == b"little" else ">"


def _member_bytes(archive: zipfile.ZipFile, raw: np.ndarray, name: str, path: str) -> np.ndarray | None:
    """The bytes of a stored member as a view of the file's memory map, or None if there is no such member."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        return None
    local = bytes(raw[info.header_offset : info.header_offset + 30])
    if len(local) != 30 or local[:4] != b"PK\x03\x04":
        raise WeightsError(f"{path}: member {name} has no local header at byte {info.header_offset}")
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    start = info.header_offset + 30 + name_len + extra_len
    if start + info.file_size > raw.size:
        raise WeightsError(f"{path}: member {name} runs past the end of the file (truncated?)")
    return raw[start : start + info.file_size]


def _to_array(name: str, tensor: _Tensor, member: np.ndarray | None, member_name: str, byteorder: str,
              path: str, swapped: dict) -> np.ndarray:
    """One tensor as a read-only strided view of its storage's bytes, after checking it stays inside them.
    Big-endian storages are byte-swapped once each, into `swapped`."""
    storage = tensor.storage
    dtype = np.dtype(byteorder + storage.kind.dtype)
    if member is None:
        raise WeightsError(f"{path}: tensor '{files.shown(name)}' needs {files.shown(member_name)}, which is missing "
                           f"from the zip")
    needed = storage.numel * dtype.itemsize
    if member.size < needed:
        raise WeightsError(f"{path}: tensor '{files.shown(name)}' needs {needed} bytes ({storage.numel} x "
                           f"{storage.kind!r}) but {files.shown(member_name)} holds {member.size}")
    if len(tensor.shape) > files.MAX_DIMS:
        raise WeightsError(f"{path}: tensor '{files.shown(name)}' has {len(tensor.shape)} dimensions; bertnp reads "
                           f"at most {files.MAX_DIMS}")
    count = _count(tensor)
    if count == 0:
        try:
            return _read_only(np.zeros(tensor.shape, dtype.newbyteorder("<")))
        except ValueError:  # NumPy refuses empty shapes whose other dimensions overflow its index type
            raise WeightsError(f"{path}: tensor '{files.shown(name)}' has an impossible shape "
                               f"{files.excerpt(list(tensor.shape))}") from None
    # A size-1 dimension is never stepped over, whatever its stride says.
    stride = tuple(s if n > 1 else 0 for n, s in zip(tensor.shape, tensor.stride))
    last = tensor.offset + sum((n - 1) * s for n, s in zip(tensor.shape, stride))
    if last >= storage.numel or count > storage.numel:
        raise WeightsError(f"{path}: tensor '{files.shown(name)}' (shape {files.excerpt(list(tensor.shape))}, stride "
                           f"{files.excerpt(list(tensor.stride))}, offset {tensor.offset}) reaches outside its "
                           f"{storage.numel}-element storage, or "
                           f"repeats its elements (expanded tensors are refused)")
    flat = member[:needed].view(dtype)
    if byteorder == ">":  # once per storage, however many tensors view it
        key = (member_name, dtype.str)
        if key not in swapped:
            swapped[key] = _read_only(flat.astype(dtype.newbyteorder("<")))
        flat = swapped[key]
    return np.lib.stride_tricks.as_strided(flat[tensor.offset :], tensor.shape,
                                           tuple(s * flat.itemsize for s in stride), writeable=False)


def _count(tensor: _Tensor) -> int:
    return math.prod(tensor.shape)


def _check_views(items, path: str, size: int):
    """All tensors together may view at most VIEWS_PER_FILE_BYTE times the file's bytes, checked before any
    array is made: each conversion (byte order, bfloat16, the compute dtype) then costs at most that."""
    total = 0
    for name, tensor in items:
        total += min(_count(tensor), tensor.storage.numel) * np.dtype(tensor.storage.kind.dtype).itemsize
        if total > VIEWS_PER_FILE_BYTE * size + (1 << 20):
            raise WeightsError(f"{path}: its tensors view more than {VIEWS_PER_FILE_BYTE} times the file's {size} "
                               f"bytes (at tensor '{files.shown(name)}'): one storage shared by too many tensors")


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _state_dict_items(obj, path: str) -> list:
    """The unpickled object must be a dict of tensor name -> tensor; its (name, tensor) pairs."""
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: data.pkl holds a {type(obj).__name__}, expected a state dict")
    for name, value in obj.items():
        if type(name) is not str or not isinstance(value, _Tensor):
            raise WeightsError(f"{path}: state dict entry {files.excerpt(name)} is a {type(value).__name__}, expected a "
                               f"tensor (a checkpoint of a whole training state? save model.state_dict())")
    return list(obj.items())


def read_torch_tensors(path) -> dict[str, tuple[str, np.ndarray]]:
    """Every tensor of a torch.save zip as name -> (safetensors dtype code, little-endian array of the stored
    bits). bfloat16 ("BF16") comes back as its raw uint16 bits, so that it can be written back bit-exactly."""
    path = os.fspath(path)
    try:
        with files.open_regular(path, WeightsError) as f:
            size = os.fstat(f.fileno()).st_size
            if f.read(4) != b"PK\x03\x04":
                _refuse_non_zip(f, path)
            with zipfile.ZipFile(f) as archive:
                _check_members(archive, path, size)
                top = _top_folder(archive, path)
                byteorder = _byteorder(archive, top, path)
                pickled = archive.getinfo(f"{top}/data.pkl")
                if pickled.file_size > MAX_PICKLE_BYTES:
                    raise WeightsError(f"{path}: data.pkl has {pickled.file_size} bytes, more than the "
                                       f"{MAX_PICKLE_BYTES >> 20} MiB bertnp reads")
                state = _unpickle(archive.read(pickled), path, in_archive=True)
                items = _state_dict_items(state, path)
                _check_views(items, path, size)
                raw = files.map_open(f, path, WeightsError)
                tensors, swapped = {}, {}
                for name, tensor in items:
                    member_name = f"{top}/data/{tensor.storage.key}"
                    member = _member_bytes(archive, raw, member_name, path)
                    array = _to_array(name, tensor, member, member_name, byteorder, path, swapped)
                    tensors[name] = (tensor.storage.kind.code, array)
                return tensors
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such file") from None
    except WeightsError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, struct.error) as e:
        raise WeightsError(f"{path}: not a readable zip archive, truncated or corrupt? ({str(e)[:200]})") from None


def read_torch_checkpoint(path) -> dict[str, np.ndarray]:
    """Every tensor of a pytorch_model.bin (torch.save zip) as a NumPy array, without torch.

    Dtype, shape, strides and offset are the checkpoint's; tensors sharing a storage are views of one
    read-only memory map. bfloat16, which NumPy lacks, is widened to float32 exactly.
    """
    return {name: _widen_bfloat16(array) if code == "BF16" else array
            for name, (code, array) in read_torch_tensors(path).items()}


def _widen_bfloat16(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bits (uint16) -> float32 exactly: they are the high half of the float32."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def write_safetensors(path, tensors: dict[str, tuple[str, np.ndarray]]):
    """name -> (dtype code, little-endian array) into a safetensors file, tensors in the order given.

    The format: an 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}
    padded with spaces to a multiple of 8, then each tensor's bytes back to back, C-ordered. The file is
    written beside `path` and renamed into place, so a failed conversion leaves no half-written file.
    """
    path = os.fspath(path)
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, (code, array) in tensors.items():
        header[name] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    partial = path + ".partial"
    with open(partial, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for _, array in tensors.values():
            f.write(np.ascontiguousarray(array).tobytes())
    os.replace(partial, path)


def convert(src_bin, dst_safetensors):
    """pytorch_model.bin -> model.safetensors, tensor names and dtypes kept (bfloat16 bit-exactly)."""
    write_safetensors(dst_safetensors, read_torch_tensors(src_bin))


def main(argv=None) -> int:
    """python -m bertnp.torch_checkpoint pytorch_model.bin model.safetensors"""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m bertnp.torch_checkpoint pytorch_model.bin model.safetensors", file=sys.stderr)
        return 2
    try:
        convert(*args)
    except WeightsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
