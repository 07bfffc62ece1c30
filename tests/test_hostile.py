"""Hostile model folders: every attack class of issue 14, each case loaded in a child process that has an
address-space limit and a timeout, so that a regression fails a test instead of taking the machine down.

The contract (README, "Loading a model folder someone else made"): a folder loads and runs, or `load` /
`tokenize` raise a bertnp error that names the file; within CASE_TIMEOUT seconds; with a peak resident
memory under `budget(folder)`; and the message quotes at most a bounded excerpt of the file.

The sandbox is one server process that imports bertnp once and forks a child per case. The child lowers
RLIMIT_AS to its current size plus the case's allowance, resets its peak-RSS counter, and reports its
outcome, its time and its peak memory over a pipe; the server kills it at the timeout and reports a
child that died (a Rust abort, a segfault) by its signal. test_hostile_strategies.py composes the same
attacks with hypothesis. BERTNP_HOSTILE_TIMEOUT changes the timeout.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import re
import resource
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile

import numpy as np
import pytest

from conftest import WEIGHTS

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox forks and reads /proc")

TINY = os.path.join(WEIGHTS, "tiny")
TINY_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
              "vocab.txt")
CASE_TIMEOUT = float(os.environ.get("BERTNP_HOSTILE_TIMEOUT", "30"))
MAX_MESSAGE = 1000  # characters of a bertnp error message: it quotes hostile content only in excerpts
MiB = 1 << 20


def budget(case_bytes: int) -> int:
    """Peak resident memory a case may add: a constant for the tiny model and Python's work, plus 32 times
    the folder's bytes (Python's JSON parser can take 30 times a file while it parses it)."""
    return 96 * MiB + 32 * case_bytes


# ---- the sandbox ---------------------------------------------------------------------------------------


class Sandbox:
    """A server process that forks one child per case (see the module docstring)."""

    def __init__(self):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "BERTNP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
               "TOKENIZERS_PARALLELISM": "false", "RUST_BACKTRACE": "0", "HF_HUB_OFFLINE": "1"}
        here = os.path.dirname(os.path.abspath(__file__))
        self.process = subprocess.Popen(
            [sys.executable, "-c", f"import sys; sys.path.insert(0, {here!r}); import test_hostile; test_hostile.serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=here)
        self.results = []

    def run(self, label: str, function: str, *args, case_bytes: int = 0, timeout: float = CASE_TIMEOUT) -> dict:
        request = pickle.dumps((function, args, budget(case_bytes), timeout))
        self.process.stdin.write(struct.pack("<Q", len(request)) + request)
        self.process.stdin.flush()
        size = self.process.stdout.read(8)
        assert len(size) == 8, "the sandbox server died"
        result = pickle.loads(self.process.stdout.read(struct.unpack("<Q", size)[0]))
        result["label"], result["case_bytes"] = label, case_bytes
        self.results.append(result)
        return result

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=30)

    def summary(self) -> str:
        done = [r for r in self.results if "seconds" in r and not r["label"].startswith("sandbox:")]
        if not done:
            return "hostile folders: no case ran"
        slowest = max(done, key=lambda r: r["seconds"])
        largest = max(done, key=lambda r: r["peak"])
        outcomes = {}
        for r in done:
            outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
        return (f"hostile folders: {len(done)} cases ({', '.join(f'{n} {k}' for k, n in sorted(outcomes.items()))}); "
                f"worst time {slowest['seconds']:.2f} s ({slowest['label']}); worst peak memory "
                f"{largest['peak'] / MiB:.1f} MiB over the loaded sandbox ({largest['label']})")


def serve():
    """The server loop (run in its own process by Sandbox)."""
    import bertnp

    warm = bertnp.load(TINY, backend="numpy")  # lazy imports and first calls happen once, before any fork
    warm(**warm.tokenize(["warm up"]))
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    while True:
        size = inp.read(8)
        if len(size) < 8:
            return
        function, args, allowance, timeout = pickle.loads(inp.read(struct.unpack("<Q", size)[0]))
        result = _fork_case(function, args, allowance, timeout)
        data = pickle.dumps(result)
        out.write(struct.pack("<Q", len(data)) + data)
        out.flush()


def _fork_case(function: str, args, allowance: int, timeout: float) -> dict:
    errors = tempfile.TemporaryFile()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        os.dup2(errors.fileno(), 2)
        try:
            data = pickle.dumps(_child(function, args, allowance))
        except BaseException as e:  # noqa: BLE001 - reported, whatever it is
            data = pickle.dumps({"outcome": "harness", "class": type(e).__name__, "message": str(e)[:2000]})
        view = memoryview(data)
        while view:
            view = view[os.write(write_end, view):]
        os._exit(0)
    os.close(write_end)
    chunks, deadline, started = [], time.monotonic() + timeout, time.monotonic()
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return {"outcome": "timeout", "message": f"killed after {timeout:.0f} s", "seconds": timeout, "peak": 0}
            ready, _, _ = select.select([read_end], [], [], remaining)
            if ready:
                chunk = os.read(read_end, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(read_end)
    if os.WIFSIGNALED(status) or not chunks:
        errors.seek(0)
        stderr = errors.read()[-2000:].decode(errors="replace")
        how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"status {os.WEXITSTATUS(status)}"
        return {"outcome": "died", "message": f"the child died ({how}); stderr: {stderr}",
                "seconds": time.monotonic() - started, "peak": 0}
    return pickle.loads(b"".join(chunks))


def _status(field: str) -> int:
    """A VmXxx line of /proc/self/status, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _child(function: str, args, allowance: int) -> dict:
    import bertnp

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _status("VmSize") + 2 * allowance + 512 * MiB
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM, the peak resident size, to the current size
    rss = _status("VmRSS")
    start = time.perf_counter()
    try:
        globals()[function](*args)
        result = {"outcome": "ok"}
    except bertnp.BertnpError as e:
        result = {"outcome": "error", "class": type(e).__name__, "message": str(e)}
    except BaseException as e:  # noqa: BLE001 - anything else breaks the contract, and is reported
        result = {"outcome": "raw", "class": type(e).__name__, "message": str(e)[:2000],
                  "traceback": traceback.format_exc()[-3000:]}
    result["seconds"] = time.perf_counter() - start
    result["peak"] = _status("VmHWM") - rss
    return result


# ---- what a case does in the child ---------------------------------------------------------------------

TEXTS = ["the team won the game " + "a" * 40, "hello \ufdfa \u0130 \u4e2d\u6587 world"]


def use_folder(folder: str):
    """What an app does with a folder: load, tokenize, run, decode, read sentence-transformers settings."""
    import bertnp
    from bertnp.tokenizer import rust_call

    model = bertnp.load(folder, backend="numpy")
    enc = model.tokenize(TEXTS)  # a tokenizer refused at load raises its TokenizerError here
    rust_call(lambda: model.tokenizer.backend.decode(enc["input_ids"][0].tolist()), model.tokenizer.source,
              "could not decode")
    model(**enc)
    bertnp.Embedder(model)


def check_growth(spec_text: str, texts: list, tokens: list):
    """The bounds inspect_tokenizer_json computes hold in `tokenizers` itself: each text, normalized then
    pre-tokenized, and the tokens, decoded, stay within them (an AssertionError is a raw outcome)."""
    from tokenizers import Tokenizer as RustTokenizer

    from bertnp.tokenizer import inspect_tokenizer_json, rust_call

    bounds = inspect_tokenizer_json(json.loads(spec_text), "tokenizer.json")  # a refusal ends here
    backend = rust_call(lambda: RustTokenizer.from_str(spec_text), "tokenizer.json", "not a valid tokenizers file")
    a, b = bounds["text"]
    for text in texts:
        normalized = text if backend.normalizer is None else \
            rust_call(lambda: backend.normalizer.normalize_str(text), "tokenizer.json", "could not normalize")
        pieces = [(normalized, 0)] if backend.pre_tokenizer is None else \
            rust_call(lambda: backend.pre_tokenizer.pre_tokenize_str(normalized), "tokenizer.json", "could not split")
        out = sum(len(piece.encode()) for piece, _ in pieces)
        assert out <= a * len(text.encode()) + b, f"{text!r}: {out} bytes out, bound {a} * {len(text.encode())} + {b}"
    a, b = bounds["decoder"]
    if backend.decoder is not None and tokens:
        out = len(rust_call(lambda: backend.decoder.decode(tokens), "tokenizer.json", "could not decode").encode())
        assert out <= a * sum(len(t.encode()) for t in tokens) + b * len(tokens), f"{tokens!r} decode to {out} bytes"


def use_hub(cache: str, repo_id: str):
    import bertnp

    os.environ["HF_HUB_CACHE"] = cache
    bertnp.load(repo_id, backend="numpy")


def use_checkpoint(path: str):
    from bertnp.torch_checkpoint import read_torch_checkpoint

    read_torch_checkpoint(path)


# ---- building hostile folders --------------------------------------------------------------------------


def tiny_folder(root, **replace) -> str:
    """weights/tiny's files in a new folder under root; replace maps a file name to bytes, a str (written),
    a callable(path) that makes it (a FIFO, a link), or None (left out)."""
    folder = tempfile.mkdtemp(dir=root)
    for name in TINY_FILES:
        if name not in replace:
            shutil.copy(os.path.join(TINY, name), os.path.join(folder, name))
    for name, content in replace.items():
        path = os.path.join(folder, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if content is None:
            continue
        if callable(content):
            content(path)
        else:
            with open(path, "wb") as f:
                f.write(content.encode() if isinstance(content, str) else content)
    return folder


def folder_bytes(folder: str) -> int:
    total = 0
    for base, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(base, name)
            if os.path.isfile(path):  # a regular file, after links
                total += os.path.getsize(path)
    return total


def tiny_config(**fields) -> dict:
    with open(os.path.join(TINY, "config.json")) as f:
        return {**json.load(f), **fields}


def tiny_tokenizer(**fields) -> dict:
    with open(os.path.join(TINY, "tokenizer.json")) as f:
        return {**json.load(f), **fields}


def safetensors_bytes(header: dict, data: bytes = b"", header_len: int | None = None) -> bytes:
    raw = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return struct.pack("<Q", len(raw) if header_len is None else header_len) + raw + data


class Pickle:
    """A pickle program written opcode by opcode, with memo slots handed out in order (LONG_BINPUT/GET)."""

    def __init__(self):
        self.parts, self.slots = [b"\x80\x02"], 0

    def op(self, code: bytes) -> "Pickle":
        self.parts.append(code)
        return self

    def put(self) -> int:
        self.parts.append(b"r" + struct.pack("<I", self.slots))
        self.slots += 1
        return self.slots - 1

    def get(self, slot: int) -> "Pickle":
        return self.op(b"j" + struct.pack("<I", slot))

    def text(self, s: str) -> "Pickle":
        data = s.encode("utf-8", "surrogatepass")
        return self.op(b"X" + struct.pack("<I", len(data)) + data)

    def integer(self, n: int) -> "Pickle":
        if 0 <= n < 2**31:
            return self.op(b"J" + struct.pack("<i", n))
        data = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
        return self.op(b"\x8b" + struct.pack("<I", len(data)) + data)  # LONG4

    def tuple_of(self, items) -> "Pickle":
        self.op(b"(")
        for item in items:
            self.integer(item) if isinstance(item, int) else self.text(item)
        return self.op(b"t")

    def glob(self, module: str, name: str) -> "Pickle":
        return self.op(f"c{module}\n{name}\n".encode())

    def ordered_dict(self) -> "Pickle":
        return self.glob("collections", "OrderedDict").op(b")R")

    def shared(self, kind: str, depth: int) -> "Pickle":
        """A structure of `depth` levels whose every level holds the one below twice, through the memo: a few
        bytes per level, 2**depth leaves. Leaves it on the stack."""
        self.op({"tuple": b")", "list": b"]", "dict": b"}"}[kind])
        slot = self.put()
        self.op(b"0")
        for _ in range(depth):
            if kind == "tuple":
                self.get(slot).get(slot).op(b"\x86")
            elif kind == "list":
                self.op(b"]").get(slot).op(b"a").get(slot).op(b"a")
            else:
                self.op(b"}").text("a").get(slot).op(b"s").text("b").get(slot).op(b"s")
            slot = self.put()
            self.op(b"0")  # POP; the memo keeps it
        return self.get(slot)

    def tensor(self, key: str, numel: int, shape, stride, offset: int = 0, storage: str = "FloatStorage") -> "Pickle":
        self.glob("torch._utils", "_rebuild_tensor_v2").op(b"(")
        self.op(b"(").text("storage").glob("torch", storage).text(key).text("cpu").integer(numel).op(b"t").op(b"Q")
        self.integer(offset).tuple_of(shape).tuple_of(stride).op(b"\x89").ordered_dict()
        return self.op(b"tR")

    def bytes(self) -> bytes:
        return b"".join(self.parts) + b"."


def torch_zip(pickled: bytes, storages: dict | None = None, byteorder: bytes | None = None) -> bytes:
    """A torch.save zip archive around a data.pkl."""
    path = tempfile.mktemp()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", pickled)
        if byteorder is not None:
            archive.writestr("archive/byteorder", byteorder)
        for key, data in (storages or {}).items():
            archive.writestr(f"archive/data/{key}", data)
    with open(path, "rb") as f:
        data = f.read()
    os.remove(path)
    return data


def state_dict_pickle(entries) -> bytes:
    """OrderedDict() filled by one SETITEMS from (name, emit(pickle)) pairs."""
    p = Pickle().ordered_dict().op(b"(")
    for name, emit in entries:
        p.text(name) if isinstance(name, str) else name(p)
        emit(p)
    return p.op(b"u").bytes()


def bin_folder(root, pickled: bytes, storages=None, byteorder=None) -> str:
    return tiny_folder(root, **{"model.safetensors": None,
                                "pytorch_model.bin": torch_zip(pickled, storages, byteorder)})


def charsmap(replacement: bytes, key: bytes = b"a", trie_units: int = 2048) -> str:
    """A sentencepiece charsmap (as spm_precompiled reads it) mapping `key` (1 byte) to `replacement`."""
    units = np.zeros(trie_units, "<u4")
    units[0] = 256 << 10  # the root's offset
    child = 256 ^ key[0]
    units[child] = key[0] | (1 << 8) | (1024 << 10)  # label, has-leaf, offset of the leaf
    units[child ^ 1024] = 0  # the leaf: the replacement starts at 0 in the pool
    return base64.b64encode(struct.pack("<I", units.nbytes) + units.tobytes() + replacement + b"\0").decode()


def fifo(path):
    os.mkfifo(path)


def link_to(target):
    return lambda path: os.symlink(target, path)


def directory(path):
    os.mkdir(path)


# ---- the cases -----------------------------------------------------------------------------------------
# Each: (label, builder(root) -> folder, what the error must say, or None when the folder must load and run).
# A builder may return (folder, the file the message must name).


def replace_chain(n, pattern=None, content="aa"):
    return {"type": "Sequence", "normalizers": [{"type": "Replace", "pattern": pattern or {"String": "a"},
                                                 "content": content}] * n}


def added_token(content, normalized=True, id_=300):
    return {"id": id_, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": normalized, "special": False}


def tokenizer_case(**fields):
    return lambda root: tiny_folder(root, **{"tokenizer.json": json.dumps(tiny_tokenizer(**fields))})


def config_case(text=None, **fields):
    return lambda root: tiny_folder(root, **{"config.json": text if text is not None else json.dumps(tiny_config(**fields))})


def config_with_raw_number(field: str, raw: str):
    """config.json with one field's value written as raw JSON text (numbers json.dumps cannot write)."""
    text = json.dumps(tiny_config(**{field: "@@"})).replace('"@@"', raw)
    return config_case(text)


def one_storage_many_names(root, names=100_000, storage="FloatStorage", byteorder=None):
    numel = 4096
    p = Pickle().ordered_dict()
    p.tensor("0", numel, (numel,), (1,), storage=storage)
    slot = p.put()
    p.op(b"0").op(b"(")
    for i in range(names):
        p.text(f"cls.t{i}").get(slot)
    pickled = p.op(b"u").bytes()
    return bin_folder(root, pickled, {"0": bytes(numel * 4)}, byteorder)


def exponential_pickle(where: str, kind: str = "tuple", depth: int = 120):
    def build(root):
        p = Pickle().ordered_dict()
        if where == "key":  # a dict key whose hash walks 2**depth leaves
            p.op(b"(").shared(kind, depth).op(b"N").op(b"u")
        elif where == "value":  # 'state dict entry ... is a tuple': its repr
            p.op(b"(").text("bert.x").shared(kind, depth).op(b"u")
        elif where == "rebuild":  # the refusal message of _rebuild_tensor_v2 quotes its arguments
            p.op(b"(").text("bert.x").glob("torch._utils", "_rebuild_tensor_v2").shared(kind, depth).op(b"\x85R").op(b"u")
        elif where == "ordered_dict":
            p.op(b"(").text("bert.x").glob("collections", "OrderedDict").shared(kind, depth).op(b"\x85R").op(b"u")
        elif where == "persistent_id":
            p.op(b"(").text("bert.x").shared(kind, depth).op(b"Q").op(b"u")
        elif where == "build":  # BUILD state of the state dict
            p.op(b"}").text("_metadata").shared(kind, depth).op(b"s").op(b"b")
        elif where == "top":  # data.pkl holds no dict at all
            p = Pickle().shared(kind, depth)
        pickled = p.bytes()
        if where == "bare":  # not a zip: the legacy-format check unpickles the file's head
            bare = Pickle().shared(kind, depth).bytes()
            return tiny_folder(root, **{"model.safetensors": None, "pytorch_model.bin": bare})
        return bin_folder(root, pickled)
    return build


def hub_cache_case(ref_content):
    def build(root):
        cache = tempfile.mkdtemp(dir=root)
        repo = os.path.join(cache, "models--acme--tiny")
        shutil.copytree(TINY, os.path.join(repo, "snapshots", "abc"))
        os.makedirs(os.path.join(repo, "refs"))
        ref_content(os.path.join(repo, "refs", "main"))
        return cache, "main"
    return build


def sharded(index_maker):
    def build(root):
        folder = tiny_folder(root, **{"model.safetensors": None})
        index_maker(folder)
        return folder
    return build


def index_to(target_maker):
    def make(folder):
        shutil.copy(os.path.join(TINY, "model.safetensors"), os.path.join(folder, "shard.safetensors"))
        with open(os.path.join(TINY, "model.safetensors"), "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            names = [k for k in json.loads(f.read(n)) if k != "__metadata__"]
        with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
            json.dump({"weight_map": {name: "shard.safetensors" for name in names}}, f)
        target_maker(folder)
    return make


def replace_shard(make):
    def replace(folder):
        path = os.path.join(folder, "shard.safetensors")
        os.remove(path)
        make(path)
    return replace


def modules_case(modules, pooling=None):
    def build(root):
        extra = {"modules.json": json.dumps(modules)}
        if pooling is not None:
            extra["1_Pooling/config.json"] = json.dumps(pooling)
        return tiny_folder(root, **extra)
    return build


SPECIAL = [
    ("config.json -> /dev/zero", lambda root: tiny_folder(root, **{"config.json": link_to("/dev/zero")}),
     "config.json: not a regular file"),
    ("config.json a folder", lambda root: tiny_folder(root, **{"config.json": directory}), "config.json: not a regular file"),
    ("tokenizer.json -> /dev/zero", lambda root: tiny_folder(root, **{"tokenizer.json": link_to("/dev/zero")}),
     "tokenizer.json: not a regular file"),
    ("vocab.txt -> /dev/zero", lambda root: tiny_folder(root, **{"tokenizer.json": None, "vocab.txt": link_to("/dev/zero")}),
     "vocab.txt: not a regular file"),
    ("tokenizer_config.json a FIFO", lambda root: tiny_folder(root, **{"tokenizer_config.json": fifo}),
     "tokenizer_config.json: not a regular file"),
    ("model.safetensors a FIFO", lambda root: tiny_folder(root, **{"model.safetensors": fifo}),
     "model.safetensors: not a regular file"),
    ("model.safetensors -> /dev/zero", lambda root: tiny_folder(root, **{"model.safetensors": link_to("/dev/zero")}),
     "model.safetensors: not a regular file"),
    ("pytorch_model.bin a FIFO", lambda root: tiny_folder(root, **{"model.safetensors": None, "pytorch_model.bin": fifo}),
     "pytorch_model.bin: not a regular file"),
    ("index -> /dev/zero", sharded(lambda folder: os.symlink("/dev/zero", os.path.join(folder, "model.safetensors.index.json"))),
     "index.json: not a regular file"),
    ("shard a FIFO", sharded(index_to(replace_shard(os.mkfifo))), "shard.safetensors: not a regular file"),
    ("shard -> /dev/urandom", sharded(index_to(replace_shard(lambda path: os.symlink("/dev/urandom", path)))),
     "shard.safetensors: not a regular file"),
    ("modules.json a FIFO", lambda root: tiny_folder(root, **{"modules.json": fifo}), "modules.json: not a regular file"),
]


def _pooling_to_dev_zero(root):
    folder = modules_case([{"type": "sentence_transformers.models.Pooling", "path": "1_Pooling"}])(root)
    os.makedirs(os.path.join(folder, "1_Pooling"), exist_ok=True)
    os.symlink("/dev/zero", os.path.join(folder, "1_Pooling", "config.json"))
    return folder


def _linked_like_the_hub_cache(root):
    """Every file a symlink to a blob elsewhere, as huggingface_hub lays out its cache: must load."""
    blobs, folder = tempfile.mkdtemp(dir=root), tempfile.mkdtemp(dir=root)
    for i, name in enumerate(TINY_FILES):
        shutil.copy(os.path.join(TINY, name), os.path.join(blobs, f"blob{i}"))
        os.symlink(os.path.join(blobs, f"blob{i}"), os.path.join(folder, name))
    return folder


SPECIAL += [("pooling config -> /dev/zero", _pooling_to_dev_zero, "config.json: not a regular file"),
            ("files linked as in the Hugging Face cache", _linked_like_the_hub_cache, None)]

PICKLES = [
    *[(f"exponential {kind} as a state dict key", exponential_pickle("key", kind), msg)
      for kind, msg in (("tuple", "refused a dict key that is a tuple"), ("list", "unhashable|not a readable pickle"),
                        ("dict", "unhashable|not a readable pickle"))],
    *[(f"exponential {kind} in {where}", exponential_pickle(where, kind), "pytorch_model.bin")
      for where in ("value", "rebuild", "ordered_dict", "persistent_id", "top", "bare")
      for kind in ("tuple", "list", "dict")],
    *[(f"exponential {kind} as the _metadata BUILD sets", exponential_pickle("build", kind), "missing tensor|architectures names")
      for kind in ("tuple", "list", "dict")],
    ("a set of shared tuples", lambda root: bin_folder(root, Pickle().op(b"\x8f").shared("tuple", 100).op(b"\x90").bytes()),
     "refused pickle opcode EMPTY_SET"),
    ("a million empty lists", lambda root: bin_folder(root, Pickle().op(b"(" + b"]" * 1_000_000 + b"l").bytes()),
     "objects would take more than 16 times"),
    ("a memo index of 2**31", lambda root: bin_folder(root, Pickle().op(b"N").op(b"r" + struct.pack("<I", 2**31)).bytes()),
     "refused memo index"),
    ("nested 100k tuples deep", lambda root: bin_folder(root, Pickle().op(b")" + b"\x85" * 100_000).bytes()),
     "objects would take more than 16 times"),
    ("a 4 MB integer as an offset",
     lambda root: bin_folder(root, state_dict_pickle([("bert.x", lambda p: p.tensor("0", 4, (4,), (1,),
                                                                                    offset=2**(8 * 4_000_000)))]),
                             {"0": bytes(16)}),
     "refused torch._utils._rebuild_tensor_v2 called with"),
    ("a 100k-digit LONG", lambda root: bin_folder(root, Pickle().op(b"L" + b"9" * 100_000 + b"L\n").bytes()),
     "not a readable pickle"),
    ("one storage under 100k names", one_storage_many_names, "view more than 2 times the file"),
    ("one big-endian storage under 100k names", lambda root: one_storage_many_names(root, byteorder=b"big"),
     "view more than 2 times the file"),
    ("one bfloat16 storage under 100k names", lambda root: one_storage_many_names(root, storage="BFloat16Storage"),
     "view more than 2 times the file"),
    ("a tensor of 65 dimensions",
     lambda root: bin_folder(root, state_dict_pickle([("bert.x", lambda p: p.tensor("0", 1, (1,) * 65, (1,) * 65))]),
                             {"0": bytes(4)}),
     "65 dimensions"),
    ("a zero next to 2**62 in a shape",
     lambda root: bin_folder(root, state_dict_pickle([("bert.x", lambda p: p.tensor("0", 1, (0, 2**62, 2**62), (1, 1, 1)))]),
                             {"0": bytes(4)}),
     "impossible shape"),
]

TINY_ENTRY = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
SAFETENSORS = [
    ("a zero next to 2**64 in a shape",
     lambda root: tiny_folder(root, **{"model.safetensors": safetensors_bytes({"x": {"dtype": "F32", "shape": [0, 2**64],
                                                                                     "data_offsets": [0, 0]}})}),
     "has shape \\[0, 18446744073709551616\\]"),
    ("a zero next to 2**61 twice", lambda root: tiny_folder(root, **{"model.safetensors": safetensors_bytes(
        {"x": {"dtype": "F64", "shape": [0, 2**61, 2**61], "data_offsets": [0, 0]}})}), "too large for NumPy"),
    ("65 dimensions", lambda root: tiny_folder(root, **{"model.safetensors": safetensors_bytes(
        {"x": {"dtype": "F32", "shape": [1] * 65, "data_offsets": [0, 4]}}, bytes(4))}), "expected at most 32 integers"),
    ("offsets of 10**30", lambda root: tiny_folder(root, **{"model.safetensors": safetensors_bytes(
        {"x": {"dtype": "F32", "shape": [2], "data_offsets": [10**30, 10**30 + 8]}}, bytes(8))}), "claims bytes"),
    ("a 5000-digit offset", lambda root: tiny_folder(root, **{"model.safetensors": safetensors_bytes(
        b'{"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, ' + b"9" * 5000 + b"]}}", bytes(8))}),
     "an integer of 5000 digits"),
    ("a header length of 2**63", lambda root: tiny_folder(root, **{"model.safetensors": safetensors_bytes({}, header_len=2**63)}),
     "header claims"),
    ("a header nested 100k deep", lambda root: tiny_folder(root, **{"model.safetensors": safetensors_bytes(
        b"[" * 100_000 + b"]" * 100_000)}), "not valid JSON"),
    ("100k empty tensors", lambda root: tiny_folder(root, **{"model.safetensors": safetensors_bytes(
        {f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(100_000)})}),
     None),
    ("a tensor name of a megabyte", lambda root: tiny_folder(root, **{"model.safetensors": safetensors_bytes(
        {"n" * MiB: {"dtype": "F32", "shape": [2], "data_offsets": [0, 9]}}, bytes(8))}), "claims bytes"),
    ("dtype and shape of the wrong JSON types", lambda root: tiny_folder(root, **{"model.safetensors": safetensors_bytes(
        {"x": {"dtype": ["F32"], "shape": {"a": 1}, "data_offsets": "0"}})}), "malformed header entry"),
    ("a header of 20 MiB", lambda root: tiny_folder(root, **{"model.safetensors": safetensors_bytes(
        b'{"__metadata__": {"a": "' + b"x" * (20 * MiB) + b'"}}')}), "more than the 16 MiB"),
]

CONFIGS = [
    ("num_hidden_layers of 10**9", config_case(num_hidden_layers=10**9),
     "missing tensor\\(s\\) encoder.layer.2.attention.self.query.weight: config.json asks for num_hidden_layers=1000000000"),
    ("num_labels of 10**9", config_case(num_labels=10**9, id2label=None, label2id=None), "field 'num_labels' must be"),
    ("vocab_size of 10**9", config_case(vocab_size=10**9), "word_embeddings.weight' has shape"),
    ("intermediate_size of 2**40", config_case(intermediate_size=2**40), "must be an integer from 1 to 2147483647"),
    ("max_position_embeddings of 10**9", config_case(max_position_embeddings=10**9), "position_embeddings.weight' has shape"),
    ("layer_norm_eps of 10**400 as an integer", config_with_raw_number("layer_norm_eps", "1" + "0" * 400),
     "an integer of 401 digits"),
    ("layer_norm_eps of 1e400", config_with_raw_number("layer_norm_eps", "1e400"), "layer_norm_eps' must be a positive finite"),
    ("layer_norm_eps NaN", config_with_raw_number("layer_norm_eps", "NaN"), "layer_norm_eps' must be a positive finite"),
    ("hidden_size of 5000 digits", config_with_raw_number("hidden_size", "7" * 5000), "an integer of 5000 digits"),
    ("architectures holding lists", config_case(architectures=[["BertModel"]]), "field 'architectures' must be a list"),
    ("architectures a string", config_case(architectures="BertModel"), "field 'architectures' must be a list"),
    ("id2label of 100k labels", config_case(id2label={str(i): f"L{i}" for i in range(100_000)}, label2id=None),
     "has 100000 labels"),
    ("id2label keys of 5000 digits", config_case(id2label={"1" * 5000: "a"}, label2id=None), "field 'id2label' ids must be"),
    ("id2label values nested 500 deep", config_case(id2label={"0": json.loads("[" * 500 + "]" * 500)}, label2id=None),
     "label 0 must be a string"),
    ("label2id values of the wrong type", config_case(label2id={"World": [0], "Sports": 1, "Business": 2}),
     "field 'label2id' maps"),
    ("hidden_act a list", config_case(hidden_act=["gelu"]), "field 'hidden_act'"),
    ("num_attention_heads true", config_case(num_attention_heads=True), "field 'num_attention_heads'"),
    ("hidden_size 32.0", config_case(hidden_size=32.0), "field 'hidden_size'"),
    ("tie_word_embeddings a string", config_case(tie_word_embeddings="no"), "field 'tie_word_embeddings'"),
    ("config nested 100k deep", config_case("[" * 100_000 + "]" * 100_000), "config.json: not valid JSON"),
    ("config of 5 MiB", config_case('{"a": "' + "x" * (5 * MiB) + '"}'), "more than the 4 MiB"),
    ("config not UTF-8", lambda root: tiny_folder(root, **{"config.json": b'{"a": "\xff"}'}), "config.json: not UTF-8"),
]

TOKENIZERS = [
    ("Replace a -> aa forty times", tokenizer_case(normalizer=replace_chain(40)), "can grow 128 times"),
    ("Replace a -> aa forty times, a normalized added token",
     tokenizer_case(normalizer=replace_chain(40), added_tokens=[added_token("a")]), "can grow 128 times"),
    ("Replace '' -> xyz, a chain", tokenizer_case(normalizer=replace_chain(5, {"String": ""}, "xyz")), "an expanding chain"),
    ("Replace (?=) -> ab, a chain", tokenizer_case(normalizer=replace_chain(5, {"Regex": "(?=)"}, "ab")), "an expanding chain"),
    ("Prepend of 10 KB", tokenizer_case(normalizer={"type": "Prepend", "prepend": "x" * 10_000}), "plus 10000 bytes"),
    ("Precompiled a -> 100 KB", tokenizer_case(normalizer={"type": "Precompiled",
                                                           "precompiled_charsmap": charsmap(b"x" * 100_000)}),
     "Precompiled: with the steps before it, a text can grow 1e\\+05 times"),
    ("Precompiled with a trie longer than the charsmap", tokenizer_case(normalizer={
        "type": "Precompiled", "precompiled_charsmap": base64.b64encode(struct.pack("<I", 10**6) + bytes(8)).decode()}),
     "'precompiled_charsmap' is malformed"),
    ("NFKC twice then Lowercase and BertNormalizer", tokenizer_case(normalizer={"type": "Sequence", "normalizers": [
        {"type": "NFKC"}, {"type": "NFKC"}, {"type": "Lowercase"}, {"type": "BertNormalizer"}]}), "an expanding chain"),
    ("decoders Replace a -> aa forty times", tokenizer_case(decoder={"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "a"}, "content": "aa"}] * 40}), "decoder.decoders\\[6\\]"),
    ("BPEDecoder with an empty suffix, twenty times", tokenizer_case(decoder={"type": "Sequence", "decoders": [
        {"type": "BPEDecoder", "suffix": ""}] * 20}), "BPEDecoder with an empty suffix"),
    ("CTC with an empty delimiter, twenty times", tokenizer_case(decoder={"type": "Sequence", "decoders": [
        {"type": "CTC", "pad_token": "<pad>", "word_delimiter_token": "", "cleanup": True}] * 20}), "CTC with an empty"),
    ("TemplateProcessing $A a thousand times", tokenizer_case(post_processor={
        "type": "TemplateProcessing", "single": [{"Sequence": {"id": "A", "type_id": 0}}] * 1000,
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}], "special_tokens": {}}),
     "repeats sequence \\$A"),
    ("a special token of 100k ids", tokenizer_case(post_processor={
        "type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                                                 {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [101] * 100_000, "tokens": ["[CLS]"] * 100_000}}}),
     "adds 100000 special ids"),
    ("FixedLength 0", tokenizer_case(pre_tokenizer={"type": "FixedLength", "length": 0}), "'length' must be an integer from 1"),
    ("max_input_chars_per_word of 10**9", lambda root: tiny_folder(root, **{"tokenizer.json": json.dumps(tiny_tokenizer(
        model={**tiny_tokenizer()["model"], "max_input_chars_per_word": 10**9}))}), "max_input_chars_per_word"),
    ("a vocabulary id of 2**31", lambda root: tiny_folder(root, **{"tokenizer.json": json.dumps(tiny_tokenizer(
        model={**tiny_tokenizer()["model"], "vocab": {**tiny_tokenizer()["model"]["vocab"], "zzz": 2**31}}))}),
     "token 'zzz' has id 2147483648"),
    ("an added token id of 2**32 + 5", tokenizer_case(added_tokens=[added_token("zz", False, 2**32 + 5)]), "'id' must be"),
    ("padding to 10**12", tokenizer_case(padding={"strategy": {"Fixed": 10**12}, "direction": "Right",
                                                  "pad_to_multiple_of": None, "pad_id": 0, "pad_type_id": 0,
                                                  "pad_token": "[PAD]"}), "strategy.Fixed"),
    ("an unknown normalizer", tokenizer_case(normalizer={"type": "Explode"}), "type 'Explode' is not one bertnp can check"),
    ("a normalizer without a type", tokenizer_case(normalizer={"normalizers": []}), "type None is not one"),
    ("a Metaspace replacement of two characters", tokenizer_case(pre_tokenizer={"type": "Metaspace", "replacement": "ab",
                                                                                "prepend_scheme": "always", "split": True}),
     None),  # Rust refuses a replacement that is not one char; either way a TokenizerError
    ("a Strip decoder with stop 2**40", tokenizer_case(decoder={"type": "Strip", "content": " ", "start": 0, "stop": 2**40}),
     "'stop' must be an integer"),
    ("sequences nested 200 deep", tokenizer_case(normalizer=json.loads(
        '{"type": "Sequence", "normalizers": [' * 200 + "]}" * 200)), "more than 64 steps"),
    ("tokenizer.json of 40 MiB", lambda root: tiny_folder(root, **{"tokenizer.json": '{"a": "' + "x" * (40 * MiB) + '"}'}),
     "more than the 32 MiB"),
    ("model_max_length negative", lambda root: tiny_folder(root, **{"tokenizer_config.json": json.dumps(
        {"model_max_length": -5})}), "'model_max_length' must be a positive number"),
    ("model_max_length a string", lambda root: tiny_folder(root, **{"tokenizer_config.json": json.dumps(
        {"model_max_length": "512"})}), "'model_max_length' must be a positive number"),
    ("do_lower_case a string (vocab.txt)", lambda root: tiny_folder(root, **{
        "tokenizer.json": None, "tokenizer_config.json": json.dumps({"do_lower_case": "false"})}), "'do_lower_case' must be"),
]

OTHERS = [
    ("modules.json entries of the wrong types", modules_case([7, "x"]), "modules.json: module 0 must be an object"),
    ("a Pooling path out of the folder", modules_case([{"type": "sentence_transformers.models.Pooling",
                                                        "path": "../../.."}]), "must name a folder inside"),
    ("pooling_mode an integer", modules_case([{"type": "sentence_transformers.models.Pooling", "path": "1_Pooling"}],
                                             {"pooling_mode": 7}), "pooling_mode must be a string"),
    ("max_seq_length of 10**30",
     lambda root: tiny_folder(root, **{"modules.json": "[]",
                                       "sentence_bert_config.json": json.dumps({"max_seq_length": 10**30})}),
     "max_seq_length"),
    ("index weight_map a list", sharded(lambda folder: open(os.path.join(folder, "model.safetensors.index.json"), "w").write(
        json.dumps({"weight_map": [1, 2]}))), "'weight_map' must be an object"),
    ("index naming ../config.json", sharded(lambda folder: open(os.path.join(folder, "model.safetensors.index.json"), "w").write(
        json.dumps({"weight_map": {"a": "../config.json"}}))), "must name files inside"),
]

HUB = [
    ("refs/main -> /dev/zero", hub_cache_case(lambda path: os.symlink("/dev/zero", path)), "main: not a regular file"),
    ("refs/main naming ../../..", hub_cache_case(lambda path: open(path, "w").write("../../..")), "expected a revision"),
]


# A tokenizer whose ids reach past config.json's vocab_size loads (bertnp info warns about it); the forward
# pass then refuses its ids with this InputError, which names the limit rather than a file.
PAST_VOCAB = r"^input_ids holds \d+, outside 0\.\.\d+ \(limit vocab_size\)$"


def _check(result: dict, expected: str | None, names: str):
    detail = f"{result['outcome']}: {result.get('class', '')} {result.get('message', '')[:600]}\n{result.get('traceback', '')}"
    assert result["outcome"] in ("ok", "error"), detail
    assert result["seconds"] < CASE_TIMEOUT, detail
    assert result["peak"] <= budget(result["case_bytes"]), \
        f"peak memory {result['peak'] / MiB:.0f} MiB over {budget(result['case_bytes']) / MiB:.0f} MiB; {detail}"
    if result["outcome"] == "error":
        message = result["message"]
        assert len(message) <= MAX_MESSAGE, f"a message of {len(message)} characters: {message[:300]}..."
        assert names in message or re.match(PAST_VOCAB, message), f"the error does not name {names}: {message}"
    if expected is not None:
        assert result["outcome"] == "error" and re.search(expected, result["message"]), detail


@pytest.fixture(scope="module")
def sandbox(request):
    box = Sandbox()
    yield box
    box.close()
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("\n" + box.summary())


def _run(sandbox, tmp_path, label, build, expected):
    made = build(str(tmp_path))
    folder, names = made if isinstance(made, tuple) else (made, None)
    if names is None:
        names = folder
    result = sandbox.run(label, "use_folder", folder, case_bytes=folder_bytes(folder))
    _check(result, expected, names)
    return result


@pytest.mark.parametrize("label,build,expected", SPECIAL, ids=[c[0] for c in SPECIAL])
def test_special_files(sandbox, tmp_path, label, build, expected):
    _run(sandbox, tmp_path, label, build, expected)


@pytest.mark.parametrize("label,build,expected", PICKLES, ids=[c[0] for c in PICKLES])
def test_pickles(sandbox, tmp_path, label, build, expected):
    _run(sandbox, tmp_path, label, build, expected)


@pytest.mark.parametrize("label,build,expected", SAFETENSORS, ids=[c[0] for c in SAFETENSORS])
def test_safetensors_headers(sandbox, tmp_path, label, build, expected):
    _run(sandbox, tmp_path, label, build, expected)


@pytest.mark.parametrize("label,build,expected", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_configs(sandbox, tmp_path, label, build, expected):
    _run(sandbox, tmp_path, label, build, expected)


@pytest.mark.parametrize("label,build,expected", TOKENIZERS, ids=[c[0] for c in TOKENIZERS])
def test_tokenizers(sandbox, tmp_path, label, build, expected):
    result = _run(sandbox, tmp_path, label, build, expected)
    assert result["outcome"] == "error" and result["class"] == "TokenizerError", result


@pytest.mark.parametrize("label,build,expected", OTHERS, ids=[c[0] for c in OTHERS])
def test_settings_and_indexes(sandbox, tmp_path, label, build, expected):
    _run(sandbox, tmp_path, label, build, expected)


@pytest.mark.parametrize("label,build,expected", HUB, ids=[c[0] for c in HUB])
def test_hub_cache(sandbox, tmp_path, label, build, expected):
    cache, names = build(str(tmp_path))
    _check(sandbox.run(label, "use_hub", cache, "acme/tiny", case_bytes=folder_bytes(cache)), expected, names)


def test_the_sandbox_catches_what_it_must(sandbox, tmp_path):
    """The harness itself: a hang is killed at the timeout, an abort and a raw error are reported, and the
    address-space limit turns a runaway allocation into an outcome rather than a dead machine."""
    assert sandbox.run("sandbox: a hang", "_hang", timeout=2)["outcome"] == "timeout"
    assert sandbox.run("sandbox: an abort", "_abort")["outcome"] == "died"
    assert sandbox.run("sandbox: a raw error", "_raw")["outcome"] == "raw"
    assert sandbox.run("sandbox: 64 GB", "_allocate")["outcome"] == "raw"  # MemoryError, under RLIMIT_AS


def _hang():
    while True:
        pass


def _abort():
    os.abort()


def _raw():
    raise OverflowError("raw")


def _allocate():
    np.ones(2**33)  # 64 GB, touched

