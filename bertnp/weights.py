"""Checkpoint -> a typed tree of arrays. The one table of Hugging Face tensor names lives here.

A safetensors file is an 8-byte little-endian header length, a JSON header mapping each tensor name to
its dtype, shape and byte range, then raw little-endian data. We read the header ourselves so that every
tensor can be a view into one read-only memory map of the file: when the stored dtype is the compute
dtype, loading a model copies nothing. float16 and bfloat16 files are upcast (NumPy has no bfloat16).
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from dataclasses import dataclass

import numpy as np

from . import files
from .config import BertConfig
from .errors import WeightsError
from .torch_checkpoint import read_torch_checkpoint

# safetensors dtype codes we read, as NumPy dtypes (bfloat16 is stored as raw uint16, widened below).
STORED_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4"}
MAX_HEADER_BYTES = files.LIMITS["safetensors header"]  # the safetensors library allows 100 MB
MAX_EXTENT = 2**62  # a tensor's bytes, even when a zero dimension makes it empty (NumPy indexes with int64)

# Tensors of heads bertnp does not run (cls.seq_relationship: next-sentence prediction), of heads the
# checkpoint's architecture does not use, and buffers. Tensors of the head in use are in expected_shapes.
IGNORED_PREFIXES = ("cls.", "qa_outputs.", "embeddings.position_ids", "embeddings.token_type_ids")

# The architectures bertnp runs, as config.json's `architectures` names them, each with the tensor that
# marks its head. BertForPreTraining carries BertForMaskedLM's head (plus next-sentence prediction, ignored).
MODEL = "BertModel"
SEQUENCE_CLASSIFICATION = "BertForSequenceClassification"
TOKEN_CLASSIFICATION = "BertForTokenClassification"
QUESTION_ANSWERING = "BertForQuestionAnswering"
MASKED_LM = "BertForMaskedLM"
ARCHITECTURES = {
    MODEL: None,
    SEQUENCE_CLASSIFICATION: "classifier.weight",
    TOKEN_CLASSIFICATION: "classifier.weight",
    QUESTION_ANSWERING: "qa_outputs.weight",
    MASKED_LM: "cls.predictions.transform.dense.weight",
    "BertForPreTraining": "cls.predictions.transform.dense.weight",
}


@dataclass(frozen=True)
class Linear:
    weight: np.ndarray  # [out, in], as torch's nn.Linear stores it
    bias: np.ndarray  # [out]


@dataclass(frozen=True)
class LayerNorm:
    weight: np.ndarray  # [H]  (legacy checkpoints call it gamma)
    bias: np.ndarray  # [H]  (legacy: beta)


@dataclass(frozen=True)
class Embeddings:
    word: np.ndarray  # [V, H]
    position: np.ndarray  # [P, H]
    token_type: np.ndarray  # [types, H]
    norm: LayerNorm


@dataclass(frozen=True)
class Layer:
    query: Linear  # [H, H]
    key: Linear  # [H, H]
    value: Linear  # [H, H]
    distance: np.ndarray | None  # [2P-1, D] for relative_key(_query) position embeddings, else None
    attention_output: Linear  # [H, H]
    attention_norm: LayerNorm
    intermediate: Linear  # [I, H]
    output: Linear  # [H, I]
    output_norm: LayerNorm


@dataclass(frozen=True)
class MaskedLMHead:
    """BertOnlyMLMHead's tensors: BertPredictionHeadTransform, then BertLMPredictionHead's decoder."""

    transform: Linear  # [H, H], cls.predictions.transform.dense
    norm: LayerNorm  # cls.predictions.transform.LayerNorm
    decoder: np.ndarray  # [V, H]: the word embeddings themselves when tie_word_embeddings (the default)
    bias: np.ndarray  # [V], cls.predictions.bias (cls.predictions.decoder.bias when untied)


@dataclass(frozen=True)
class BertWeights:
    embeddings: Embeddings
    layers: tuple  # of Layer, length L
    pooler: Linear | None  # [H, H]; None when the checkpoint has no pooler
    classifier: Linear | None  # [num_labels, H]; BertForSequenceClassification only (it reads the pooler)
    token_classifier: Linear | None = None  # [num_labels, H]; BertForTokenClassification (reads every token)
    qa_outputs: Linear | None = None  # [2, H]; BertForQuestionAnswering: start and end logits per token
    masked_lm: MaskedLMHead | None = None  # BertForMaskedLM
    architecture: str = MODEL  # which of ARCHITECTURES these weights are

    @property
    def labels_head(self) -> Linear | None:
        """The head whose rows are config.id2label's labels: per sequence or per token, or None."""
        return self.classifier if self.classifier is not None else self.token_classifier

    def map(self, fn) -> "BertWeights":
        """The same tree with every array replaced by fn(array) (a dtype cast, an upload to a GPU)."""
        return _map(self, fn)


def _map(node, fn):
    if node is None:
        return None
    if isinstance(node, tuple):
        return tuple(_map(n, fn) for n in node)
    if isinstance(node, str):
        return node
    if hasattr(node, "__dataclass_fields__"):
        return type(node)(**{k: _map(getattr(node, k), fn) for k in node.__dataclass_fields__})
    return fn(node)


def checkpoint_files(folder: str) -> list[str]:
    """The weight files of a checkpoint folder: one file, or the shards of an index. safetensors first;
    torch's pytorch_model.bin only when there is none (read without torch, see torch_checkpoint.py)."""
    for single in ("model.safetensors", "pytorch_model.bin"):
        index = os.path.join(folder, single + ".index.json")
        if os.path.exists(os.path.join(folder, single)):
            return [os.path.join(folder, single)]
        if os.path.exists(index):
            try:
                weight_map = files.read_json(index, "checkpoint index", WeightsError).get("weight_map")
            except FileNotFoundError:
                raise WeightsError(f"{index}: no such file") from None
            if not isinstance(weight_map, dict):
                raise WeightsError(f"{index}: not a checkpoint index: 'weight_map' must be an object, got "
                                   f"{files.json_type(weight_map)}")
            bad = next((shard for shard in weight_map.values() if not (isinstance(shard, str) and shard
                        and os.path.basename(shard) == shard and shard not in (".", ".."))), None)
            if bad is not None:
                raise WeightsError(f"{index}: weight_map must name files inside the checkpoint folder, got "
                                   f"{files.excerpt(bad)}")
            return [os.path.join(folder, shard) for shard in sorted(set(weight_map.values()))]
    raise WeightsError(f"{folder}: no model.safetensors, model.safetensors.index.json or pytorch_model.bin")


def read_safetensors(path) -> dict[str, np.ndarray]:
    """Every tensor of one safetensors file as a read-only view into a memory map of it (no copy).

    Every entry of the header is checked (types, dimensions, extents, overlaps) before any view is made;
    float16 and bfloat16 are then widened, so memory stays within the file's size plus twice its data."""
    path = os.fspath(path)
    try:
        with files.open_regular(path, WeightsError) as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if len(head) < 8:
                raise WeightsError(f"{path}: {size} bytes is too short for a safetensors file")
            (header_len,) = struct.unpack("<Q", head)
            if header_len > size - 8:
                raise WeightsError(f"{path}: header claims {header_len} bytes but the file has {size}")
            if header_len > MAX_HEADER_BYTES:
                raise WeightsError(f"{path}: header of {header_len} bytes, more than the {MAX_HEADER_BYTES >> 20} "
                                   f"MiB bertnp reads")
            header = files.parse_json(f.read(header_len), path, WeightsError, expect=None, pairs_hook=_refuse_duplicates,
                                      what="unreadable safetensors header, not valid JSON")
            if not isinstance(header, dict):
                raise WeightsError(f"{path}: safetensors header is not a JSON object")
            header.pop("__metadata__", None)
            data_start = 8 + header_len
            data_len = size - data_start
            entries = [_header_entry(path, name, info, data_len) for name, info in header.items()]
            extents = sorted((begin, end, name) for name, _, _, (begin, end) in entries)
            for (_, end, first), (begin, _, second) in zip(extents, extents[1:]):
                if begin < end:  # as the safetensors library, refuse tensors that share bytes
                    raise WeightsError(f"{path}: tensors '{files.shown(first)}' and '{files.shown(second)}' "
                                       f"overlap in the data section")
            raw = files.map_open(f, path, WeightsError)
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such file") from None
    except OSError as e:
        raise WeightsError(f"{path}: unreadable ({e.strerror or e})") from None
    tensors = {}
    for name, dtype, shape, (begin, end) in entries:
        array = raw[data_start + begin : data_start + end].view(STORED_DTYPES[dtype]).reshape(shape)
        tensors[name] = _widen(array) if array.dtype in (np.float16, np.uint16) else array
    return tensors


def _header_entry(path: str, name: str, info, data_len: int):
    """(name, dtype code, shape, (begin, end)) of one header entry, after checking every field."""
    where = f"{path}: tensor '{files.shown(name)}'"
    if not (isinstance(info, dict) and isinstance(info.get("shape"), list) and isinstance(info.get("data_offsets"), list)
            and len(info["data_offsets"]) == 2):
        raise WeightsError(f"{where} has a malformed header entry {files.excerpt(info)}: expected "
                           f"{{dtype, shape, data_offsets: [begin, end]}}")
    dtype, shape, (begin, end) = info.get("dtype"), info["shape"], info["data_offsets"]
    if not (isinstance(dtype, str) and dtype in STORED_DTYPES):
        raise WeightsError(f"{where} has dtype {files.shown(dtype, 20)}; bertnp reads {', '.join(STORED_DTYPES)}")
    if len(shape) > files.MAX_DIMS or not all(files.integer(n, 0, MAX_EXTENT) is not None for n in shape):
        raise WeightsError(f"{where} has shape {files.excerpt(shape)}: expected at most {files.MAX_DIMS} integers "
                           f"from 0 to 2**62")
    itemsize = np.dtype(STORED_DTYPES[dtype]).itemsize
    extent = itemsize  # the bytes of its nonzero dimensions: NumPy refuses shapes whose product overflows
    for n in shape:
        extent *= max(n, 1)
        if extent > MAX_EXTENT:
            raise WeightsError(f"{where} has shape {files.excerpt(shape)}, too large for NumPy")
    needed = 0 if 0 in shape else extent
    if not (files.integer(begin, 0, data_len) is not None and files.integer(end, begin, data_len) is not None
            and end - begin == needed):
        raise WeightsError(f"{where} ({dtype}{shape}) claims bytes {files.excerpt(begin)}..{files.excerpt(end)} but "
                           f"needs {needed} bytes inside a data section of {data_len}")
    return name, dtype, tuple(shape), (begin, end)


def release_pages(array: np.ndarray) -> None:
    """Drop the whole pages of a memory-mapped tensor from this process's resident memory, once a copy of
    it (bertnp.fast's GEMM layout) has replaced it: the file stays mapped, so a later read faults the
    pages back in from the page cache. Arrays that are not views of a memory map are left as they are."""
    root = array  # the np.memmap that owns the mmap: its data starts offset % ALLOCATIONGRANULARITY into it
    while isinstance(root, np.ndarray) and not isinstance(root.base, mmap.mmap):
        root = root.base
    if not isinstance(root, np.memmap) or array.size == 0 or not hasattr(mmap, "MADV_DONTNEED"):
        return
    start = array.ctypes.data - root.ctypes.data + root.offset % mmap.ALLOCATIONGRANULARITY
    first = -(-start // mmap.PAGESIZE) * mmap.PAGESIZE
    last = (start + array.nbytes) // mmap.PAGESIZE * mmap.PAGESIZE
    if last > first:
        root.base.madvise(mmap.MADV_DONTNEED, first, last - first)


def _refuse_duplicates(pairs):
    result = dict(pairs)
    if len(result) != len(pairs):
        seen = set()
        duplicate = next(n for n, _ in pairs if n in seen or seen.add(n))
        raise json.JSONDecodeError(f"duplicate name {files.excerpt(duplicate)}", "", 0)
    return result


def _widen(array: np.ndarray) -> np.ndarray:
    """float16 -> float32 exactly; bfloat16 (raw uint16) -> float32 exactly, by shifting into the high half."""
    if array.dtype == np.uint16:
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(np.float32)


def load_weights(folder: str, config: BertConfig, dtype) -> BertWeights:
    """Read a checkpoint folder into BertWeights of `dtype`, checking every name and shape against config."""
    tensors, origin = {}, {}
    for path in checkpoint_files(folder):
        if not os.path.lexists(path):
            raise WeightsError(f"{path}: listed in the index but missing")
        reader = read_torch_checkpoint if path.endswith(".bin") else read_safetensors
        for name, array in reader(path).items():
            key = _canonical(name)
            if key in tensors:
                raise WeightsError(f"{path}: tensor '{files.shown(name)}' also appears in {origin[key]}")
            tensors[key], origin[key] = array, path
    return build_tree(tensors, config, dtype, source=folder, tie_word_embeddings=config.tie_word_embeddings)


def _canonical(name: str) -> str:
    """HF names with or without the `bert.` prefix, and legacy LayerNorm.gamma/beta, to one spelling."""
    if name.startswith("bert."):
        name = name[len("bert.") :]
    if name.endswith("LayerNorm.gamma"):
        name = name[: -len("gamma")] + "weight"
    elif name.endswith("LayerNorm.beta"):
        name = name[: -len("beta")] + "bias"
    return name


def architecture(config: BertConfig, names, source: str) -> str:
    """Which head to run: the first of config.json's `architectures` that bertnp knows, whose head tensor
    must then be present; without one (or with plain BertModel), the tensors present decide."""
    declared = next((a for a in config.architectures if a in ARCHITECTURES), None)
    if declared not in (None, MODEL):
        marker = ARCHITECTURES[declared]
        if marker not in names:
            raise WeightsError(f"{source}: config.json's architectures names {declared}, but the checkpoint has "
                               f"no tensor {marker}")
        if declared == SEQUENCE_CLASSIFICATION and "pooler.dense.weight" not in names:
            raise WeightsError(f"{source}: {declared} reads the pooler, but the checkpoint has no "
                               "pooler.dense.weight")
        return MASKED_LM if declared == "BertForPreTraining" else declared
    if "classifier.weight" in names:  # the pooler tells a sequence classifier from a token classifier
        return SEQUENCE_CLASSIFICATION if "pooler.dense.weight" in names else TOKEN_CLASSIFICATION
    if "qa_outputs.weight" in names:
        return QUESTION_ANSWERING
    if "cls.predictions.transform.dense.weight" in names:
        return MASKED_LM
    return MODEL


def expected_shapes(config: BertConfig, has_pooler: bool, has_classifier: bool, head: str | None = None,
                    tie_word_embeddings: bool = True) -> dict[str, tuple]:
    """The one table of checkpoint names bertnp reads, with the shape each must have.

    head: the architecture (see ARCHITECTURES) when it is not BertModel / BertForSequenceClassification,
    which has_classifier describes.
    """
    H, I, D, P = config.hidden_size, config.intermediate_size, config.head_size, config.max_position_embeddings
    shapes = {
        "embeddings.word_embeddings.weight": (config.vocab_size, H),
        "embeddings.position_embeddings.weight": (P, H),
        "embeddings.token_type_embeddings.weight": (config.type_vocab_size, H),
        "embeddings.LayerNorm.weight": (H,),
        "embeddings.LayerNorm.bias": (H,),
    }
    for i in range(config.num_hidden_layers):
        p = f"encoder.layer.{i}."
        for part, (rows, cols) in {
            "attention.self.query": (H, H),
            "attention.self.key": (H, H),
            "attention.self.value": (H, H),
            "attention.output.dense": (H, H),
            "intermediate.dense": (I, H),
            "output.dense": (H, I),
        }.items():
            shapes[p + part + ".weight"] = (rows, cols)
            shapes[p + part + ".bias"] = (rows,)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[p + norm + ".weight"] = (H,)
            shapes[p + norm + ".bias"] = (H,)
        if config.position_embedding_type != "absolute":
            shapes[p + "attention.self.distance_embedding.weight"] = (2 * P - 1, D)
    if has_pooler:
        shapes["pooler.dense.weight"] = (H, H)
        shapes["pooler.dense.bias"] = (H,)
    if has_classifier or head == TOKEN_CLASSIFICATION:  # BertForSequence/TokenClassification: same names
        shapes["classifier.weight"] = (config.num_labels, H)
        shapes["classifier.bias"] = (config.num_labels,)
    if head == QUESTION_ANSWERING:  # start and end: transformers splits 2 outputs, whatever id2label says
        shapes["qa_outputs.weight"] = (2, H)
        shapes["qa_outputs.bias"] = (2,)
    if head == MASKED_LM:
        p = "cls.predictions."
        shapes[p + "transform.dense.weight"] = (H, H)
        shapes[p + "transform.dense.bias"] = (H,)
        shapes[p + "transform.LayerNorm.weight"] = (H,)
        shapes[p + "transform.LayerNorm.bias"] = (H,)
        if tie_word_embeddings:
            shapes[p + "bias"] = (config.vocab_size,)
        else:
            shapes[p + "decoder.weight"] = (config.vocab_size, H)
            shapes[p + "decoder.bias"] = (config.vocab_size,)
    return shapes


def build_tree(tensors: dict[str, np.ndarray], config: BertConfig, dtype, source: str,
               tie_word_embeddings: bool = True) -> BertWeights:
    """Check names and shapes against the table, cast to `dtype` (a no-op view when it already matches)."""
    dtype = np.dtype(dtype)
    head = architecture(config, tensors, source)
    has_pooler = "pooler.dense.weight" in tensors
    has_classifier = head == SEQUENCE_CLASSIFICATION
    if head == MASKED_LM and tie_word_embeddings and "cls.predictions.bias" not in tensors and \
            "cls.predictions.decoder.bias" in tensors:  # older checkpoints: only the decoder's copy of the bias
        tensors = {**tensors, "cls.predictions.bias": tensors["cls.predictions.decoder.bias"]}
    _check_layer_count(tensors, config, source)
    shapes = expected_shapes(config, has_pooler, has_classifier, head, tie_word_embeddings)
    missing = [n for n in shapes if n not in tensors]
    if missing:
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        raise WeightsError(f"{source}: missing tensor(s) {', '.join(missing[:5])}{more}")
    unexpected = [n for n in tensors if n not in shapes and not n.startswith(IGNORED_PREFIXES)]
    if unexpected:
        raise WeightsError(
            f"{source}: unexpected tensor(s) {', '.join(files.shown(n) for n in unexpected[:5])} for a BERT with "
            f"{config.num_hidden_layers} layers and position_embedding_type={config.position_embedding_type!r}"
        )
    for name, shape in shapes.items():
        array = tensors[name]
        if array.shape != shape:
            raise WeightsError(f"{source}: tensor '{name}' has shape {list(array.shape)}, expected {list(shape)}")
        if array.dtype.kind != "f":
            raise WeightsError(f"{source}: tensor '{name}' has dtype {array.dtype}, expected a float type")

    def get(name):
        array = tensors[name]
        return array if array.dtype == dtype else array.astype(dtype)

    def linear(prefix):
        return Linear(get(prefix + ".weight"), get(prefix + ".bias"))

    def norm(prefix):
        return LayerNorm(get(prefix + ".weight"), get(prefix + ".bias"))

    layers = []
    for i in range(config.num_hidden_layers):
        p = f"encoder.layer.{i}."
        distance = p + "attention.self.distance_embedding.weight"
        layers.append(
            Layer(
                query=linear(p + "attention.self.query"),
                key=linear(p + "attention.self.key"),
                value=linear(p + "attention.self.value"),
                distance=get(distance) if distance in shapes else None,
                attention_output=linear(p + "attention.output.dense"),
                attention_norm=norm(p + "attention.output.LayerNorm"),
                intermediate=linear(p + "intermediate.dense"),
                output=linear(p + "output.dense"),
                output_norm=norm(p + "output.LayerNorm"),
            )
        )
    word = get("embeddings.word_embeddings.weight")  # once: a tied masked-LM decoder shares this array
    return BertWeights(
        embeddings=Embeddings(
            word=word,
            position=get("embeddings.position_embeddings.weight"),
            token_type=get("embeddings.token_type_embeddings.weight"),
            norm=norm("embeddings.LayerNorm"),
        ),
        layers=tuple(layers),
        pooler=linear("pooler.dense") if has_pooler else None,
        classifier=linear("classifier") if has_classifier else None,
        token_classifier=linear("classifier") if head == TOKEN_CLASSIFICATION else None,
        qa_outputs=linear("qa_outputs") if head == QUESTION_ANSWERING else None,
        masked_lm=masked_lm_head(get, norm, word, tie_word_embeddings) if head == MASKED_LM else None,
        architecture=head,
    )


def _check_layer_count(tensors: dict, config: BertConfig, source: str):
    """Before the table of names is built for num_hidden_layers layers (16 names each): a checkpoint that
    lacks a layer config.json asks for is refused naming it, however large num_hidden_layers is."""
    if config.num_hidden_layers * 16 <= len(tensors):
        return
    first = next(i for i in range(len(tensors) + 1) if f"encoder.layer.{i}.attention.self.query.weight" not in tensors)
    raise WeightsError(f"{source}: missing tensor(s) encoder.layer.{first}.attention.self.query.weight: config.json "
                       f"asks for num_hidden_layers={config.num_hidden_layers}, and the checkpoint holds "
                       f"{len(tensors)} tensors")


def masked_lm_head(get, norm, word, tie_word_embeddings: bool) -> MaskedLMHead:
    """cls.predictions: the transform, and a decoder tied to the word embeddings unless config unties it."""
    p = "cls.predictions."
    return MaskedLMHead(
        transform=Linear(get(p + "transform.dense.weight"), get(p + "transform.dense.bias")),
        norm=norm(p + "transform.LayerNorm"),
        decoder=word if tie_word_embeddings else get(p + "decoder.weight"),
        bias=get(p + "bias" if tie_word_embeddings else p + "decoder.bias"),
    )
