"""GEMMs for the fast path: NumPy's `@` (BLAS) on 2-D contiguous arrays, split into row blocks by us.

bertnp.fast runs BLAS single-threaded (bertnp.blas.single_threaded) and threads GEMMs itself. Why not let
OpenBLAS thread them? Its threads split each GEMM into fixed shares and, between GEMMs, spin waiting for
the next one:
  - on a busy machine (other processes on every core) a GEMM waits for its slowest share, whose thread
    the OS may not run for a whole time slice: one 16-token MiniLM text took 153 ms at p95 beside two
    CPU-bound processes, and the reference path (which keeps BLAS's threads) 660 ms per forward pass;
  - on an idle machine the spinning threads share their cores with the Numba kernel that follows: GELU
    over 4096 x 1536 values took 3.1 ms after a pause, 5.0 ms right after a GEMM.
So `matmul` cuts a large GEMM into row blocks that Python threads, sleeping between GEMMs, take one at a
time along with the calling thread; the caller never waits for a thread that has not started (MiniLM,
32 x 128 tokens: 49 -> 60 texts/s against BLAS's threads). A small batch runs on the calling thread alone.

Deterministic mode needs more: a row's result must not depend on the thread count, and with some BLAS
kernels it depends on the height of the GEMM it is computed in. `matmul(..., block_rows=R)` therefore
cuts the rows into blocks of R (the last one shorter) whatever the thread count: every row then goes
through a GEMM of the same height on one BLAS thread.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_executor: ThreadPoolExecutor | None = None
_executor_threads = 0


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray, threads: int, block_rows: int | None = None) -> np.ndarray:
    """out = a @ b, the rows of a (and out) cut into blocks that BLAS computes on up to `threads` threads:
    2 blocks per thread, or blocks of block_rows rows (a height that does not depend on `threads`).

    a [R, K] and out [R, N] C-contiguous, so every block is a contiguous 2-D GEMM. The calling thread takes
    blocks too, and waits only for blocks a helper has begun: on a machine whose other cores are busy, a
    helper that the OS has not scheduled yet costs nothing (its blocks go to the caller), where a fixed
    share per thread would keep the caller waiting for it. Not reentrant: bertnp.fast calls it under
    kernels.LAUNCH_LOCK.
    """
    rows = a.shape[0]
    if block_rows is None:
        if threads <= 1 or rows < 2 * threads:
            return np.matmul(a, b, out=out)
        count = 2 * threads
        bounds = [rows * i // count for i in range(count + 1)]
    else:
        bounds = list(range(0, rows, block_rows)) + [rows]
    blocks = _Blocks(a, b, out, list(zip(bounds, bounds[1:])))
    if threads > 1 and len(blocks.bounds) > 1:
        pool = _pool(threads - 1)
        for _ in range(min(threads - 1, len(blocks.bounds) - 1)):
            pool.submit(blocks.work)
    blocks.work()
    blocks.wait()
    return out


class _Blocks:
    """One GEMM's row blocks, taken in order by whichever thread asks next."""

    def __init__(self, a, b, out, bounds):
        self.a, self.b, self.out, self.bounds = a, b, out, bounds
        self.taken = self.finished = 0
        self.changed = threading.Condition(threading.Lock())

    def work(self):
        while True:
            with self.changed:
                if self.taken == len(self.bounds):
                    return
                lo, hi = self.bounds[self.taken]
                self.taken += 1
            np.matmul(self.a[lo:hi], self.b, out=self.out[lo:hi])  # BLAS runs without the GIL
            with self.changed:
                self.finished += 1
                self.changed.notify_all()

    def wait(self):
        """Until every block taken is finished (the caller has taken the rest: all are taken)."""
        with self.changed:
            while self.finished < self.taken:
                self.changed.wait()


def _pool(helpers: int) -> ThreadPoolExecutor:
    global _executor, _executor_threads
    if _executor is None or _executor_threads < helpers:
        if _executor is not None:
            _executor.shutdown(wait=True)
        _executor, _executor_threads = ThreadPoolExecutor(helpers, thread_name_prefix="bertnp-gemm"), helpers
    return _executor


def _forget_pool_after_fork() -> None:
    """A forked child inherits the executor object but none of its threads: work submitted to it would
    wait forever (gunicorn --preload, multiprocessing's fork, Celery prefork). The child starts its own."""
    global _executor, _executor_threads
    _executor, _executor_threads = None, 0


os.register_at_fork(after_in_child=_forget_pool_after_fork)
