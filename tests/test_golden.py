"""Committed golden outputs from transformers: these run without torch installed.

weights/tiny: a 2-layer classifier with its own tokenizer (made by weights/make_tiny.py, transformers 5).
weights/relative: relative_key and relative_key_query models (weights/make_relative_goldens.py, transformers
4.57, since transformers 5 silently ignores these position embedding types): two fixed ones, and random ones
with left padding, masks with holes, a row without real tokens and up to 512 tokens.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from conftest import WEIGHTS
from parity import compare_outputs, compared_positions, summary

import bertnp

TINY = os.path.join(WEIGHTS, "tiny")
RELATIVE = os.path.join(WEIGHTS, "relative")
RELATIVE_GOLDENS = sorted(name for name in os.listdir(RELATIVE) if os.path.isdir(os.path.join(RELATIVE, name)))
DTYPES = [np.float32, np.float64]
BACKENDS = ["numpy", "numba"]


def reference(golden, prefix: str) -> dict:
    ref = {name: golden[prefix + name] for name in ("last_hidden_state", "pooler_output")}
    if prefix + "logits" in golden:
        ref["logits"] = golden[prefix + "logits"]
    if prefix + "hidden_states" in golden:  # long sequences keep only the last state and the pooler
        ref["hidden_states"] = list(golden[prefix + "hidden_states"])
        ref["attentions"] = list(golden[prefix + "attentions"])
    return ref


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", ["single", "pair"])
def test_tiny_classifier_matches_golden(batch, dtype, backend):
    golden = np.load(os.path.join(TINY, "golden.npz"))
    texts = json.load(open(os.path.join(TINY, "golden_texts.json"), encoding="utf-8"))
    model = bertnp.load(TINY, dtype=dtype.__name__, backend=backend)
    enc = model.tokenize(texts[batch], max_length=texts["max_length"])
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        np.testing.assert_array_equal(enc[name], golden[f"{batch}_{name}"], err_msg=f"tokenizer: {name}")
    out = model(**enc, output_hidden_states=True, output_attentions=True)
    keep = compared_positions(enc["attention_mask"], dtype, backend)
    compare_outputs(out, reference(golden, f"{batch}_{dtype.__name__}_"), keep, dtype, claim="tiny")
    assert model.labels == ["World", "Sports", "Business"]


def test_tiny_predictions_have_varied_labels():
    """The golden weights were drawn so that labels differ between texts: a label-order bug would show."""
    golden = np.load(os.path.join(TINY, "golden.npz"))
    texts = json.load(open(os.path.join(TINY, "golden_texts.json"), encoding="utf-8"))
    model = bertnp.load(TINY)
    logits = model.predict(texts["single"], max_length=texts["max_length"], batch_size=4)
    np.testing.assert_array_equal(logits.argmax(1), golden["single_float32_logits"].argmax(1))
    assert len(set(logits.argmax(1))) > 1


def test_relative_goldens_cover_what_they_claim():
    """The random goldens hold left padding, holes, a row without real tokens and 512 tokens; every golden
    says which transformers made it (4.57: transformers 5 ignores relative positions)."""
    rows = []
    for name in RELATIVE_GOLDENS:
        golden = np.load(os.path.join(RELATIVE, name, "golden.npz"))
        assert str(golden["made_with"]).startswith("transformers 4.57."), f"{name}: made with {golden['made_with']}"
        rows.extend(golden["attention_mask"])
    assert {"relative_key", "relative_key_query", "random-0"} <= set(RELATIVE_GOLDENS)
    real = [np.flatnonzero(row) for row in rows]
    assert any(len(r) and r[0] > 0 and r[-1] == len(row) - 1 for r, row in zip(real, rows)), "no left padding"
    assert any(len(r) and r[-1] - r[0] + 1 > len(r) for r in real), "no mask with holes"
    assert any(not len(r) for r in real), "no row without real tokens"
    assert max(len(row) for row in rows) == 512


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", RELATIVE_GOLDENS)
def test_relative_position_models_match_transformers_4(name, dtype, backend):
    folder = os.path.join(RELATIVE, name)
    golden = np.load(os.path.join(folder, "golden.npz"))
    model = bertnp.load(folder, dtype=dtype.__name__, backend=backend)
    assert model.config.position_embedding_type in ("relative_key", "relative_key_query")
    assert model.tokenizer is None  # no tokenizer files: the model still loads
    enc = {key: golden[key] for key in ("input_ids", "attention_mask", "token_type_ids")}
    out = model(**enc, output_hidden_states=True, output_attentions=True)
    keep = compared_positions(enc["attention_mask"], dtype, backend)
    errors = compare_outputs(out, reference(golden, f"{dtype.__name__}_"), keep, dtype, claim="relative")
    print(f"{name} ({model.config.position_embedding_type}, B,T={enc['input_ids'].shape}) {backend} "
          f"{dtype.__name__}: {summary(errors)}")


def test_missing_tokenizer_loads_but_tokenize_explains():
    model = bertnp.load(os.path.join(WEIGHTS, "relative", "relative_key"))
    with pytest.raises(bertnp.TokenizerError, match="no tokenizer.json or vocab.txt"):
        model.tokenize(["hello"])
