"""kernels.team: helper threads that spin during a forward pass. Every job they share gives what the same
kernels give on one thread, bit for bit, including when the machine is busy and a helper is descheduled
for milliseconds in the middle of a job (a race of that kind once let a late helper claim a block of one
job with the fields of another: bertnp/kernels/team.py says how claims prevent it)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time

import numpy as np
import pytest

from bertnp.kernels import cpu, packed, team

ACTIVATIONS = sorted(cpu.ACTIVATION_CODES.values())


def gemm_job(rng, dtype):
    """A random GEMM, its epilogue, and how to split it; (arguments of Team.matmul, the serial result)."""
    rows, inner, columns = int(rng.integers(1, 300)), int(rng.integers(1, 80)), int(rng.integers(1, 100))
    a = rng.standard_normal((rows, inner)).astype(dtype)
    panels = packed.pack(rng.standard_normal((inner, columns)).astype(dtype))
    by_rows = bool(rng.integers(0, 2))
    count = int(rng.integers(1, (rows if by_rows else panels.shape[0]) + 1))
    bias = rng.standard_normal(columns).astype(dtype)
    epilogue = int(rng.integers(0, 3))
    want = packed.matmul(a, panels, np.empty((rows, columns), dtype))
    kwargs = {}
    if epilogue == 1:
        kwargs = {"bias": bias, "activation": int(rng.choice(ACTIVATIONS))}
        cpu.bias_activation(want, bias, kwargs["activation"], False)
    elif epilogue == 2:
        residual = rng.standard_normal((rows, columns)).astype(dtype)
        gamma, beta = rng.standard_normal(columns).astype(dtype), rng.standard_normal(columns).astype(dtype)
        kwargs = {"bias": bias, "residual": residual.copy(), "gamma": gamma, "beta": beta, "eps": 1e-5}
        cpu.bias_residual_layer_norm(want, bias, residual, gamma, beta, 1e-5, False)
        want = residual  # the LayerNorm's output lands in the residual stream
    return (a, panels, np.empty((rows, columns), dtype), count, by_rows), kwargs, want


def attention_job(rng, dtype):
    """Random attention over a random batch; (arguments of Team.attention, serial context and probs)."""
    B, T, N, D = int(rng.integers(1, 5)), int(rng.integers(1, 40)), int(rng.integers(1, 4)), int(rng.integers(1, 9))
    mask = rng.integers(0, 2, (B, T))
    mask[:, 0] = 1
    token_index, seq_start, key_start, uniform = cpu.pack(mask)
    M, H = token_index.size, N * D
    qkv = rng.standard_normal((M, 3 * H)).astype(dtype)
    bias = rng.standard_normal(3 * H).astype(dtype)
    distance = np.zeros((1, D), dtype)
    write = bool(rng.integers(0, 2))
    context = np.empty((M, H), dtype)
    probs = np.zeros((B, N, T, T) if write else (1, 1, 1, 1), dtype)
    cpu.attention(qkv, bias, seq_start, key_start, uniform, token_index, T, N, distance, 0, context, probs, write,
                  False)
    count = int(rng.integers(1, B * N + 1))
    args = (count, qkv, bias, seq_start, key_start, uniform, token_index, T, N, distance, 0,
            np.empty((M, H), dtype), np.zeros_like(probs), write)
    return args, context, probs


@contextlib.contextmanager
def busy_machine():
    """Two processes that keep every core of a 2-core machine busy: helpers get descheduled mid-job."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(0.3)
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_jobs_equal_one_thread_bit_for_bit_on_a_busy_machine(dtype):
    rng = np.random.default_rng(0)
    team.warm_up(dtype)  # compiled (or loaded) before the machine gets busy
    crew = team.Team(1)  # one helper, whatever the cores: on one core it is descheduled all the time
    with busy_machine():
        try:
            exercise(crew, rng, dtype)
        finally:
            crew.stop()


def exercise(crew, rng, dtype):
    """300 or more random jobs, each against the same kernels on one thread."""
    deadline = time.monotonic() + 60
    while crew.control[team.HELPED] == 0:  # until the helper has woken and loaded its compiled loop
        assert crew.threads[0].is_alive(), "the helper died"  # an exception in it ends its thread
        assert time.monotonic() < deadline, "the helper never took a block"
        crew.unpark()  # again: a helper that saw no job for a while (this thread compiling) parked itself
        args, kwargs, _ = gemm_job(rng, dtype)
        crew.matmul(*args, **kwargs)
    helped = crew.control[team.HELPED]
    jobs, deadline = 0, time.monotonic() + 60
    # 300 jobs, and more until the helper has run 50 blocks of them: the OS may run the helper on the caller's
    # core for a while (the two background processes on the other), and then it finds a job open only when
    # the caller is descheduled in the middle of one (measured: all of 300 jobs in 0.1 s, none helped)
    while jobs < 300 or (crew.control[team.HELPED] - helped < 50 and time.monotonic() < deadline):
        jobs += 1
        crew.unpark()  # as bertnp.fast does before each forward pass
        if rng.integers(0, 2):
            args, kwargs, want = gemm_job(rng, dtype)
            out = crew.matmul(*args, **kwargs)
            got = kwargs["residual"] if "residual" in kwargs else out
            assert np.array_equal(got, want), f"GEMM {args[0].shape} {args[2].shape} {kwargs.keys()}"
        else:
            args, context, probs = attention_job(rng, dtype)
            crew.attention(*args)
            assert np.array_equal(args[11], context) and np.array_equal(args[12], probs)
    crew.park()
    assert crew.threads[0].is_alive(), "the helper died"  # an exception in it would end its thread
    assert crew.control[team.HELPED] - helped >= 50, \
        f"the helper ran {crew.control[team.HELPED] - helped} blocks of {jobs} jobs in 60 s: the test proves little"


def test_helpers_sleep_between_forward_passes(minilm_path, monkeypatch):
    import bertnp
    from bertnp import kernels

    monkeypatch.setattr(kernels, "threads", lambda: 2)
    model = bertnp.load(minilm_path, backend="numba")
    vectors = model.embed(["a text to embed"])
    crew = team._team
    assert crew is not None and crew.control[team.ACTIVE] == 0
    deadline = time.monotonic() + 5  # they linger for LINGER spins (a few ms), then sleep
    while crew.control[team.PARK] == 0:
        assert time.monotonic() < deadline, "the helpers still spin 5 s after the call returned"
        time.sleep(0.001)
    assert all(thread.is_alive() for thread in crew.threads)
    monkeypatch.setattr(kernels, "threads", lambda: 1)  # no team: the same numbers
    assert np.array_equal(model.embed(["a text to embed"]), vectors)


def test_a_plan_replays_on_other_buffers_as_the_team_runs_its_jobs(minilm_path, monkeypatch):
    """bertnp.fast records a forward pass's layers once per shape (a kernels.team.Plan) and replays them on
    later calls' buffers: other texts of the same shape give what one thread gives them, bit for bit."""
    import bertnp
    from bertnp import kernels

    model = bertnp.load(minilm_path, backend="numba")
    model.backend.wait()
    plans = model.backend.weights.plans
    same_shape = [["the cat sat on the mat"], ["a dog ran in the park"], ["one two three four five six"]]
    monkeypatch.setattr(kernels, "threads", lambda: 1)  # no team, no plan
    want = [model.embed(texts) for texts in same_shape]
    monkeypatch.setattr(kernels, "threads", lambda: 2)
    before = len(plans)
    got = [model.embed(texts) for texts in same_shape]
    assert len(plans) == before + 1, f"three calls of one shape recorded {len(plans) - before} plans"
    for texts, g, w in zip(same_shape, got, want):
        assert np.array_equal(g, w), f"{texts}: max abs diff {np.abs(g - w).max():.2e} from one thread"


def test_a_plan_refuses_an_array_it_cannot_replay():
    """A plan replays addresses: an array that is neither one of the call's buffers nor read-only (so not a
    weight) could change or vanish between calls."""
    out, loose = np.empty((2, 2), np.float32), np.ones((2, 2), np.float32)
    panels = packed.pack(np.ones((2, 2), np.float32))
    with pytest.raises(ValueError, match="neither a buffer nor read-only"):
        team.Plan(0, (out,)).matmul(loose, panels, out, 1, True)
