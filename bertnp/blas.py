"""BLAS threads: the one process-wide setting bertnp changes, and the lock that keeps changes from crossing.

OpenBLAS splits a GEMM between its threads, and with some kernels (the AVX2 "Haswell" ones, which every
AVX2-only CPU gets) the sums a row goes through then depend on the thread count and on the GEMM's height.
A result that must not depend on them (deterministic mode) runs its GEMMs on one BLAS thread, at heights
that depend on the text alone. The fast path also runs BLAS on one thread for large batches, for speed
(bertnp.kernels.gemm says why).

threadpoolctl sets the count for the whole process, and a limit is undone by restoring what it found. Two
threads whose limits overlap without nesting could therefore restore each other's counts in the wrong
order; LOCK makes every bertnp limit nest. (Code outside bertnp that changes BLAS threads while a
deterministic forward runs can still change its result.)
"""

from __future__ import annotations

import contextlib
import threading

from . import forks

LOCK = threading.RLock()  # held while bertnp runs BLAS single-threaded
_controller = None

# A process that forks while a limit is on would leave its child with one BLAS thread and a lock that no
# thread of the child will ever release: fork waits for the limit to end instead.
forks.hold_across_fork(LOCK)


@contextlib.contextmanager
def single_threaded():
    """Every BLAS call in this block runs on its calling thread; other bertnp limits wait for the block."""
    global _controller
    with LOCK:
        if _controller is None:
            from threadpoolctl import ThreadpoolController  # imported on first use: it inspects every loaded library

            _controller = ThreadpoolController()
        with _controller.limit(limits=1, user_api="blas"):
            yield
