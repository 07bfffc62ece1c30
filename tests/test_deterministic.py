"""Deterministic mode: a text's outputs are bit-identical whatever its batch, position, padding and threads."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from texts import TEXTS

import bertnp

POOL = [t for t in TEXTS if t] + ["the", "a b c", "Stocks fell.", "One more sentence to vary the lengths a bit."]


@pytest.fixture(scope="module", params=["numpy", "numba"])
def model(request, minilm_path):
    return bertnp.load(minilm_path, backend=request.param, deterministic=True)


def alone(model, text):
    enc = model.tokenize([text], max_length=64)
    out = model(**enc, output_hidden_states=True)
    return out.last_hidden_state[0], out.hidden_states[3][0], out.pooler_output[0]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_outputs_do_not_depend_on_the_batch(model, data):
    others = data.draw(st.lists(st.sampled_from(POOL), min_size=1, max_size=6), label="batch")
    text = data.draw(st.sampled_from(POOL), label="text")
    position = data.draw(st.integers(0, len(others)), label="position")
    extra_padding = data.draw(st.integers(0, 7), label="extra padding")
    batch = others[:position] + [text] + others[position:]
    enc = model.tokenize(batch, max_length=64)
    for name in enc:  # pad further than the longest text
        enc[name] = np.pad(enc[name], ((0, 0), (0, extra_padding)))
    out = model(**enc, output_hidden_states=True)
    want_last, want_mid, want_pooled = alone(model, text)
    n = want_last.shape[0]
    assert np.array_equal(out.last_hidden_state[position, :n], want_last)
    assert np.array_equal(out.hidden_states[3][position, :n], want_mid)
    assert np.array_equal(out.pooler_output[position], want_pooled)
    assert not out.last_hidden_state[position, n:].any()  # past its length: zeros


def test_outputs_do_not_depend_on_thread_counts(model):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    batch = POOL[:6]
    enc = model.tokenize(batch, max_length=64)
    reference = model(**enc).last_hidden_state
    with threadpoolctl.threadpool_limits(1):
        single = model(**enc).last_hidden_state
    assert np.array_equal(single, reference)
    if model.backend.name == "numba":
        import numba

        before = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            assert np.array_equal(model(**enc).last_hidden_state, reference)
        finally:
            numba.set_num_threads(before)


def test_embeddings_are_batch_invariant(minilm_path):
    embedder = bertnp.Embedder(minilm_path, deterministic=True)
    together = embedder.embed(POOL, batch_size=4)
    for i, text in enumerate(POOL):
        assert np.array_equal(embedder.embed([text])[0], together[i]), text
