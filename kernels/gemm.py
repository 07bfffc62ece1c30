"""GEMMs for the fast path: NumPy's `@` (BLAS) on 2-D contiguous arrays, split into row blocks by us.

Why not let OpenBLAS thread its own GEMMs? After each GEMM its worker threads keep spinning, waiting for
the next one. On a machine with as many threads as cores, the Numba kernel that follows then shares its
cores with them and runs 1.6-2x slower (measured on 2 cores: GELU over 4096 x 1536 values takes 3.1 ms
after a pause, 5.0 ms right after a GEMM, still 4.8 ms 20 ms later). So for a large batch bertnp.fast
runs BLAS single-threaded (bertnp.blas.single_threaded) and `matmul` splits each GEMM into row blocks,
one per thread, on Python threads that sleep between GEMMs (MiniLM, 32 x 128 tokens: 49 -> 60 texts/s).
A small batch keeps BLAS's own threads: its kernels run on the calling thread, beside the spinning.

Deterministic mode needs more: a row's result must not depend on the thread count, and with some BLAS
kernels it depends on the height of the GEMM it is computed in. `matmul(..., block_rows=R)` therefore
cuts the rows into blocks of R (the last one shorter) whatever the thread count, and deals the blocks
out to the threads: every row then goes through a GEMM of the same height on one BLAS thread.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_executor: ThreadPoolExecutor | None = None
_executor_threads = 0


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray, threads: int, block_rows: int | None = None) -> np.ndarray:
    """out = a @ b, the rows of a (and out) cut into blocks that BLAS computes concurrently on `threads`
    threads: one block per thread, or blocks of block_rows rows (a height independent of `threads`).

    a [R, K] and out [R, N] C-contiguous, so every block is a contiguous 2-D GEMM. The calling thread
    computes the first share. Not reentrant: bertnp.fast calls it under kernels.LAUNCH_LOCK.
    """
    rows = a.shape[0]
    if block_rows is not None:
        blocks = [(lo, min(lo + block_rows, rows)) for lo in range(0, rows, block_rows)]
        shares = [blocks[len(blocks) * i // threads : len(blocks) * (i + 1) // threads] for i in range(threads)]
        shares = [share for share in shares if share]
        if not shares:  # no rows
            return out
    elif threads <= 1 or rows < 2 * threads:
        return np.matmul(a, b, out=out)
    else:
        bounds = [rows * i // threads for i in range(threads + 1)]
        shares = [[(lo, hi)] for lo, hi in zip(bounds, bounds[1:])]

    def run(share):
        for lo, hi in share:
            np.matmul(a[lo:hi], b, out=out[lo:hi])

    pending = [_pool(len(shares) - 1).submit(run, share) for share in shares[1:]] if len(shares) > 1 else []
    run(shares[0])
    for share in pending:
        share.result()
    return out


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
