"""Deterministic mode: a text's outputs are bit-identical whatever its batch, position, padding and threads.

Texts run up to 512 tokens, so that the fast path's GEMMs span several row blocks and its kernels run on
Numba's threads (from 128 tokens on). CI runs this module again with the other OpenBLAS kernels (AVX2
"Haswell" ones, whose sums depend on GEMM height and thread count, and the default ones) and at 1 and 2
threads: each setting must give bit-identical outputs within itself.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from texts import TEXTS

import bertnp

LONG = TEXTS[8]  # 60 sentences: truncated at 512 tokens
POOL = [t for t in TEXTS if t] + [
    "the", "a b c", "Stocks fell.", "One more sentence to vary the lengths a bit.",
    " ".join(TEXTS[9].split()[:9] * 14),  # about 130 tokens
    " ".join(LONG.split()[:230]),  # about 300 tokens
]


@pytest.fixture(scope="module", params=["numpy", "numba"])
def model(request, minilm_path):
    return bertnp.load(minilm_path, backend=request.param, deterministic=True)


def alone(model, text):
    enc = model.tokenize([text], max_length=512)
    out = model(**enc, output_hidden_states=True)
    return out.last_hidden_state[0], out.hidden_states[3][0], out.pooler_output[0]


def test_pool_spans_short_to_512_tokens(model):
    lengths = [len(ids) for ids, _ in model.encode_each(POOL, 512)]
    assert min(lengths) <= 5 and any(128 <= n < 200 for n in lengths) and any(256 < n < 512 for n in lengths)
    assert max(lengths) == 512


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_outputs_do_not_depend_on_the_batch(model, data):
    others = data.draw(st.lists(st.sampled_from(POOL), min_size=1, max_size=4), label="batch")
    text = data.draw(st.sampled_from(POOL), label="text")
    position = data.draw(st.integers(0, len(others)), label="position")
    extra_padding = data.draw(st.integers(0, 7), label="extra padding")
    batch = others[:position] + [text] + others[position:]
    enc = model.tokenize(batch, max_length=512)
    if enc["input_ids"].shape[1] + extra_padding <= 512:
        for name in enc:  # pad further than the longest text
            enc[name] = np.pad(enc[name], ((0, 0), (0, extra_padding)))
    out = model(**enc, output_hidden_states=True)
    want_last, want_mid, want_pooled = alone(model, text)
    n = want_last.shape[0]
    assert np.array_equal(out.last_hidden_state[position, :n], want_last)
    assert np.array_equal(out.hidden_states[3][position, :n], want_mid)
    assert np.array_equal(out.pooler_output[position], want_pooled)
    assert not out.last_hidden_state[position, n:].any()  # past its length: zeros


@contextlib.contextmanager
def threads(numba_threads, blas_threads):
    """bertnp's kernel threads and BLAS's threads, for the block."""
    import numba
    import threadpoolctl

    from bertnp import kernels

    before = kernels.threads()
    kernels.set_threads(min(numba_threads, numba.config.NUMBA_NUM_THREADS))
    try:
        with threadpoolctl.threadpool_limits(blas_threads, user_api="blas"):
            yield
    finally:
        kernels.set_threads(before)


def test_outputs_do_not_depend_on_thread_counts(model):
    enc = model.tokenize([POOL[0], POOL[-1], LONG, POOL[-2], "Hello"], max_length=512)
    runs = {}
    for numba_threads in (1, 2):
        for blas_threads in (1, 2):
            with threads(numba_threads, blas_threads):
                out = model(**enc, output_hidden_states=True)
            runs[numba_threads, blas_threads] = (out.last_hidden_state, out.hidden_states[2], out.pooler_output)
    reference = runs[1, 1]
    for setting, outputs in runs.items():
        for name, got, want in zip(("last_hidden_state", "hidden_states[2]", "pooler_output"), outputs, reference):
            error = float(np.abs(got.astype(np.float64) - want).max())
            assert np.array_equal(got, want), f"{name}: {setting} (numba, BLAS) threads differ from (1, 1) by {error:.2e}"


def test_embeddings_are_batch_invariant(minilm_path):
    embedder = bertnp.Embedder(minilm_path, deterministic=True)
    together = embedder.embed(POOL, batch_size=4)
    for i, text in enumerate(POOL):
        assert np.array_equal(embedder.embed([text])[0], together[i]), text
