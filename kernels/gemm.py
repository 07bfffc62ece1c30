"""GEMMs for the fast path: NumPy's `@` (BLAS) on 2-D contiguous arrays, split into row blocks by us.

Why not let OpenBLAS thread its own GEMMs? After each GEMM its worker threads keep spinning, waiting for
the next one. On a machine with as many threads as cores, the Numba kernel that follows then shares its
cores with them and runs 1.6-2x slower (measured on 2 cores: GELU over 4096 x 1536 values takes 3.1 ms
after a pause, 5.0 ms right after a GEMM, still 4.8 ms 20 ms later). So for a large batch bertnp.fast
runs BLAS single-threaded (`single_threaded_blas`) and `matmul` splits each GEMM into row blocks, one per
thread, on Python threads that sleep between GEMMs (MiniLM, 32 x 128 tokens: 49 -> 60 texts/s).
A small batch keeps BLAS's own threads: its kernels run on the calling thread, beside the spinning.

Limiting BLAS threads needs threadpoolctl; without it `single_threaded_blas` returns None and
bertnp.fast keeps BLAS's threading, which is correct but slower.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_executor: ThreadPoolExecutor | None = None
_executor_threads = 0
_controller = None


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray, threads: int) -> np.ndarray:
    """out = a @ b, the rows of a (and out) cut into `threads` blocks that BLAS computes concurrently.

    a [R, K] and out [R, N] C-contiguous, so every block is a contiguous 2-D GEMM. The calling thread
    computes the first block. Not reentrant: bertnp.fast calls it under kernels.LAUNCH_LOCK.
    """
    rows = a.shape[0]
    if threads <= 1 or rows < 2 * threads:
        return np.matmul(a, b, out=out)
    bounds = [rows * i // threads for i in range(threads + 1)]
    pending = [_pool(threads - 1).submit(np.matmul, a[lo:hi], b, out=out[lo:hi])
               for lo, hi in zip(bounds[1:-1], bounds[2:])]
    np.matmul(a[: bounds[1]], b, out=out[: bounds[1]])
    for block in pending:
        block.result()
    return out


def _pool(helpers: int) -> ThreadPoolExecutor:
    global _executor, _executor_threads
    if _executor is None or _executor_threads < helpers:
        if _executor is not None:
            _executor.shutdown(wait=True)
        _executor, _executor_threads = ThreadPoolExecutor(helpers, thread_name_prefix="bertnp-gemm"), helpers
    return _executor


def single_threaded_blas() -> contextlib.AbstractContextManager | None:
    """A context in which BLAS runs each call on the calling thread, or None without threadpoolctl."""
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            return None
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")
