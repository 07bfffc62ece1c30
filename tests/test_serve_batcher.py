"""The serve batcher through its plain-Python API, without HTTP: the queue limit, requests sharing a
forward pass and each getting its own rows, cancelled work never running, a too-long text failing only its
own request, stop() finishing what is queued, and the idle worker's wait for company."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from conftest import WEIGHTS, require
from parity import assert_close
from texts import PAIRS, TEXTS

require("fastapi")  # bertnp.serve imports its HTTP layer too: the serve extra

import bertnp  # noqa: E402
from bertnp.serve import Batcher, Overloaded, ServedModel, Stopped  # noqa: E402
from bertnp.serve.metrics import Metrics  # noqa: E402

TINY = os.path.join(WEIGHTS, "tiny")
TEXTS = [t for t in TEXTS if t]  # the servers refuse empty texts
# Every model here is backend="numba" (with backend=None, calls could fall on both sides of the hand-over
# from the reference path). A text's float32 result may then still depend on what else is in its forward
# pass, where BLAS sums rows of other heights differently (README: "Not bit-identical"); measured max 0
# (AVX2 and AVX-512 kernels, 1 and 2 threads), and 1.8e-7 with backend=None.
ATOL = 1e-6


def results(jobs, timeout=60):
    return [job.future.result(timeout) for job in jobs]


def test_queue_limit_refuses_beyond_max_queue_then_serves():
    served = ServedModel(TINY, backend="numba")
    batcher = Batcher(served, max_queue=5)
    first = batcher.submit(TEXTS[:3], served.predict_limit)
    with pytest.raises(Overloaded) as refused:
        batcher.submit(TEXTS[3:6], served.predict_limit)
    assert (refused.value.queued, refused.value.count, refused.value.limit) == (3, 3, 5)
    second = batcher.submit(TEXTS[3:5], served.predict_limit)  # exactly fills it
    assert batcher.queued == 5
    batcher.start()
    try:
        got = results([first, second])
    finally:
        batcher.stop()
    assert batcher.queued == 0
    assert_close("logits", np.concatenate(got), served.model.predict(TEXTS[:5]), ATOL)


@pytest.mark.parametrize("max_batch_tokens", [16384, 40])
def test_requests_share_forward_passes_and_get_their_own_rows(minilm_path, max_batch_tokens):
    """Ten requests queued before the worker starts: with a large budget one forward pass holds them all;
    with 40 tokens they are split (a long text alone, a request over several passes). Every request gets
    the rows of its own texts, equal to Embedder.embed of them."""
    served, metrics = ServedModel(minilm_path, backend="numba"), Metrics()
    batcher = Batcher(served, max_batch_tokens=max_batch_tokens, metrics=metrics)
    requests = [TEXTS[i : i + 1 + i % 3] for i in range(len(TEXTS))]
    jobs = [batcher.submit(texts, served.embed_limit) for texts in requests]
    batcher.start()
    try:
        got = results(jobs)
    finally:
        batcher.stop()
    offline = bertnp.Embedder(served.model)
    for texts, rows, job in zip(requests, got, jobs):
        assert_close(f"request {texts[0][:20]!r}", served.embeddings(rows, None, None), offline.embed(texts),
                     ATOL)
        assert job.tokens == sum(len(ids) for ids, _ in offline.model.encode_each(texts, offline.max_length))
    batches = metrics.batch_requests
    if max_batch_tokens == 16384:
        assert batches.count == 1 and batches.sum == len(requests), "every request in one forward pass"
    else:
        assert batches.count > len(requests) // 2, f"{batches.count} forward passes for a 40-token budget"
        assert metrics.batch_tokens.sum == sum(job.tokens for job in jobs)
    assert metrics.batch_texts.sum == sum(len(t) for t in requests)


def test_cancelled_request_never_runs():
    served, metrics = ServedModel(TINY, backend="numba"), Metrics()
    batcher = Batcher(served, metrics=metrics)
    kept = batcher.submit(TEXTS[:2], served.predict_limit)
    dropped = batcher.submit(TEXTS[2:6], served.predict_limit)
    assert batcher.cancel(dropped) == 4 and batcher.cancel(dropped) == 0
    assert batcher.queued == 2
    batcher.start()
    try:
        rows = kept.future.result(60)
    finally:
        batcher.stop()
    assert rows.shape == (2, 3) and not dropped.future.done()
    assert metrics.dropped_texts == 4 and metrics.batch_texts.sum == 2


def test_a_text_too_long_fails_only_its_request():
    served = ServedModel(TINY, backend="numba")
    batcher = Batcher(served)
    long_one = batcher.submit([TEXTS[0], TEXTS[-1] * 3], 16, truncate=False)
    fine = batcher.submit([TEXTS[-1] * 3], 16, truncate=True)
    pairs = batcher.submit(PAIRS, served.predict_limit)
    batcher.start()
    try:
        with pytest.raises(bertnp.InputError, match=r"inputs\[1\] is longer than the model's 16 tokens"):
            long_one.future.result(60)
        assert fine.future.result(60).shape == (1, 3)
        assert_close("pair logits", pairs.future.result(60), served.model.predict(PAIRS), ATOL)
    finally:
        batcher.stop()


def test_stop_finishes_queued_work_then_refuses_new():
    served = ServedModel(TINY, backend="numba")
    batcher = Batcher(served, max_batch_tokens=32)
    jobs = [batcher.submit(TEXTS[i : i + 2], served.predict_limit) for i in range(6)]
    batcher.start()
    batcher.stop(timeout=60)
    assert all(job.future.done() and job.future.exception() is None for job in jobs)
    with pytest.raises(Stopped):
        batcher.submit(TEXTS[:1], served.predict_limit)


def test_idle_worker_waits_up_to_max_wait_for_company():
    served, metrics = ServedModel(TINY, backend="numba"), Metrics()
    batcher = Batcher(served, max_wait_ms=1000, metrics=metrics)
    batcher.start()
    try:
        first = batcher.submit(TEXTS[:1], served.predict_limit)
        time.sleep(0.1)
        second = batcher.submit(TEXTS[1:3], served.predict_limit)
        results([first, second])
    finally:
        batcher.stop()
    assert (metrics.batch_requests.count, metrics.batch_texts.sum) == (1, 3), "both requests in one forward pass"
    assert metrics.queue_seconds.sum >= 0.9, "the first request waited for the second"


def test_max_batch_requests_1_runs_each_request_alone():
    served, metrics = ServedModel(TINY, backend="numba"), Metrics()
    batcher = Batcher(served, metrics=metrics, max_batch_requests=1)
    jobs = [batcher.submit(TEXTS[i : i + 3], served.predict_limit) for i in range(4)]
    batcher.start()
    try:
        got = results(jobs)
    finally:
        batcher.stop()
    assert (metrics.batch_requests.count, metrics.batch_requests.sum, metrics.batch_texts.sum) == (4, 4, 12)
    for i, rows in enumerate(got):
        assert_close(f"request {i}", rows, served.model.predict(TEXTS[i : i + 3]), ATOL)
