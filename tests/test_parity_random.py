"""Random checkpoints of many shapes against transformers itself, every output, float32 and float64, both backends:
right and left padding, masks with holes, rows without real tokens, and sequences up to 512 tokens.

Relative position embeddings are covered by tests/test_golden.py (transformers 5 ignores them)."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import require
from parity import compare_outputs, compared_positions, summary

import bertnp

ACTS = ["gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "relu", "silu", "swish", "quick_gelu"]
PROBLEMS = [None, "single_label_classification", "multi_label_classification", "regression"]


@st.composite
def configs(draw, min_positions: int = 16):
    """A BertConfig dict; max_position_embeddings >= min_positions (the batch's length)."""
    heads = draw(st.sampled_from([1, 2, 3, 4]))
    config = dict(
        vocab_size=draw(st.integers(20, 120)),
        # H >= 4: over 2 features LayerNorm is +-1 (a sign), so ill-conditioned where the two are close
        hidden_size=heads * draw(st.integers(max(2, 4 // heads), 12)),
        num_hidden_layers=draw(st.integers(1, 3)),
        num_attention_heads=heads,
        intermediate_size=draw(st.integers(3, 67)),
        hidden_act=draw(st.sampled_from(ACTS)),
        max_position_embeddings=draw(st.integers(max(16, min_positions), max(16, min_positions) + 24)),
        type_vocab_size=draw(st.integers(1, 3)),
        layer_norm_eps=draw(st.sampled_from([1e-12, 1e-5])),
    )
    if draw(st.booleans()):
        config["num_labels"] = draw(st.integers(1, 9))
        problem = draw(st.sampled_from(PROBLEMS))
        if problem == "single_label_classification" and config["num_labels"] == 1:
            problem = "regression"  # transformers refuses single-label with one output
        if problem:
            config["problem_type"] = problem
    return config


ROWS = ["right", "right", "left", "left", "holes", "holes", "full", "empty"]  # "empty": no real token


def mask_row(kind: str, T: int, rng) -> np.ndarray:
    """One row of an attention mask: right or left padding, holes (zeros between ones), full or empty."""
    row = np.zeros(T, np.int64)
    n = int(rng.integers(1, T + 1))
    if kind == "full":
        row[:] = 1
    elif kind == "right":
        row[:n] = 1
    elif kind == "left":
        row[T - n:] = 1
    elif kind == "holes":  # a span whose ends are real tokens, with zeros inside
        start = int(rng.integers(0, T - n + 1))
        row[start:start + n] = rng.random(n) < 0.6
        row[start] = row[start + n - 1] = 1
    return row


@st.composite
def batches(draw, config, T: int, B: int):
    """Random ids and token types under a mask whose rows mix the kinds of ROWS."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kinds = draw(st.lists(st.sampled_from(ROWS), min_size=B, max_size=B))
    mask = np.stack([mask_row(kind, T, rng) for kind in kinds])
    ids = np.where(mask == 1, rng.integers(0, config["vocab_size"], (B, T)), 0)
    types = np.zeros((B, T), np.int64)
    if config["type_vocab_size"] > 1 and draw(st.booleans()):  # pairs: type 1 on the second segment
        split = rng.integers(0, T + 1, B)
        types = ((np.arange(T)[None, :] >= split[:, None]) & (mask == 1)).astype(np.int64)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def check_against_transformers(config: dict, enc: dict, seed: int) -> None:
    """Both backends, float32 and float64, every output, at the positions that each path computes."""
    from torch_ref import make_checkpoint, run_torch

    with tempfile.TemporaryDirectory() as folder:
        make_checkpoint(folder, config, seed)
        for dtype in (np.float32, np.float64):
            ref = run_torch(folder, enc, dtype)
            for backend in ("numpy", "numba"):
                model = bertnp.load(folder, dtype=dtype.__name__, backend=backend)
                out = model(**enc, output_hidden_states=True, output_attentions=True)
                keep = compared_positions(enc["attention_mask"], dtype, backend)
                errors = compare_outputs(out, ref, keep, dtype, claim="random")
                print(f"{backend} {dtype.__name__} B,T={enc['input_ids'].shape}: {summary(errors)}")
                assert out.last_hidden_state.dtype == dtype
            if "num_labels" in config:
                assert out.logits.shape == (enc["input_ids"].shape[0], config["num_labels"])
                assert model.labels == [f"LABEL_{i}" for i in range(config["num_labels"])]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_checkpoints_match_transformers(data):
    require("torch")
    B, T = data.draw(st.integers(1, 4), label="B"), data.draw(st.integers(1, 24), label="T")
    config = data.draw(configs(min_positions=T), label="config")
    enc = data.draw(batches(config, T, B), label="batch")
    check_against_transformers(config, enc, data.draw(st.integers(0, 1000), label="seed"))


@pytest.mark.parametrize("T", [512, 300])
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_long_sequences_match_transformers(T, data):
    """Up to BERT's 512 positions: softmax over hundreds of keys, position embeddings deep in the table."""
    require("torch")
    config = data.draw(configs(min_positions=T), label="config")
    enc = data.draw(batches(config, T, data.draw(st.integers(1, 2), label="B")), label="batch")
    check_against_transformers(config, enc, data.draw(st.integers(0, 1000), label="seed"))


def test_checkpoint_without_pooler_gives_none():
    require("torch")
    from torch_ref import make_checkpoint, run_torch

    config = dict(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=11)
    enc = {"input_ids": np.array([[1, 2, 3]]), "attention_mask": np.ones((1, 3), np.int64),
           "token_type_ids": np.zeros((1, 3), np.int64)}
    with tempfile.TemporaryDirectory() as folder:
        make_checkpoint(folder, config, seed=1, with_pooler=False)
        for backend in ("numpy", "numba"):
            out = bertnp.load(folder, backend=backend)(**enc, output_hidden_states=True, output_attentions=True)
            assert out.pooler_output is None and out.logits is None
            compare_outputs(out, run_torch(folder, enc, np.float32), enc["attention_mask"], np.float32,
                            claim="random")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fully_masked_row_is_finite_and_matches(dtype):
    require("torch")
    from torch_ref import make_checkpoint, run_torch

    config = dict(vocab_size=30, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=11)
    enc = {"input_ids": np.array([[1, 2, 3], [4, 5, 6]]), "attention_mask": np.array([[1, 1, 0], [0, 0, 0]]),
           "token_type_ids": np.zeros((2, 3), np.int64)}
    with tempfile.TemporaryDirectory() as folder:
        make_checkpoint(folder, config, seed=2)
        out = bertnp.load(folder, dtype=dtype.__name__, backend="numpy")(**enc, output_hidden_states=True,
                                                                          output_attentions=True)
        assert np.isfinite(out.last_hidden_state).all()
        ref = run_torch(folder, enc, dtype)
        compare_outputs(out, ref, enc["attention_mask"], dtype, real_tokens_only=False, claim="random")
