"""The GPU backend. Its array-module code runs here with NumPy (CI has no GPU); the CuPy kernels and the
backend itself are tested in tests/test_gpu_device.py, which skips itself without a GPU."""

from __future__ import annotations

import os

import numpy as np
import pytest

from conftest import WEIGHTS
from parity import assert_close

import bertnp
from bertnp import backends, gpu, model

TINY = os.path.join(WEIGHTS, "tiny")


@pytest.mark.parametrize("dtype,atol", [(np.float32, 2e-6), (np.float64, 1e-13)])
@pytest.mark.parametrize("folder", ["tiny", "minilm", "relative_key"])
def test_gpu_forward_with_numpy_equals_the_reference(folder, dtype, atol, minilm_path):
    path = {"tiny": TINY, "minilm": minilm_path, "relative_key": os.path.join(WEIGHTS, "relative", "relative_key")}[folder]
    reference = bertnp.load(path, dtype=dtype.__name__, backend="numpy")
    if reference.tokenizer is None:
        enc = {"input_ids": np.array([[2, 5, 7, 9], [3, 4, 0, 0]]), "attention_mask": np.array([[1, 1, 1, 1], [1, 1, 0, 0]]),
               "token_type_ids": np.zeros((2, 4), np.int64)}
    else:
        enc = reference.tokenize(["the team won the game on sunday", "hello", ("who won", "the team")])
    want = reference(**enc, output_hidden_states=True, output_attentions=True)
    weights = gpu.prepare(reference.weights, np)
    got = gpu.forward(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"], weights, reference.config,
                      np, gpu.NumpyOps(np), output_hidden_states=True, output_attentions=True)
    assert_close("last_hidden_state", got.last_hidden_state, want.last_hidden_state, atol)
    assert_close("pooler_output", got.pooler_output, want.pooler_output, atol)
    for i, (a, b) in enumerate(zip(got.attentions, want.attentions)):
        assert_close(f"attentions[{i}]", a, b, atol)
    if want.logits is not None:
        assert_close("logits", got.logits, want.logits, atol)


def test_cupy_backend_is_never_chosen_by_default_and_fails_clearly(monkeypatch):
    monkeypatch.delenv("BERTNP_BACKEND", raising=False)
    assert backends.choose(None) in ("numba", "numpy")
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed here; the missing-CuPy message cannot be shown")
    except ImportError:
        pass
    with pytest.raises(bertnp.BertnpError, match=r"backend='cupy' needs CuPy: pip install 'bertnp\[gpu\]'"):
        bertnp.load(TINY, backend="cupy")
    with pytest.raises(bertnp.BertnpError, match="options of backend='cupy'"):
        bertnp.load(TINY, backend="numpy", allow_tf32=True)


def test_kernel_sources_name_their_twins():
    from bertnp.kernels import gpu as kernels

    assert set(kernels.ACTIVATION_CODE) == set(model.ACTIVATIONS)
    assert "Twin: model.layer_norm" in kernels.SOURCE and "Twin: model.softmax" in kernels.SOURCE
