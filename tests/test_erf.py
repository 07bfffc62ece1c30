"""bertnp.erf (fdlibm's erf on arrays) against the C library's erf through math.erf."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bertnp.erf import erf


def ulps(got, want):
    return np.abs(got - want) / np.spacing(np.abs(want).clip(np.finfo(np.float64).tiny))


def test_erf_dense_sweep_within_one_ulp():
    x = np.concatenate([np.linspace(-7, 7, 400_001), np.geomspace(1e-300, 1e-3, 2000), [0.0, 6.0, -6.0]])
    want = np.array([math.erf(v) for v in x])
    error = ulps(erf(x), want).max()
    assert error <= 1.0, f"max error {error} ulp"


@settings(max_examples=200, deadline=None)
@given(arrays(np.float64, st.integers(1, 64), elements=st.floats(-1e6, 1e6, allow_nan=False)))
def test_erf_random_within_one_ulp(x):
    want = np.array([math.erf(v) for v in x])
    assert ulps(erf(x), want).max() <= 1.0


def test_erf_special_values_and_dtypes():
    assert np.array_equal(erf(np.array([np.inf, -np.inf, 0.0])), [1.0, -1.0, 0.0])
    assert np.isnan(erf(np.array([np.nan]))).all()
    assert erf(np.float32([0.5])).dtype == np.float32
