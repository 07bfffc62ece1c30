"""Fast versions of bertnp's ops, installed as bertnp.kernels: Numba kernels (cpu.py), GEMMs on packed
weights (packed.py, gemm.py), and the team of helper threads that shares a forward pass's work (team.py).

Importing this package picks Numba's threading layer and reads BERTNP_NUM_THREADS, before any parallel
kernel runs.

Threads. bertnp.fast runs neither BLAS nor Numba's threads: with n threads, the calling thread and n - 1
helpers of kernels.team share each GEMM and each attention in blocks; the helpers spin while a forward
pass runs, linger a few ms, then sleep until the next (team.py says why and what it measured). The row
kernels of cpu.py can still run on Numba's threads when a caller passes parallel=True; for those we pick
the workqueue layer, built into every Numba, whose threads sleep on a condition variable (an explicit
NUMBA_THREADING_LAYER still wins): OpenMP's spin after each kernel, and spinning pools starve each other
on a machine with as many threads as cores (one 16-token MiniLM text took 203 ms instead of 5 on 2 cores
with OpenMP and OpenBLAS). One number sets everything: `set_threads` (or BERTNP_NUM_THREADS).

One caller at a time: a team serves one forward pass at a time, and workqueue aborts the whole process
("Concurrent access has been detected") when two Python threads launch parallel kernels at once. So
bertnp.fast runs each forward pass under LAUNCH_LOCK; anyone else calling these kernels from several
threads must take it too. One forward at a time loses little: each already keeps every core busy.
"""

from __future__ import annotations

import os
import threading

import numba

from bertnp import forks
from bertnp.errors import BertnpError

THREADING_LAYER = "workqueue"
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = THREADING_LAYER
LAUNCH_LOCK = threading.Lock()  # held while kernels run: workqueue must never see two launching threads
# fork waits for a forward pass in flight, so that the child's lock is free and its threads' state whole
forks.hold_across_fork(LAUNCH_LOCK, outer=True)  # a forward pass takes it before bertnp.blas.LOCK


_threads = numba.config.NUMBA_NUM_THREADS  # set_threads; bertnp.fast runs every forward pass on this many


def set_threads(n: int) -> None:
    """Run bertnp on n threads, in every Python thread of the process: the fast path's (the caller and
    n - 1 helpers of kernels.team), Numba's for parallel kernels (which numba.set_num_threads sets for the
    calling Python thread only) and BLAS's for the reference path (process-wide, through threadpoolctl).
    """
    global _threads
    limit = numba.config.NUMBA_NUM_THREADS
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= limit:
        raise BertnpError(f"threads={n!r}: expected an integer from 1 to NUMBA_NUM_THREADS={limit}")
    _threads = n
    numba.set_num_threads(n)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n, user_api="blas")


def threads() -> int:
    """The thread count set_threads (or BERTNP_NUM_THREADS) chose; NUMBA_NUM_THREADS (all cores) by default."""
    return _threads


def _threads_from_environment() -> None:
    value = os.environ.get("BERTNP_NUM_THREADS", "").strip()
    if not value:
        return
    try:
        set_threads(int(value))
    except (ValueError, BertnpError) as e:
        raise BertnpError(f"BERTNP_NUM_THREADS={value!r}: expected an integer from 1 to NUMBA_NUM_THREADS="
                          f"{numba.config.NUMBA_NUM_THREADS} ({e})") from None


_threads_from_environment()
