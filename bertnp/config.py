"""BertConfig: the fields of a Hugging Face BERT config.json that change the arithmetic.

Mirrors transformers' `BertConfig` (configuration_bert.py) for the encoder-only models bertnp runs.
Everything bertnp cannot run (a decoder, cross-attention, an unknown activation) is refused here, at
load time, by field name.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from .errors import ConfigError

ACTIVATIONS = ("gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "relu", "silu", "swish", "quick_gelu")
POSITION_EMBEDDING_TYPES = ("absolute", "relative_key", "relative_key_query")
PROBLEM_TYPES = ("single_label_classification", "multi_label_classification", "regression")
REQUIRED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")


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
            with open(path, encoding="utf-8") as f:
                raw = json.load(f)
        except FileNotFoundError:
            raise ConfigError(f"{path}: no config.json; a BERT checkpoint folder needs one") from None
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
            raise ConfigError(f"{path}: not valid JSON ({type(e).__name__}: {e})") from None
        except OSError as e:
            raise ConfigError(f"{path}: unreadable ({e})") from None
        return cls.from_dict(raw, source=path)

    @classmethod
    def from_dict(cls, raw: dict, source: str = "<dict>") -> "BertConfig":
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(raw).__name__}")

        def fail(name, why):
            raise ConfigError(f"{source}: field '{name}' {why}")

        for name in ("is_decoder", "add_cross_attention"):
            if raw.get(name):
                fail(name, "is true; bertnp runs encoder-only BERT (no decoder, no cross-attention)")
        for name in REQUIRED:
            if name not in raw:
                fail(name, "is missing")

        def integer(name, default=None, minimum=1):
            value = raw.get(name, default)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                fail(name, f"must be an integer >= {minimum}, got {value!r}")
            return value

        hidden = integer("hidden_size")
        heads = integer("num_attention_heads")
        if hidden % heads:
            fail("num_attention_heads", f"= {heads} does not divide hidden_size = {hidden}")

        act = raw.get("hidden_act", "gelu")
        if act not in ACTIVATIONS:
            fail("hidden_act", f"= {act!r} is not supported; expected one of {', '.join(ACTIVATIONS)}")
        pet = raw.get("position_embedding_type") or "absolute"
        if pet not in POSITION_EMBEDDING_TYPES:
            fail("position_embedding_type", f"= {pet!r}; expected one of {', '.join(POSITION_EMBEDDING_TYPES)}")
        problem = raw.get("problem_type")
        if problem is not None and problem not in PROBLEM_TYPES:
            fail("problem_type", f"= {problem!r}; expected one of {', '.join(PROBLEM_TYPES)}")
        eps = raw.get("layer_norm_eps", 1e-12)
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            fail("layer_norm_eps", f"must be a positive number, got {eps!r}")

        id2label = _labels(raw, fail)
        label2id = raw.get("label2id") or {label: i for i, label in id2label.items()}
        if not isinstance(label2id, dict):
            fail("label2id", f"must be an object mapping labels to ids, got {type(label2id).__name__}")
        architectures = raw.get("architectures") or ()
        if not isinstance(architectures, (list, tuple)):
            fail("architectures", f"must be a list, got {architectures!r}")

        return cls(
            vocab_size=integer("vocab_size"),
            hidden_size=hidden,
            num_hidden_layers=integer("num_hidden_layers"),
            num_attention_heads=heads,
            intermediate_size=integer("intermediate_size"),
            hidden_act=act,
            layer_norm_eps=float(eps),
            max_position_embeddings=integer("max_position_embeddings", 512),
            type_vocab_size=integer("type_vocab_size", 2),
            position_embedding_type=pet,
            pad_token_id=integer("pad_token_id", 0, minimum=0) if raw.get("pad_token_id") is not None else 0,
            id2label=id2label,
            label2id=dict(label2id),
            problem_type=problem,
            architectures=tuple(architectures),
            source=source,
        )


def _labels(raw: dict, fail) -> dict:
    """id2label with int keys in index order; num_labels alone gives LABEL_0..LABEL_{n-1} as transformers does."""
    id2label = raw.get("id2label")
    if id2label is not None:
        if not isinstance(id2label, dict):
            fail("id2label", f"must be an object mapping ids to labels, got {type(id2label).__name__}")
        try:
            labels = {int(k): str(v) for k, v in id2label.items()}
        except (TypeError, ValueError):
            fail("id2label", f"has keys that are not integers: {list(id2label)[:5]}")
        if sorted(labels) != list(range(len(labels))):
            fail("id2label", f"ids must be 0..n-1, got {sorted(labels)}")
        n = raw.get("num_labels")
        if n is not None and n != len(labels):
            fail("num_labels", f"= {n} disagrees with id2label, which has {len(labels)} labels")
        return dict(sorted(labels.items()))
    n = raw.get("num_labels", 2)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        fail("num_labels", f"must be an integer >= 1, got {n!r}")
    return {i: f"LABEL_{i}" for i in range(n)}
