"""Hostile model folders from structure-aware hypothesis strategies: pickle programs, safetensors headers,
configs, tokenizer pipelines, and folders that combine them. Each example is loaded and used in the
sandbox of test_hostile.py (a forked child with an address-space limit and a timeout), and must end in a
result or a bertnp error naming the folder, in time, within its memory budget, with a bounded message.

BERTNP_HOSTILE_EXAMPLES sets the examples per strategy (default 30; the report in the issue used 2000).
"""

from __future__ import annotations

import json
import os
import struct
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_hostile import (TINY, Pickle, _check, charsmap, folder_bytes, pytestmark, safetensors_bytes,  # noqa: F401
                          sandbox, tiny_config, tiny_folder, tiny_tokenizer, torch_zip)

EXAMPLES = int(os.environ.get("BERTNP_HOSTILE_EXAMPLES", "30"))
HOSTILE = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])

BIG = [0, 1, 2, 3, 2**31 - 1, 2**31, 2**32 + 5, 2**62, 2**63, 2**64, 10**30]
JUNK = st.one_of(st.none(), st.booleans(), st.sampled_from(BIG + [-1, -(2**63)]), st.floats(allow_nan=True),
                 st.text(max_size=6), st.lists(st.integers(0, 3), max_size=3),
                 st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))


def run_folder(sandbox, label, files: dict):
    """Write weights/tiny with `files` replaced into a fresh folder and check it in the sandbox."""
    with tempfile.TemporaryDirectory() as root:
        folder = tiny_folder(root, **files)
        result = sandbox.run(label, "use_folder", folder, case_bytes=folder_bytes(folder))
        _check(result, None, folder)


# ---- pickle programs -----------------------------------------------------------------------------------

STORAGES = ["FloatStorage", "HalfStorage", "BFloat16Storage", "DoubleStorage", "LongStorage", "BoolStorage"]
DIMS = st.one_of(st.integers(0, 5), st.sampled_from(BIG))


@st.composite
def pickle_values(draw, p: Pickle, depth: int = 0):
    """Emit one value of a state dict onto p: tensors (sane or not), shared structures, atoms, globals."""
    kind = draw(st.sampled_from(["tensor", "tensor", "shared", "atom", "global", "parameter", "container"]
                                if depth < 2 else ["tensor", "atom", "shared"]))
    if kind == "tensor":
        ndim = draw(st.integers(0, 4)) if draw(st.integers(0, 9)) else draw(st.integers(30, 70))
        shape = draw(st.lists(DIMS, min_size=ndim, max_size=ndim))
        stride = draw(st.lists(DIMS, min_size=ndim, max_size=ndim))
        p.tensor(draw(st.sampled_from(["0", "1", "missing"])), draw(st.one_of(st.integers(0, 64), st.sampled_from(BIG))),
                 shape, stride, offset=draw(st.one_of(st.integers(0, 8), st.sampled_from(BIG))),
                 storage=draw(st.sampled_from(STORAGES)))
    elif kind == "shared":
        p.shared(draw(st.sampled_from(["tuple", "list", "dict"])), draw(st.integers(1, 200)))
    elif kind == "atom":
        atom = draw(st.one_of(st.integers(-(2**70), 2**70), st.text(max_size=30), st.just(2**(8 * 200_000))))
        p.integer(atom) if isinstance(atom, int) else p.text(atom)
    elif kind == "global":
        p.glob(*draw(st.sampled_from([("collections", "OrderedDict"), ("torch", "FloatStorage"), ("posix", "system"),
                                      ("builtins", "eval"), ("torch._utils", "_rebuild_parameter")])))
    elif kind == "parameter":
        p.glob("torch._utils", "_rebuild_parameter").op(b"(")
        draw(pickle_values(p, depth + 1))
        p.op(b"\x88" if draw(st.booleans()) else b"\x89").ordered_dict().op(b"tR")
    else:  # a tuple of values, built by MARK ... TUPLE
        p.op(b"(")
        for _ in range(draw(st.integers(0, 3))):
            draw(pickle_values(p, depth + 1))
        p.op(b"t")


@st.composite
def torch_checkpoints(draw) -> bytes:
    p = Pickle().ordered_dict().op(b"(")
    for i in range(draw(st.integers(0, 4))):
        key = draw(st.sampled_from(["name", "name", "shared tuple", "integer", "long name"]))
        if key == "name":
            p.text(draw(st.sampled_from(["bert.embeddings.word_embeddings.weight", "cls.x", f"t{i}"])))
        elif key == "shared tuple":
            p.shared("tuple", draw(st.integers(1, 150)))
        elif key == "integer":
            p.integer(draw(st.sampled_from(BIG)))
        else:
            p.text("n" * 100_000)
        draw(pickle_values(p))
    if draw(st.booleans()):  # one tensor, memoized, under many names
        p.tensor("0", 64, (64,), (1,))
        slot = p.put()
        p.op(b"0")
        for i in range(draw(st.integers(1, 30_000))):
            p.text(f"cls.m{i}").get(slot)
    p.op(b"u")
    if draw(st.booleans()):  # BUILD with a _metadata state, maybe hostile
        p.op(b"}").text(draw(st.sampled_from(["_metadata", "other"])))
        draw(pickle_values(p))
        p.op(b"sb")
    storages = {key: bytes(draw(st.integers(0, 4096))) for key in draw(st.lists(st.sampled_from(["0", "1"]), unique=True))}
    byteorder = draw(st.sampled_from([None, b"little", b"big", b"middle"]))
    return torch_zip(p.bytes(), storages, byteorder)


@HOSTILE
@given(checkpoint=torch_checkpoints())
def test_pickle_programs(sandbox, checkpoint):
    run_folder(sandbox, "hypothesis: pickle program", {"model.safetensors": None, "pytorch_model.bin": checkpoint})


# ---- safetensors headers -------------------------------------------------------------------------------


def tiny_header():
    with open(os.path.join(TINY, "model.safetensors"), "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n)), f.read()


@st.composite
def safetensors_files(draw) -> bytes:
    header, body = tiny_header() if draw(st.booleans()) else ({}, b"")
    body = body if draw(st.booleans()) else bytes(draw(st.integers(0, 4096)))
    names = sorted(k for k in header if k != "__metadata__")
    for _ in range(draw(st.integers(1, 6))):
        name = draw(st.one_of(st.sampled_from(names or ["x"]), st.text(max_size=12), st.just("n" * 200_000)))
        entry = header.get(name)
        entry = dict(entry) if isinstance(entry, dict) else {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
        field = draw(st.sampled_from(["dtype", "shape", "data_offsets", "entry", "drop"]))
        if field == "dtype":
            entry["dtype"] = draw(st.one_of(st.sampled_from(["F32", "F16", "BF16", "F64", "I64", "U8", "F8_E4M3"]), JUNK))
        elif field == "shape":
            entry["shape"] = draw(st.one_of(st.lists(DIMS, max_size=5), st.lists(st.just(1), min_size=30, max_size=70), JUNK))
        elif field == "data_offsets":
            entry["data_offsets"] = draw(st.one_of(st.lists(st.one_of(st.integers(0, 4096), st.sampled_from(BIG + [-1])),
                                                            max_size=3), JUNK))
        elif field == "entry":
            entry = draw(JUNK)
        if field == "drop":
            header.pop(name, None)
        else:
            header[name] = entry
    if draw(st.booleans()):
        header["__metadata__"] = draw(st.one_of(st.dictionaries(st.text(max_size=4), st.text(max_size=8), max_size=3), JUNK))
    header_len = draw(st.one_of(st.none(), st.none(), st.sampled_from([n for n in BIG if n < 2**64])))
    return safetensors_bytes(header, body, header_len)


@HOSTILE
@given(weights=safetensors_files())
def test_safetensors_headers(sandbox, weights):
    run_folder(sandbox, "hypothesis: safetensors header", {"model.safetensors": weights})


# ---- configs -------------------------------------------------------------------------------------------

RAW_NUMBERS = ["1" + "0" * 400, "7" * 5000, "1e400", "-1e400", "NaN", "Infinity", "-0", "1e-400", "2147483648"]
CONFIG_FIELDS = ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
                 "layer_norm_eps", "max_position_embeddings", "type_vocab_size", "position_embedding_type", "pad_token_id",
                 "id2label", "label2id", "num_labels", "problem_type", "architectures", "tie_word_embeddings",
                 "is_decoder", "add_cross_attention"]
CONFIG_VALUES = st.one_of(JUNK, st.sampled_from([10**9, 2**40, "gelu", ["BertModel"], [["BertModel"]], "relative_key"]),
                          st.builds(lambda n: {str(i): f"L{i}" for i in range(n)}, st.sampled_from([1, 3, 70_000])),
                          st.builds(lambda d: json.loads("[" * d + "]" * d), st.integers(1, 900)),
                          st.sampled_from([f"@@{i}" for i in range(len(RAW_NUMBERS))]))


@st.composite
def config_files(draw) -> str:
    config = tiny_config()
    for name in draw(st.lists(st.sampled_from(CONFIG_FIELDS), min_size=1, max_size=4, unique=True)):
        if draw(st.integers(0, 5)) == 0:
            config.pop(name, None)
        else:
            config[name] = draw(CONFIG_VALUES)
    text = json.dumps(config)
    for i, raw in enumerate(RAW_NUMBERS):  # numbers json.dumps cannot write
        text = text.replace(f'"@@{i}"', raw)
    return text


@HOSTILE
@given(config=config_files())
def test_configs(sandbox, config):
    run_folder(sandbox, "hypothesis: config", {"config.json": config})


# ---- tokenizer pipelines -------------------------------------------------------------------------------

PATTERNS = st.one_of(st.builds(lambda s: {"String": s}, st.sampled_from(["", "a", "aa", " ", "\u2581", "\ufdfa"])),
                     st.builds(lambda s: {"Regex": s}, st.sampled_from(["", "a", "a*", "(?=)", " {2,}", r"\s+", "[[:alpha:]]*",
                                                                         r"\p{L}", "(a|aa)*b", "x|"])))
CONTENT = st.text(alphabet="ab \u2581\u4e2d", max_size=6)
FIELDS = ["type", "pattern", "content", "prepend", "normalizers", "pretokenizers", "decoders", "replacement",
          "prepend_scheme", "length", "suffix", "word_delimiter_token", "start", "stop", "precompiled_charsmap",
          "handle_chinese_chars", "lowercase", "add_prefix_space"]


def malformed(types):
    """A step of a known (or junk) type with one field of a wrong JSON type, or junk instead of a step."""
    return st.one_of(JUNK, st.builds(lambda t, field, junk: {"type": t, field: junk},
                                     st.one_of(st.sampled_from(types), JUNK), st.sampled_from(FIELDS), JUNK))


def normalizers():
    leaf = st.one_of(
        st.builds(lambda p, c: {"type": "Replace", "pattern": p, "content": c}, PATTERNS, CONTENT),
        st.builds(lambda c: {"type": "Prepend", "prepend": c}, st.one_of(CONTENT, st.just("x" * 2000))),
        st.sampled_from([{"type": t} for t in ("NFC", "NFD", "NFKC", "NFKD", "Lowercase", "StripAccents", "Nmt", "ByteLevel")]),
        st.builds(lambda lower, cjk: {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": cjk,
                                      "strip_accents": None, "lowercase": lower}, st.booleans(), st.booleans()),
        st.builds(lambda n: {"type": "Precompiled", "precompiled_charsmap": charsmap(b"x" * n)}, st.integers(1, 200)),
        st.builds(lambda t: {"type": t}, st.sampled_from(["Explode", None])),
        malformed(["Replace", "Prepend", "Precompiled", "BertNormalizer", "Sequence", "NFKC"]),
    )
    return st.recursive(leaf, lambda inner: st.builds(lambda items: {"type": "Sequence", "normalizers": items},
                                                      st.lists(inner, max_size=12)), max_leaves=30)


def pre_tokenizers():
    leaf = st.one_of(
        st.sampled_from([{"type": t} for t in ("Whitespace", "WhitespaceSplit", "BertPreTokenizer", "Punctuation",
                                               "UnicodeScripts")]),
        st.builds(lambda r, s: {"type": "Metaspace", "replacement": r, "prepend_scheme": s, "split": True},
                  st.sampled_from(["\u2581", "a", "ab", ""]), st.sampled_from(["always", "first", "never"])),
        st.builds(lambda a: {"type": "ByteLevel", "add_prefix_space": a, "trim_offsets": True, "use_regex": True}, st.booleans()),
        st.builds(lambda n: {"type": "FixedLength", "length": n}, st.sampled_from([0, 1, 3, 2**40])),
        st.builds(lambda p: {"type": "Split", "pattern": p, "behavior": "Isolated", "invert": False}, PATTERNS),
        malformed(["Metaspace", "ByteLevel", "FixedLength", "Split", "Sequence"]),
    )
    return st.recursive(leaf, lambda inner: st.builds(lambda items: {"type": "Sequence", "pretokenizers": items},
                                                      st.lists(inner, max_size=6)), max_leaves=12)


def decoders():
    leaf = st.one_of(
        st.builds(lambda p, c: {"type": "Replace", "pattern": p, "content": c}, PATTERNS, CONTENT),
        st.builds(lambda s: {"type": "BPEDecoder", "suffix": s}, st.sampled_from(["", "</w>"])),
        st.builds(lambda d: {"type": "CTC", "pad_token": "<pad>", "word_delimiter_token": d, "cleanup": True},
                  st.sampled_from(["", "|"])),
        st.builds(lambda n: {"type": "Strip", "content": " ", "start": n, "stop": n}, st.sampled_from([0, 3, 2**40])),
        st.sampled_from([{"type": "WordPiece", "prefix": "##", "cleanup": True}, {"type": "Fuse"}, {"type": "ByteFallback"},
                         {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}]),
        malformed(["Replace", "BPEDecoder", "CTC", "Strip", "Sequence"]),
    )
    return st.recursive(leaf, lambda inner: st.builds(lambda items: {"type": "Sequence", "decoders": items},
                                                      st.lists(inner, max_size=12)), max_leaves=30)


@st.composite
def post_processors(draw):
    pieces = {"A": {"Sequence": {"id": "A", "type_id": 0}}, "B": {"Sequence": {"id": "B", "type_id": 1}},
              "CLS": {"SpecialToken": {"id": "[CLS]", "type_id": 0}}, "SEP": {"SpecialToken": {"id": "[SEP]", "type_id": 0}}}
    pieces["junk"] = draw(st.one_of(JUNK, st.builds(lambda k, v: {k: v}, st.sampled_from(["Sequence", "SpecialToken"]),
                                                    st.one_of(JUNK, st.builds(lambda i: {"id": i, "type_id": 0}, JUNK)))))
    single = [pieces[k] for k in draw(st.lists(st.sampled_from(["A", "CLS", "SEP", "junk"]), min_size=1, max_size=6))]
    pair = [pieces[k] for k in draw(st.lists(st.sampled_from(["A", "B", "CLS", "SEP"]), min_size=2, max_size=8))]
    ids = draw(st.sampled_from([1, 2, 300, 100_000]))
    template = {"type": "TemplateProcessing", "single": single, "pair": pair,
                "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [101] * ids, "tokens": ["[CLS]"] * ids},
                                   "[SEP]": {"id": "[SEP]", "ids": [102], "tokens": ["[SEP]"]}}}
    if draw(st.integers(0, 5)) == 0:
        template[draw(st.sampled_from(["single", "pair", "special_tokens", "type"]))] = draw(JUNK)
    return {"type": "Sequence", "processors": [template] * draw(st.integers(1, 3))} if draw(st.booleans()) else template


@st.composite
def tokenizer_files(draw) -> str:
    spec = tiny_tokenizer()
    for field, strategy in (("normalizer", normalizers()), ("pre_tokenizer", pre_tokenizers()), ("decoder", decoders()),
                            ("post_processor", post_processors())):
        if draw(st.booleans()):
            spec[field] = draw(st.one_of(st.none(), strategy))
    if draw(st.booleans()):
        content = draw(st.sampled_from(["a", "ab", "\ufdfa", "zz" * 1000]))
        spec["added_tokens"] = spec["added_tokens"] + [{"id": draw(st.sampled_from([300, 2**31, 2**32 + 5])), "content": content,
                                                        "single_word": False, "lstrip": False, "rstrip": False,
                                                        "normalized": draw(st.booleans()), "special": False}]
    if draw(st.booleans()):
        spec["model"] = {**spec["model"], "max_input_chars_per_word": draw(st.sampled_from([1, 100, 1000, 10**9, 0]))}
    if draw(st.integers(0, 4)) == 0:  # a field of the file itself, or of its model, of a wrong type
        where = spec if draw(st.booleans()) else spec["model"]
        where[draw(st.sampled_from(["added_tokens", "truncation", "padding", "model", "type", "vocab", "unk_id",
                                    "dropout", "normalizer"]))] = draw(JUNK)
    return json.dumps(spec)


@HOSTILE
@given(tokenizer=tokenizer_files())
def test_tokenizer_pipelines(sandbox, tokenizer):
    run_folder(sandbox, "hypothesis: tokenizer pipeline", {"tokenizer.json": tokenizer})


ALPHABET = "ab \u2581\u4e2d\ufdfa\u0130\u00e9x|"


@HOSTILE
@given(normalizer=st.one_of(st.none(), normalizers()), pre_tokenizer=st.one_of(st.none(), pre_tokenizers()),
       decoder=st.one_of(st.none(), decoders()), texts=st.lists(st.text(alphabet=ALPHABET, max_size=60), max_size=4),
       tokens=st.lists(st.text(alphabet=ALPHABET + "#<>0", max_size=8), max_size=6))
def test_growth_bounds_hold(sandbox, normalizer, pre_tokenizer, decoder, texts, tokens):
    """Pipelines the inspection accepts never lengthen a text, or decode tokens, beyond the bound it computed."""
    spec = tiny_tokenizer(normalizer=normalizer, pre_tokenizer=pre_tokenizer, decoder=decoder)
    texts = texts + ["a" * 200, "\ufdfa" * 20, " " * 50, "a b " * 20, "\u0130\u4e2d" * 10, ""]
    result = sandbox.run("hypothesis: growth bound", "check_growth", json.dumps(spec), texts, tokens)
    _check(result, None, "tokenizer.json")


# ---- folders that combine them -------------------------------------------------------------------------


@st.composite
def folders(draw) -> dict:
    files = {}
    if draw(st.booleans()):
        files["config.json"] = draw(config_files())
    if draw(st.booleans()):
        files["tokenizer.json"] = draw(tokenizer_files())
    weights = draw(st.sampled_from(["tiny", "safetensors", "bin"]))
    if weights == "safetensors":
        files["model.safetensors"] = draw(safetensors_files())
    elif weights == "bin":
        files["model.safetensors"], files["pytorch_model.bin"] = None, draw(torch_checkpoints())
    return files


@HOSTILE
@given(files=folders())
def test_combined_folders(sandbox, files):
    run_folder(sandbox, "hypothesis: combined folder", files)
