"""The GPU backend. Its array-module code runs here with NumPy (CI has no GPU); the CuPy kernels and the
backend itself are tested in tests/test_gpu_device.py, which skips itself without a GPU."""

from __future__ import annotations

import os

import numpy as np
import pytest

from conftest import WEIGHTS
from parity import compare_outputs, compared_positions, summary
from texts import TEXTS

import bertnp
from bertnp import backends, gpu, model

TINY = os.path.join(WEIGHTS, "tiny")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("folder", ["tiny", "minilm"])  # relative models run model.bert itself on the GPU
def test_gpu_forward_with_numpy_equals_the_reference(folder, dtype, minilm_path):
    """Not bit-equal: gpu.forward runs Q, K and V as one [B*T, 3H] GEMM, the reference as three, and BLAS
    rounds GEMMs of other shapes differently (OpenBLAS's AVX2 kernels do; its AVX-512 ones happen not to on
    MiniLM). float32 at real tokens only, as every float32 comparison: padded states are ill-conditioned
    (on MiniLM with AVX2 kernels 3e-5 apart here, against 3e-6 at real tokens)."""
    path = {"tiny": TINY, "minilm": minilm_path}[folder]
    reference = bertnp.load(path, dtype=dtype.__name__, backend="numpy")
    if reference.tokenizer is None:
        enc = {"input_ids": np.array([[2, 5, 7, 9], [3, 4, 0, 0]]), "attention_mask": np.array([[1, 1, 1, 1], [1, 1, 0, 0]]),
               "token_type_ids": np.zeros((2, 4), np.int64)}
    else:
        enc = reference.tokenize(TEXTS + [("who won", "the team")], max_length=64)
    want = reference(**enc, output_hidden_states=True, output_attentions=True)
    weights = gpu.prepare(reference.weights, np)
    got = gpu.forward(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"], weights, reference.config,
                      np, gpu.NumpyOps(np), output_hidden_states=True, output_attentions=True)
    keep = compared_positions(enc["attention_mask"], dtype, backend="numpy")
    ref = {"last_hidden_state": want.last_hidden_state, "pooler_output": want.pooler_output, "logits": want.logits,
           "hidden_states": want.hidden_states, "attentions": want.attentions}
    errors = compare_outputs(got, ref, keep, dtype, claim="gpu_numpy")
    print(f"{folder} {np.dtype(dtype).name} gpu.forward(xp=numpy) vs reference: {summary(errors)}")


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


def test_gpu_forward_skips_the_pooler_only_where_no_classifier_reads_it(minilm_path):
    for path, kept in ((minilm_path, False), (TINY, True)):  # MiniLM: a bare encoder; tiny: a classifier
        reference = bertnp.load(path, backend="numpy")
        enc = {"input_ids": np.array([[2, 5, 7, 9], [3, 4, 0, 0]]), "attention_mask": np.array([[1, 1, 1, 1], [1, 1, 0, 0]]),
               "token_type_ids": np.zeros((2, 4), np.int64)}
        weights = gpu.prepare(reference.weights, np)
        full, lean = (gpu.forward(*enc.values(), weights, reference.config, np, gpu.NumpyOps(np), pooler_output=p)
                      for p in (True, False))
        assert (lean.pooler_output is not None) == kept and full.pooler_output is not None
        np.testing.assert_array_equal(lean.last_hidden_state, full.last_hidden_state)
        np.testing.assert_array_equal(lean.logits, full.logits)
