"""Checkpoint -> a typed tree of arrays. The tables of Hugging Face tensor names live here, one per family.

A safetensors file is an 8-byte little-endian header length, a JSON header mapping each tensor name to
its dtype, shape and byte range, then raw little-endian data. We read the header ourselves so that every
tensor can be a view into one read-only memory map of the file: when the stored dtype is the compute
dtype, loading a model copies nothing. float16 and bfloat16 files are upcast (NumPy has no bfloat16).

BERT's relatives store the same parts under other names: each family is a table (`Family`) from the tree's
fields to its names, and loading reads any of them into the one tree that model.py computes on.
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

# The heads bertnp runs, named by BERT's classes whatever the family (Family.classes maps each family's
# class names onto these). BertForPreTraining carries BertForMaskedLM's head (plus next-sentence prediction,
# ignored); ELECTRA's discriminator (ElectraForPreTraining) has no BERT twin.
MODEL = "BertModel"
SEQUENCE_CLASSIFICATION = "BertForSequenceClassification"
TOKEN_CLASSIFICATION = "BertForTokenClassification"
QUESTION_ANSWERING = "BertForQuestionAnswering"
MASKED_LM = "BertForMaskedLM"
DISCRIMINATOR = "ElectraForPreTraining"
ARCHITECTURES = {  # BERT's classes, each with the tensor that marks its head
    MODEL: None,
    SEQUENCE_CLASSIFICATION: "classifier.weight",
    TOKEN_CLASSIFICATION: "classifier.weight",
    QUESTION_ANSWERING: "qa_outputs.weight",
    MASKED_LM: "cls.predictions.transform.dense.weight",
    "BertForPreTraining": "cls.predictions.transform.dense.weight",
}


@dataclass(frozen=True)
class Family:
    """One family's checkpoint names for the parts of BertWeights, without the base model's prefix (task
    checkpoints store the encoder under `prefix`, base-model checkpoints without it). A name that does not
    end in .weight or .bias is an nn.Linear or nn.LayerNorm: its .weight and .bias."""

    prefix: str  # the base model's attribute in transformers' task classes
    classes: dict  # transformers class name -> the head bertnp runs for it
    embeddings: dict  # Embeddings field -> name: word, position, token_type (None: no token types), norm
    project: str | None  # the E -> H Linear after the embeddings (ELECTRA has it only when E != H)
    layer: str  # a stored layer's prefix: {i} its index; ALBERT: {g} its group, {j} its place in the group
    layer_parts: dict  # Layer field -> module name inside a layer
    pooler: str | None  # the Linear under the pooler's tanh
    heads: dict  # head -> {part: name}: classifier, dense (a head on the first token, not on the pooler), ...
    classifier_activation: str | None = None  # after `dense` in the sequence classification head
    mlm_activation: str | None = None  # the masked-LM transform's; None: config.hidden_act
    ignored: tuple = ()  # prefixes of tensors nothing bertnp runs reads: buffers, heads not in use
    shared_layers: bool = False  # ALBERT: num_hidden_groups groups of inner_group_num layers, reused in turn

    def stored_layers(self, config: BertConfig) -> list[str]:
        """The prefixes of the layers the checkpoint stores, in order."""
        if self.shared_layers:
            return [self.layer.format(g=g, j=j) for g in range(config.num_hidden_groups)
                    for j in range(config.inner_group_num)]
        return [self.layer.format(i=i) for i in range(config.num_hidden_layers)]

    def layer_order(self, config: BertConfig) -> list[int]:
        """Which stored layer each step of the forward pass runs: AlbertTransformer's group for layer i is
        int(i / (num_hidden_layers / num_hidden_groups)), and each group runs its inner_group_num layers."""
        if not self.shared_layers:
            return list(range(config.num_hidden_layers))
        L, G, inner = config.num_hidden_layers, config.num_hidden_groups, config.inner_group_num
        return [int(i / (L / G)) * inner + j for i in range(L) for j in range(inner)]


BERT_LAYER = {"query": "attention.self.query", "key": "attention.self.key", "value": "attention.self.value",
              "attention_output": "attention.output.dense", "attention_norm": "attention.output.LayerNorm",
              "intermediate": "intermediate.dense", "output": "output.dense", "output_norm": "output.LayerNorm"}
BERT_EMBEDDINGS = {"word": "embeddings.word_embeddings.weight", "position": "embeddings.position_embeddings.weight",
                   "token_type": "embeddings.token_type_embeddings.weight", "norm": "embeddings.LayerNorm"}
BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")
LABELS_ON_TOKENS = {"classifier": "classifier"}
QA_OUTPUTS = {"qa_outputs": "qa_outputs"}


CLASS_SUFFIXES = {MODEL: "Model", SEQUENCE_CLASSIFICATION: "ForSequenceClassification",
                  TOKEN_CLASSIFICATION: "ForTokenClassification", QUESTION_ANSWERING: "ForQuestionAnswering",
                  MASKED_LM: "ForMaskedLM", DISCRIMINATOR: "ForPreTraining"}
CLASS_STEMS = {"bert": "Bert", "distilbert": "DistilBert", "roberta": "Roberta", "xlm-roberta": "XLMRoberta",
               "camembert": "Camembert", "electra": "Electra", "albert": "Albert"}  # config.json's model_type


def family_classes(*stems: str) -> dict:
    """{"RobertaModel": MODEL, "RobertaForSequenceClassification": ..., ...} for each stem ("Roberta")."""
    return {stem + CLASS_SUFFIXES[head]: head for stem in stems for head in CLASS_SUFFIXES if head != DISCRIMINATOR}


FAMILIES = {
    "bert": Family(  # transformers' models/bert/modeling_bert.py
        prefix="bert.",
        classes={**family_classes("Bert"), "BertForPreTraining": MASKED_LM},
        embeddings=BERT_EMBEDDINGS,
        project=None,
        layer="encoder.layer.{i}.",
        layer_parts=BERT_LAYER,
        pooler="pooler.dense",
        heads={SEQUENCE_CLASSIFICATION: {"classifier": "classifier"},
               TOKEN_CLASSIFICATION: LABELS_ON_TOKENS,
               QUESTION_ANSWERING: QA_OUTPUTS,
               MASKED_LM: {"transform": "cls.predictions.transform.dense",
                           "norm": "cls.predictions.transform.LayerNorm",
                           "decoder": "cls.predictions.decoder.weight", "bias": "cls.predictions.bias",
                           "decoder_bias": "cls.predictions.decoder.bias"}},
        ignored=("cls.", "qa_outputs.") + BUFFERS,
    ),
    "distilbert": Family(  # models/distilbert/modeling_distilbert.py: no token types, no pooler
        prefix="distilbert.",
        classes=family_classes("DistilBert"),
        embeddings={**BERT_EMBEDDINGS, "token_type": None},
        project=None,
        layer="transformer.layer.{i}.",
        layer_parts={"query": "attention.q_lin", "key": "attention.k_lin", "value": "attention.v_lin",
                     "attention_output": "attention.out_lin", "attention_norm": "sa_layer_norm",
                     "intermediate": "ffn.lin1", "output": "ffn.lin2", "output_norm": "output_layer_norm"},
        pooler=None,
        heads={SEQUENCE_CLASSIFICATION: {"dense": "pre_classifier", "classifier": "classifier"},
               TOKEN_CLASSIFICATION: LABELS_ON_TOKENS,
               QUESTION_ANSWERING: QA_OUTPUTS,
               MASKED_LM: {"transform": "vocab_transform", "norm": "vocab_layer_norm",
                           "decoder": "vocab_projector.weight", "bias": "vocab_projector.bias",
                           "decoder_bias": "vocab_projector.bias"}},
        classifier_activation="relu",
        ignored=("vocab_transform.", "vocab_layer_norm.", "vocab_projector.", "qa_outputs.") + BUFFERS,
    ),
    "roberta": Family(  # models/roberta/modeling_roberta.py (xlm_roberta and camembert are copies of it)
        prefix="roberta.",
        classes=family_classes("Roberta", "XLMRoberta", "Camembert"),
        embeddings=BERT_EMBEDDINGS,
        project=None,
        layer="encoder.layer.{i}.",
        layer_parts=BERT_LAYER,
        pooler="pooler.dense",
        heads={SEQUENCE_CLASSIFICATION: {"dense": "classifier.dense", "classifier": "classifier.out_proj"},
               TOKEN_CLASSIFICATION: LABELS_ON_TOKENS,
               QUESTION_ANSWERING: QA_OUTPUTS,
               MASKED_LM: {"transform": "lm_head.dense", "norm": "lm_head.layer_norm",
                           "decoder": "lm_head.decoder.weight", "bias": "lm_head.bias",
                           "decoder_bias": "lm_head.decoder.bias"}},
        classifier_activation="tanh",
        mlm_activation="gelu",  # RobertaLMHead calls gelu whatever hidden_act says
        ignored=("lm_head.", "qa_outputs.") + BUFFERS,
    ),
    "electra": Family(  # models/electra/modeling_electra.py: factorized embeddings (E), no pooler
        prefix="electra.",
        classes={**family_classes("Electra"), "ElectraForPreTraining": DISCRIMINATOR},
        embeddings=BERT_EMBEDDINGS,
        project="embeddings_project",
        layer="encoder.layer.{i}.",
        layer_parts=BERT_LAYER,
        pooler=None,
        heads={SEQUENCE_CLASSIFICATION: {"dense": "classifier.dense", "classifier": "classifier.out_proj"},
               TOKEN_CLASSIFICATION: LABELS_ON_TOKENS,
               QUESTION_ANSWERING: QA_OUTPUTS,
               MASKED_LM: {"transform": "generator_predictions.dense", "norm": "generator_predictions.LayerNorm",
                           "decoder": "generator_lm_head.weight", "bias": "generator_lm_head.bias",
                           "decoder_bias": "generator_lm_head.bias"},
               DISCRIMINATOR: {"dense": "discriminator_predictions.dense",
                               "prediction": "discriminator_predictions.dense_prediction"}},
        classifier_activation="gelu",  # ElectraClassificationHead: "although BERT uses tanh here"
        mlm_activation="gelu",  # ElectraGeneratorPredictions
        ignored=("generator_predictions.", "generator_lm_head.", "discriminator_predictions.", "qa_outputs.") + BUFFERS,
    ),
    "albert": Family(  # models/albert/modeling_albert.py: factorized embeddings, layers shared in groups
        prefix="albert.",
        classes={**family_classes("Albert"), "AlbertForPreTraining": MASKED_LM},
        embeddings=BERT_EMBEDDINGS,
        project="encoder.embedding_hidden_mapping_in",
        layer="encoder.albert_layer_groups.{g}.albert_layers.{j}.",
        layer_parts={"query": "attention.query", "key": "attention.key", "value": "attention.value",
                     "attention_output": "attention.dense", "attention_norm": "attention.LayerNorm",
                     "intermediate": "ffn", "output": "ffn_output", "output_norm": "full_layer_layer_norm"},
        pooler="pooler",
        heads={SEQUENCE_CLASSIFICATION: {"classifier": "classifier"},
               TOKEN_CLASSIFICATION: LABELS_ON_TOKENS,
               QUESTION_ANSWERING: QA_OUTPUTS,
               MASKED_LM: {"transform": "predictions.dense", "norm": "predictions.LayerNorm",
                           "decoder": "predictions.decoder.weight", "bias": "predictions.bias",
                           "decoder_bias": "predictions.decoder.bias"}},
        ignored=("predictions.", "sop_classifier.", "qa_outputs.") + BUFFERS,
        shared_layers=True,
    ),
}
FAMILY_NAMES = {"bert": "BERT", "distilbert": "DistilBERT", "roberta": "RoBERTa", "electra": "ELECTRA",
                "albert": "ALBERT"}


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
    word: np.ndarray  # [V, E]  (E = H but for ELECTRA's and ALBERT's factorized embeddings)
    position: np.ndarray  # [P, E]
    token_type: np.ndarray  # [types, E]; DistilBERT, which has none: one row of zeros
    norm: LayerNorm  # [E]
    project: Linear | None = None  # [H, E]: ELECTRA's embeddings_project, ALBERT's embedding_hidden_mapping_in


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
    """BertOnlyMLMHead's tensors (and its relatives': RobertaLMHead, DistilBERT's vocab_*, ELECTRA's
    generator, AlbertMLMHead): a transform, then a decoder to the vocabulary."""

    transform: Linear  # [E, H], cls.predictions.transform.dense (E = H but for ELECTRA and ALBERT)
    norm: LayerNorm  # [E], cls.predictions.transform.LayerNorm
    decoder: np.ndarray  # [V, E]: the word embeddings themselves when tie_word_embeddings (the default)
    bias: np.ndarray  # [V], cls.predictions.bias (cls.predictions.decoder.bias when untied)
    activation: str = "gelu"  # the transform's: config.hidden_act, or the family's own (Family.mlm_activation)


@dataclass(frozen=True)
class ClassificationHead:
    """The sequence classification head of RoBERTa (RobertaClassificationHead), ELECTRA
    (ElectraClassificationHead) and DistilBERT (pre_classifier): a dense layer and an activation on the
    first token's state, before BertWeights.classifier. BERT and ALBERT read the pooler instead."""

    dense: Linear  # [H, H]
    activation: str  # tanh, gelu or relu (Family.classifier_activation)


@dataclass(frozen=True)
class DiscriminatorHead:
    """ElectraDiscriminatorPredictions: for each token, whether the generator replaced it."""

    dense: Linear  # [H, H], followed by config.hidden_act
    prediction: Linear  # [1, H]


@dataclass(frozen=True)
class BertWeights:
    embeddings: Embeddings
    layers: tuple  # of Layer, one per layer run (length L; ALBERT's repeat its shared layers)
    pooler: Linear | None  # [H, H]; None when the checkpoint has no pooler
    classifier: Linear | None  # [num_labels, H]; BertForSequenceClassification only (it reads the pooler)
    token_classifier: Linear | None = None  # [num_labels, H]; BertForTokenClassification (reads every token)
    qa_outputs: Linear | None = None  # [2, H]; BertForQuestionAnswering: start and end logits per token
    masked_lm: MaskedLMHead | None = None  # BertForMaskedLM
    architecture: str = MODEL  # which of ARCHITECTURES these weights are
    classification_head: ClassificationHead | None = None  # the relatives' sequence classifier, before classifier
    discriminator: DiscriminatorHead | None = None  # ElectraForPreTraining
    model_class: str = MODEL  # the transformers class these weights are, e.g. XLMRobertaForSequenceClassification

    @property
    def labels_head(self) -> Linear | None:
        """The head whose rows are config.id2label's labels: per sequence or per token, or None."""
        return self.classifier if self.classifier is not None else self.token_classifier

    def map(self, fn) -> "BertWeights":
        """The same tree with every array replaced by fn(array) (a dtype cast, an upload to a GPU). A part
        shared by several places (ALBERT's layers) stays one part."""
        return _map(self, fn, {})


def _map(node, fn, done: dict):
    if node is None or isinstance(node, str):
        return node
    if id(node) in done:
        return done[id(node)]
    if isinstance(node, tuple):
        result = tuple(_map(n, fn, done) for n in node)
    elif hasattr(node, "__dataclass_fields__"):
        result = type(node)(**{k: _map(getattr(node, k), fn, done) for k in node.__dataclass_fields__})
    else:
        result = fn(node)
    done[id(node)] = result
    return result


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
    family = FAMILIES[config.family]
    for path in checkpoint_files(folder):
        if not os.path.lexists(path):
            raise WeightsError(f"{path}: listed in the index but missing")
        reader = read_torch_checkpoint if path.endswith(".bin") else read_safetensors
        for name, array in reader(path).items():
            key = _canonical(name, family)
            if key in tensors:
                raise WeightsError(f"{path}: tensor '{files.shown(name)}' also appears in {origin[key]}")
            _refuse_other_families(name, key, family, config, path)
            tensors[key], origin[key] = array, path
    paths = sorted(set(origin.values()))
    source = paths[0] if len(paths) == 1 else folder  # the file that lacks a tensor, when there is one
    return build_tree(tensors, config, dtype, source=source, tie_word_embeddings=config.tie_word_embeddings,
                      origin=origin)


def _canonical(name: str, family: Family = FAMILIES["bert"]) -> str:
    """HF names with or without the base model's prefix (`bert.`, `roberta.`, ...), and legacy
    LayerNorm.gamma/beta, to one spelling."""
    if name.startswith(family.prefix):
        name = name[len(family.prefix) :]
    if name.endswith("LayerNorm.gamma"):
        name = name[: -len("gamma")] + "weight"
    elif name.endswith("LayerNorm.beta"):
        name = name[: -len("beta")] + "bias"
    return name


def _refuse_other_families(name: str, key: str, family: Family, config: BertConfig, path: str):
    """A tensor under another family's prefix (bert.embeddings... in a RoBERTa checkpoint): a mixed checkpoint,
    named as such rather than as a list of missing tensors."""
    other = next((f for f, fam in FAMILIES.items() if fam.prefix != family.prefix and key.startswith(fam.prefix)),
                 None)
    if other is not None:
        raise WeightsError(f"{path}: tensor '{files.shown(name)}' is named as in a {FAMILY_NAMES[other]} checkpoint, "
                           f"but config.json's model_type is {config.model_type!r} ({FAMILY_NAMES[config.family]} "
                           f"names its tensors {family.prefix}...)")


def _tensor_names(part: str) -> tuple[str, ...]:
    """A table entry's tensors: a .weight/.bias name itself, else a module's weight and bias."""
    return (part,) if part.endswith((".weight", ".bias")) else (part + ".weight", part + ".bias")


def _reads_pooler(family: Family) -> bool:
    """Whether the family's sequence classifier sits on the pooler (BERT, ALBERT), not on its own dense layer."""
    return "dense" not in family.heads[SEQUENCE_CLASSIFICATION]


def _head_markers(family: Family, head: str) -> list[str]:
    """The tensors that mark a head: its first part's; a sequence classifier's every part's, and the pooler's
    when it reads the pooler (which tells it from a token classifier of the same names)."""
    parts = family.heads[head]
    if head != SEQUENCE_CLASSIFICATION:
        return [_tensor_names(next(iter(parts.values())))[0]]
    pooler = [family.pooler + ".weight"] if _reads_pooler(family) else []
    return [_tensor_names(p)[0] for p in parts.values()] + pooler


def architecture(config: BertConfig, names, source: str) -> str:
    """Which head to run: the first of config.json's `architectures` that the family knows, whose head tensor
    must then be present; without one (or with the base model), the tensors present decide. A class of
    another family is an error: config.json's model_type and architectures disagree."""
    family = FAMILIES[config.family]
    declared = next((a for a in config.architectures if a in family.classes), None)
    if declared is None:
        foreign = next((a for a in config.architectures for f, fam in FAMILIES.items()
                        if f != config.family and a in fam.classes), None)
        if foreign is not None:
            raise WeightsError(f"{source}: config.json's architectures names {foreign}, a class of another family "
                               f"than its model_type {config.model_type!r}")
    head = family.classes.get(declared, MODEL)
    if head != MODEL:
        marker = _tensor_names(next(iter(family.heads[head].values())))[0]
        if marker not in names:
            raise WeightsError(f"{source}: config.json's architectures names {declared}, but the checkpoint has "
                               f"no tensor {marker}")
        missing = next((m for m in _head_markers(family, head) if m not in names), None)
        if missing is not None and head == SEQUENCE_CLASSIFICATION and _reads_pooler(family):
            raise WeightsError(f"{source}: {declared} reads the pooler, but the checkpoint has no {missing}")
        return head
    for head in family.heads:  # sequence classification first: its markers include token classification's
        if all(m in names for m in _head_markers(family, head)):
            return head
    return MODEL


def _model_class(config: BertConfig, head: str) -> str:
    """The transformers class these weights are: the one config.json names, else model_type's class for head."""
    family = FAMILIES[config.family]
    declared = next((a for a in config.architectures if family.classes.get(a) == head), None)
    return declared or CLASS_STEMS[config.model_type] + CLASS_SUFFIXES[head]


def expected_shapes(config: BertConfig, has_pooler: bool, has_classifier: bool, head: str | None = None,
                    tie_word_embeddings: bool = True) -> dict[str, tuple]:
    """The checkpoint names bertnp reads for config's family (FAMILIES), with the shape each must have.

    head: the architecture (see ARCHITECTURES) when it is not BertModel / BertForSequenceClassification,
    which has_classifier describes.
    """
    family = FAMILIES[config.family]
    H, I, D, P = config.hidden_size, config.intermediate_size, config.head_size, config.max_position_embeddings
    E, V, C = config.embedding_dim, config.vocab_size, config.num_labels
    names = family.embeddings
    shapes = {names["word"]: (V, E), names["position"]: (P, E), names["norm"] + ".weight": (E,),
              names["norm"] + ".bias": (E,)}
    if names["token_type"] is not None:
        shapes[names["token_type"]] = (config.type_vocab_size, E)

    def linear(name, rows, cols):
        shapes[name + ".weight"] = (rows, cols)
        shapes[name + ".bias"] = (rows,)

    if family.project is not None and (config.family == "albert" or E != H):
        linear(family.project, H, E)
    for p in family.stored_layers(config):
        parts = family.layer_parts
        for part, (rows, cols) in {"query": (H, H), "key": (H, H), "value": (H, H), "attention_output": (H, H),
                                   "intermediate": (I, H), "output": (H, I)}.items():
            linear(p + parts[part], rows, cols)
        for norm in ("attention_norm", "output_norm"):
            shapes[p + parts[norm] + ".weight"] = (H,)
            shapes[p + parts[norm] + ".bias"] = (H,)
        if config.position_embedding_type != "absolute":
            shapes[p + "attention.self.distance_embedding.weight"] = (2 * P - 1, D)
    if has_pooler:
        linear(family.pooler, H, H)
    head = SEQUENCE_CLASSIFICATION if has_classifier else head
    parts = family.heads.get(head, {})
    if head in (SEQUENCE_CLASSIFICATION, TOKEN_CLASSIFICATION):
        linear(parts["classifier"], C, H)
        if "dense" in parts:
            linear(parts["dense"], H, H)
    if head == QUESTION_ANSWERING:  # start and end: transformers splits 2 outputs, whatever id2label says
        linear(parts["qa_outputs"], 2, H)
    if head == DISCRIMINATOR:
        linear(parts["dense"], H, H)
        linear(parts["prediction"], 1, H)
    if head == MASKED_LM:
        linear(parts["transform"], E, H)
        shapes[parts["norm"] + ".weight"] = (E,)
        shapes[parts["norm"] + ".bias"] = (E,)
        if tie_word_embeddings:
            shapes[parts["bias"]] = (V,)
        else:
            shapes[parts["decoder"]] = (V, E)
            shapes[parts["decoder_bias"]] = (V,)
    return shapes


def build_tree(tensors: dict[str, np.ndarray], config: BertConfig, dtype, source: str,
               tie_word_embeddings: bool = True, origin: dict | None = None) -> BertWeights:
    """Check names and shapes against the family's table, cast to `dtype` (a no-op view when it already
    matches). origin: the file of each tensor, for messages about tensors that should not be there."""
    dtype = np.dtype(dtype)
    family = FAMILIES[config.family]
    head = architecture(config, tensors, source)
    has_pooler = family.pooler is not None and family.pooler + ".weight" in tensors
    has_classifier = head == SEQUENCE_CLASSIFICATION
    head_names = family.heads.get(head, {})
    if head == MASKED_LM and tie_word_embeddings and head_names["bias"] not in tensors and \
            head_names["decoder_bias"] in tensors:  # older checkpoints: only the decoder's copy of the bias
        tensors = {**tensors, head_names["bias"]: tensors[head_names["decoder_bias"]]}
    position = family.embeddings["position"]
    if config.sinusoidal_pos_embds and position not in tensors:  # as DistilBERT's _init_weights fills it
        from .model import create_sinusoidal_embeddings

        tensors = {**tensors, position: create_sinusoidal_embeddings(config.max_position_embeddings,
                                                                      config.embedding_dim)}
    _check_layer_count(tensors, config, family, source)
    shapes = expected_shapes(config, has_pooler, has_classifier, head, tie_word_embeddings)
    missing = [n for n in shapes if n not in tensors]
    if missing:
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        layers = f", {config.num_hidden_groups} layer group(s)" if family.shared_layers else ""
        raise WeightsError(f"{source}: missing tensor(s) {', '.join(missing[:5])}{more} (for "
                           f"{_model_class(config, head)} with {config.num_hidden_layers} layers{layers})")
    unexpected = [n for n in tensors if n not in shapes and not n.startswith(family.ignored)]
    if unexpected:
        where = (origin or {}).get(unexpected[0], source)
        raise WeightsError(
            f"{where}: unexpected tensor(s) {', '.join(files.shown(n) for n in unexpected[:5])} for "
            f"{_model_class(config, head)} with {config.num_hidden_layers} layers and "
            f"position_embedding_type={config.position_embedding_type!r}"
        )
    for name, shape in shapes.items():
        array = tensors[name]
        where = (origin or {}).get(name, source)
        if array.shape != shape:
            raise WeightsError(f"{where}: tensor '{name}' has shape {list(array.shape)}, expected {list(shape)}")
        if array.dtype.kind != "f":
            raise WeightsError(f"{where}: tensor '{name}' has dtype {array.dtype}, expected a float type")

    def get(name):
        array = tensors[name]
        return array if array.dtype == dtype else array.astype(dtype)

    def linear(prefix):
        return Linear(get(prefix + ".weight"), get(prefix + ".bias"))

    def norm(prefix):
        return LayerNorm(get(prefix + ".weight"), get(prefix + ".bias"))

    stored = []
    for p in family.stored_layers(config):
        parts = family.layer_parts
        distance = p + "attention.self.distance_embedding.weight"
        stored.append(
            Layer(
                query=linear(p + parts["query"]),
                key=linear(p + parts["key"]),
                value=linear(p + parts["value"]),
                distance=get(distance) if distance in shapes else None,
                attention_output=linear(p + parts["attention_output"]),
                attention_norm=norm(p + parts["attention_norm"]),
                intermediate=linear(p + parts["intermediate"]),
                output=linear(p + parts["output"]),
                output_norm=norm(p + parts["output_norm"]),
            )
        )
    names = family.embeddings
    word = get(names["word"])  # once: a tied masked-LM decoder shares this array
    project = family.project if family.project is not None and family.project + ".weight" in shapes else None
    return BertWeights(
        embeddings=Embeddings(
            word=word,
            position=get(names["position"]),
            token_type=get(names["token_type"]) if names["token_type"] is not None else
            np.zeros((1, config.embedding_dim), dtype),  # DistilBERT has no token types: adding zeros is exact
            norm=norm(names["norm"]),
            project=linear(project) if project is not None else None,
        ),
        layers=tuple(stored[k] for k in family.layer_order(config)),
        pooler=linear(family.pooler) if has_pooler else None,
        classifier=linear(head_names["classifier"]) if has_classifier else None,
        token_classifier=linear(head_names["classifier"]) if head == TOKEN_CLASSIFICATION else None,
        qa_outputs=linear(head_names["qa_outputs"]) if head == QUESTION_ANSWERING else None,
        masked_lm=masked_lm_head(get, norm, word, tie_word_embeddings, head_names,
                                 family.mlm_activation or config.hidden_act) if head == MASKED_LM else None,
        architecture=head,
        classification_head=ClassificationHead(linear(head_names["dense"]), family.classifier_activation)
        if has_classifier and "dense" in head_names else None,
        discriminator=DiscriminatorHead(linear(head_names["dense"]), linear(head_names["prediction"]))
        if head == DISCRIMINATOR else None,
        model_class=_model_class(config, head),
    )


def _check_layer_count(tensors: dict, config: BertConfig, family: Family, source: str):
    """Before the table of names is built for every stored layer (16 names each): a checkpoint that lacks a
    layer config.json asks for is refused naming it, however large num_hidden_layers (or ALBERT's
    num_hidden_groups * inner_group_num) is."""
    count = config.num_hidden_groups * config.inner_group_num if family.shared_layers else config.num_hidden_layers
    if count * 16 <= len(tensors):
        return
    query = family.layer_parts["query"] + ".weight"

    def stored(k):
        if family.shared_layers:
            return family.layer.format(g=k // config.inner_group_num, j=k % config.inner_group_num)
        return family.layer.format(i=k)

    first = next(k for k in range(len(tensors) + 1) if stored(k) + query not in tensors)
    asks = (f"num_hidden_groups={config.num_hidden_groups} of inner_group_num={config.inner_group_num}"
            if family.shared_layers else f"num_hidden_layers={config.num_hidden_layers}")
    raise WeightsError(f"{source}: missing tensor(s) {stored(first)}{query}: config.json asks for {asks}, and the "
                       f"checkpoint holds {len(tensors)} tensors")


def masked_lm_head(get, norm, word, tie_word_embeddings: bool, names: dict | None = None,
                   activation: str = "gelu") -> MaskedLMHead:
    """The masked-LM head's transform, and a decoder tied to the word embeddings unless config unties it."""
    names = names or FAMILIES["bert"].heads[MASKED_LM]
    return MaskedLMHead(
        transform=Linear(get(names["transform"] + ".weight"), get(names["transform"] + ".bias")),
        norm=norm(names["norm"]),
        decoder=word if tie_word_embeddings else get(names["decoder"]),
        bias=get(names["bias"] if tie_word_embeddings else names["decoder_bias"]),
        activation=activation,
    )
