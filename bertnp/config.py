"""BertConfig: the fields of a Hugging Face BERT config.json that change the arithmetic.

Mirrors transformers' `BertConfig` (configuration_bert.py) for the encoder-only models bertnp runs, and
its relatives' configs, read into the same fields: DistilBertConfig (under its own names: dim, n_layers,
...), RobertaConfig (also XLM-RoBERTa's and CamemBERT's), ElectraConfig and AlbertConfig (which add
embedding_size, and ALBERT's layer groups). `model_type` says which (absent: BERT); FAMILIES maps it to
the family bertnp runs it as, and bertnp.weights holds each family's tensor names.
Everything bertnp cannot run (a decoder, cross-attention, an unknown activation or model_type) is refused
here, at load time, by field name. Every field is type- and range-checked here too, before anything is
sized by it (bertnp.files has the loading contract).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from . import files
from .errors import ConfigError

ACTIVATIONS = ("gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "relu", "silu", "swish", "quick_gelu")
POSITION_EMBEDDING_TYPES = ("absolute", "relative_key", "relative_key_query")
PROBLEM_TYPES = ("single_label_classification", "multi_label_classification", "regression")
REQUIRED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
# config.json's model_type -> the family bertnp runs it as. XLM-RoBERTa and CamemBERT are RoBERTa with other
# vocabularies.
FAMILIES = {"bert": "bert", "distilbert": "distilbert", "roberta": "roberta", "xlm-roberta": "roberta",
            "camembert": "roberta", "electra": "electra", "albert": "albert"}
# The defaults of each family's transformers config class where they differ from BertConfig's, for configs
# that leave a field out (the class default applies, as in transformers).
FAMILY_DEFAULTS = {
    "roberta": {"pad_token_id": 1},
    "electra": {"embedding_size": 128},
    "albert": {"embedding_size": 128, "hidden_act": "gelu_new"},
}
# DistilBertConfig's names for BertConfig's fields. DistilBERT has no token types, no layer_norm_eps (its
# LayerNorms use 1e-12) and no relative positions.
DISTILBERT_NAMES = {"dim": "hidden_size", "n_layers": "num_hidden_layers", "n_heads": "num_attention_heads",
                    "hidden_dim": "intermediate_size", "activation": "hidden_act"}
MAX_SHARED_LAYERS = 4096  # ALBERT's num_hidden_layers * inner_group_num: layers run, not tensors stored
# Labels a config may name or number. num_labels alone makes LABEL_0..LABEL_{n-1}, about 150 bytes each, before
# the weights can say whether the classifier has that many rows.
MAX_LABELS = 1 << 16


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden_size: int  # H
    num_hidden_layers: int  # L
    num_attention_heads: int  # N
    intermediate_size: int  # I
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    position_embedding_type: str = "absolute"
    pad_token_id: int = 0
    id2label: dict = field(default_factory=dict)
    label2id: dict = field(default_factory=dict)
    problem_type: str | None = None
    architectures: tuple = ()
    source: str = "<dict>"
    tie_word_embeddings: bool = True  # the masked-LM decoder is the word embeddings
    model_type: str = "bert"  # config.json's: one of FAMILIES
    embedding_size: int | None = None  # E, ELECTRA's and ALBERT's factorized embeddings; None: E = H
    num_hidden_groups: int = 1  # ALBERT: layer groups, each shared by num_hidden_layers / groups layers
    inner_group_num: int = 1  # ALBERT: layers in a group
    sinusoidal_pos_embds: bool = False  # DistilBERT: a missing position table is the sinusoidal one

    @property
    def head_size(self) -> int:  # D = H / N
        return self.hidden_size // self.num_attention_heads

    @property
    def family(self) -> str:
        """bert, distilbert, roberta, electra or albert: which checkpoint names and arithmetic (FAMILIES)."""
        return FAMILIES[self.model_type]

    @property
    def embedding_dim(self) -> int:  # E: the embedding tables' width
        return self.embedding_size or self.hidden_size

    @property
    def max_tokens(self) -> int:
        """The longest input: RoBERTa's positions start at padding_idx + 1 (model.create_position_ids_from_input_ids),
        so the last padding_idx + 1 rows of its table are what limits it; every other family has one row per token."""
        if self.family == "roberta":
            return self.max_position_embeddings - self.pad_token_id - 1
        return self.max_position_embeddings

    @property
    def max_tokens_name(self) -> str:
        """How max_tokens is derived, for messages."""
        if self.family == "roberta":
            return "max_position_embeddings - pad_token_id - 1"
        return "max_position_embeddings"

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "BertConfig":
        path = os.fspath(path)
        try:
            raw = files.read_json(path, "config.json", ConfigError, expect=None)
        except FileNotFoundError:
            raise ConfigError(f"{path}: no config.json; a BERT checkpoint folder needs one") from None
        return cls.from_dict(raw, source=path)

    @classmethod
    def from_dict(cls, raw: dict, source: str = "<dict>") -> "BertConfig":
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {files.json_type(raw)}")

        def fail(name, why):
            raise ConfigError(f"{source}: field '{name}' {why}")

        model_type = raw.get("model_type", "bert")
        if not (isinstance(model_type, str) and model_type in FAMILIES):
            fail("model_type", f"= {files.excerpt(model_type)} is not supported; expected one of {', '.join(FAMILIES)}")
        family = FAMILIES[model_type]
        names = {}  # BertConfig's field -> config.json's, where the family names it otherwise (messages say theirs)
        if family == "distilbert":
            names = {ours: theirs for theirs, ours in DISTILBERT_NAMES.items() if theirs in raw or ours not in raw}
            raw = {**{k: v for k, v in raw.items() if k not in ("layer_norm_eps", "type_vocab_size",
                                                                 "position_embedding_type")},
                   **{ours: raw[theirs] for ours, theirs in names.items() if theirs in raw}}
        raw = {**FAMILY_DEFAULTS.get(family, {}), **raw}
        plain_fail = fail

        def fail(name, why):  # noqa: F811  (under the name config.json uses)
            plain_fail(names.get(name, name), why)

        for name in ("is_decoder", "add_cross_attention"):
            if raw.get(name):
                fail(name, "is true; bertnp runs encoder-only BERT (no decoder, no cross-attention)")
        for name in REQUIRED:
            if name not in raw:
                fail(name, "is missing")

        def integer(name, default=None, minimum=1, maximum=files.MAX_INDEX):
            value = raw.get(name, default)
            if files.integer(value, minimum, maximum) is None:
                fail(name, f"must be an integer from {minimum} to {maximum}, got {files.excerpt(value)}")
            return value

        def choice(name, value, allowed):
            if not (isinstance(value, str) and value in allowed):
                fail(name, f"= {files.excerpt(value)} is not supported; expected one of {', '.join(allowed)}")
            return value

        hidden = integer("hidden_size")
        layers = integer("num_hidden_layers")
        heads = integer("num_attention_heads")
        if hidden % heads:
            fail("num_attention_heads", f"= {heads} does not divide hidden_size = {hidden}")

        act = choice("hidden_act", raw.get("hidden_act", "gelu"), ACTIVATIONS)
        pet = choice("position_embedding_type", raw.get("position_embedding_type") or "absolute",
                     POSITION_EMBEDDING_TYPES)
        if pet != "absolute" and family != "bert":
            fail("position_embedding_type", f"= {pet!r}: bertnp runs relative positions for BERT only "
                                            f"(transformers 5 ignores them)")
        problem = raw.get("problem_type")
        if problem is not None:
            choice("problem_type", problem, PROBLEM_TYPES)
        eps = files.number(raw.get("layer_norm_eps", 1e-12), 0.0, 1e300)
        if not eps:  # None (not a finite number in range) or 0
            fail("layer_norm_eps", f"must be a positive finite number, got {files.excerpt(raw.get('layer_norm_eps'))}")
        tied = raw.get("tie_word_embeddings", True)
        if tied is not None and not isinstance(tied, bool):
            fail("tie_word_embeddings", f"must be true or false, got {files.excerpt(tied)}")

        id2label = _labels(raw, fail)
        label2id = _label_ids(raw.get("label2id"), fail) if raw.get("label2id") else \
            {label: i for i, label in id2label.items()}
        architectures = raw.get("architectures") or ()
        if not (isinstance(architectures, (list, tuple)) and all(isinstance(a, str) for a in architectures)):
            fail("architectures", f"must be a list of class names, got {files.excerpt(architectures)}")

        groups, inner, embedding_size, sinusoidal = 1, 1, None, False
        if family in ("electra", "albert"):
            embedding_size = integer("embedding_size")
        if family == "albert":
            groups, inner = integer("num_hidden_groups", 1), integer("inner_group_num", 1)
            if layers * inner > MAX_SHARED_LAYERS:
                fail("num_hidden_layers", f"* inner_group_num = {layers} * {inner} layers to run; bertnp runs at "
                                          f"most {MAX_SHARED_LAYERS}")
        pad = integer("pad_token_id", 0, minimum=0) if raw.get("pad_token_id") is not None else 0
        positions = integer("max_position_embeddings", 512)
        if family == "roberta" and positions - pad - 1 < 2:
            fail("max_position_embeddings", f"= {positions} leaves no room for 2 tokens: RoBERTa's positions start at "
                                            f"pad_token_id + 1 = {pad + 1}")
        if family == "distilbert":
            sinusoidal = raw.get("sinusoidal_pos_embds", False)
            if not isinstance(sinusoidal, bool):
                fail("sinusoidal_pos_embds", f"must be true or false, got {files.excerpt(sinusoidal)}")

        return cls(
            vocab_size=integer("vocab_size"),
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=integer("intermediate_size"),
            hidden_act=act,
            layer_norm_eps=eps,
            max_position_embeddings=positions,
            type_vocab_size=0 if family == "distilbert" else integer("type_vocab_size", 2),  # 0: no token types
            position_embedding_type=pet,
            pad_token_id=pad,
            id2label=id2label,
            label2id=label2id,
            problem_type=problem,
            architectures=tuple(architectures),
            source=source,
            tie_word_embeddings=tied is not False,
            model_type=model_type,
            embedding_size=embedding_size,
            num_hidden_groups=groups,
            inner_group_num=inner,
            sinusoidal_pos_embds=sinusoidal,
        )


def _labels(raw: dict, fail) -> dict:
    """id2label with int keys in index order; num_labels alone gives LABEL_0..LABEL_{n-1} as transformers does."""
    id2label = raw.get("id2label")
    if id2label is not None:
        if not isinstance(id2label, dict):
            fail("id2label", f"must be an object mapping ids to labels, got {files.json_type(id2label)}")
        if len(id2label) > MAX_LABELS:
            fail("id2label", f"has {len(id2label)} labels; bertnp reads at most {MAX_LABELS}")
        labels = {}
        for key, label in id2label.items():
            key_id = _label_id(key)
            if key_id is None or key_id >= len(id2label):
                fail("id2label", f"ids must be 0..n-1 (n = {len(id2label)}), got the key {files.excerpt(key)}")
            if isinstance(label, (dict, list)):
                fail("id2label", f"label {key_id} must be a string, got {files.json_type(label)}")
            labels[key_id] = str(label)
        if len(labels) != len(id2label):  # "1" and "01" both name id 1
            fail("id2label", "names some id twice")
        n = raw.get("num_labels")
        if n is not None and n != len(labels):
            fail("num_labels", f"= {files.excerpt(n)} disagrees with id2label, which has {len(labels)} labels")
        return dict(sorted(labels.items()))
    n = raw.get("num_labels", 2)
    if files.integer(n, 1, MAX_LABELS) is None:
        fail("num_labels", f"must be an integer from 1 to {MAX_LABELS}, got {files.excerpt(n)}")
    return {i: f"LABEL_{i}" for i in range(n)}


def _label_id(key) -> int | None:
    """An id2label key ("3") or a label2id value (3 or "3") as an int from 0 to MAX_INDEX, else None."""
    if isinstance(key, str) and 0 < len(key) <= 10 and key.isascii() and key.isdigit():
        key = int(key)
    return files.integer(key)


def _label_ids(label2id, fail) -> dict:
    """label2id with int ids, as the pipelines read it."""
    if not isinstance(label2id, dict):
        fail("label2id", f"must be an object mapping labels to ids, got {files.json_type(label2id)}")
    if len(label2id) > MAX_LABELS:
        fail("label2id", f"has {len(label2id)} labels; bertnp reads at most {MAX_LABELS}")
    ids = {label: _label_id(i) for label, i in label2id.items()}
    bad = next((label for label, i in ids.items() if i is None), None)
    if bad is not None:
        fail("label2id", f"maps {files.excerpt(bad)} to {files.excerpt(label2id[bad])}, not an id from 0 to "
                         f"{files.MAX_INDEX}")
    return ids
