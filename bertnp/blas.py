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
_libraries = None  # threadpoolctl's controllers of the BLAS libraries loaded in the process

# A process that forks while a limit is on would leave its child with one BLAS thread and a lock that no
# thread of the child will ever release: fork waits for the limit to end instead.
forks.hold_across_fork(LOCK)


@contextlib.contextmanager
def single_threaded():
    """Every BLAS call in this block runs on its calling thread; other bertnp limits wait for the block.

    The fast path enters this on every forward pass, so it talks to the libraries directly: threadpoolctl's
    own limit context costs about 60 us, this about 10. The libraries are those loaded at the first call
    (NumPy's BLAS among them)."""
    global _libraries
    with LOCK:
        if _libraries is None:
            from threadpoolctl import ThreadpoolController  # on first use: it inspects every loaded library

            _libraries = ThreadpoolController().select(user_api="blas").lib_controllers
        before = [library.get_num_threads() for library in _libraries]
        for library, threads in zip(_libraries, before):
            if threads != 1:
                library.set_num_threads(1)
        try:
            yield
        finally:
            for library, threads in zip(_libraries, before):
                if threads != 1:
                    library.set_num_threads(threads)
