"""BertConfig: the fields of a Hugging Face BERT config.json that change the arithmetic.

Mirrors transformers' `BertConfig` (configuration_bert.py) for the encoder-only models bertnp runs.
Everything bertnp cannot run (a decoder, cross-attention, an unknown activation) is refused here, at
load time, by field name. Every field is type- and range-checked here too, before anything is sized by
it (bertnp.files has the loading contract).
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

    @property
    def head_size(self) -> int:  # D = H / N
        return self.hidden_size // self.num_attention_heads

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
        heads = integer("num_attention_heads")
        if hidden % heads:
            fail("num_attention_heads", f"= {heads} does not divide hidden_size = {hidden}")

        act = choice("hidden_act", raw.get("hidden_act", "gelu"), ACTIVATIONS)
        pet = choice("position_embedding_type", raw.get("position_embedding_type") or "absolute",
                     POSITION_EMBEDDING_TYPES)
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

        return cls(
            vocab_size=integer("vocab_size"),
            hidden_size=hidden,
            num_hidden_layers=integer("num_hidden_layers"),
            num_attention_heads=heads,
            intermediate_size=integer("intermediate_size"),
            hidden_act=act,
            layer_norm_eps=eps,
            max_position_embeddings=integer("max_position_embeddings", 512),
            type_vocab_size=integer("type_vocab_size", 2),
            position_embedding_type=pet,
            pad_token_id=integer("pad_token_id", 0, minimum=0) if raw.get("pad_token_id") is not None else 0,
            id2label=id2label,
            label2id=label2id,
            problem_type=problem,
            architectures=tuple(architectures),
            source=source,
            tie_word_embeddings=tied is not False,
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
