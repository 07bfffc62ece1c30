"""Random checkpoints of many shapes: bertnp against transformers, every output, float32 and float64."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import require
from parity import compare_outputs

import bertnp

ACTS = ["gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "relu", "silu", "swish", "quick_gelu"]
PROBLEMS = [None, "single_label_classification", "multi_label_classification", "regression"]


@st.composite
def configs(draw):
    heads = draw(st.sampled_from([1, 2, 3, 4]))
    config = dict(
        vocab_size=draw(st.integers(20, 120)),
        hidden_size=heads * draw(st.integers(2, 12)),
        num_hidden_layers=draw(st.integers(1, 3)),
        num_attention_heads=heads,
        intermediate_size=draw(st.integers(3, 67)),
        hidden_act=draw(st.sampled_from(ACTS)),
        max_position_embeddings=draw(st.integers(16, 40)),
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


@st.composite
def batches(draw, config):
    """Random ids with random padding; pairs get token type 1 on their second segment."""
    B = draw(st.integers(1, 4))
    T = draw(st.integers(1, min(16, config["max_position_embeddings"])))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, config["vocab_size"], (B, T))
    lengths = rng.integers(1, T + 1, B)
    lengths[0] = T  # the longest sets T, as tokenizer padding does
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.int64)
    types = np.zeros((B, T), np.int64)
    if config["type_vocab_size"] > 1 and draw(st.booleans()):  # pairs
        split = rng.integers(0, T + 1, B)
        types = ((np.arange(T)[None, :] >= split[:, None]) & (mask == 1)).astype(np.int64)
    ids = np.where(mask == 1, ids, 0)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_checkpoints_match_transformers(data):
    require("torch")
    from torch_ref import make_checkpoint, run_torch

    config = data.draw(configs(), label="config")
    enc = data.draw(batches(config), label="batch")
    seed = data.draw(st.integers(0, 1000), label="seed")
    with tempfile.TemporaryDirectory() as folder:
        make_checkpoint(folder, config, seed)
        for dtype in (np.float32, np.float64):
            ref = run_torch(folder, enc, dtype)
            for backend in ("numpy", "numba"):
                model = bertnp.load(folder, dtype=dtype.__name__, backend=backend)
                out = model(**enc, output_hidden_states=True, output_attentions=True)
                compare_outputs(out, ref, enc["attention_mask"], dtype,
                                real_tokens_only=not (backend == "numpy" and dtype == np.float64))
                assert out.last_hidden_state.dtype == dtype
            if "num_labels" in config:
                assert out.logits.shape == (enc["input_ids"].shape[0], config["num_labels"])
                assert model.labels == [f"LABEL_{i}" for i in range(config["num_labels"])]


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
            compare_outputs(out, run_torch(folder, enc, np.float32), enc["attention_mask"], np.float32)


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
        compare_outputs(out, ref, enc["attention_mask"], dtype, real_tokens_only=False)
