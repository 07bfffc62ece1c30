"""Fast versions of bertnp's ops (Numba on CPU), installed as bertnp.kernels.

Importing this package picks Numba's threading layer and reads BERTNP_NUM_THREADS; the kernels live in
bertnp.kernels.cpu. Both must happen before the first parallel kernel runs, so they happen here.

Threading layer. A forward pass alternates BLAS GEMMs (OpenBLAS's own pthreads) with Numba's parallel
kernels. Numba's OpenMP layer keeps its threads spinning after each kernel, and OpenBLAS's threads spin
after each GEMM: on a 2-core machine the two pools then wait on each other's spinning, and one 16-token
MiniLM text took 203 ms instead of 5. The workqueue layer, built into every Numba, parks its threads on a
condition variable instead, so we pick it. An explicit NUMBA_THREADING_LAYER still wins.

workqueue has one limit: it aborts the whole process ("Concurrent access has been detected") when two
Python threads launch parallel kernels at the same time (Numba releases the GIL inside a parallel
region). bertnp.fast therefore runs each forward pass under LAUNCH_LOCK; anyone else calling these
kernels from several threads must take it too. One forward at a time loses little: each already keeps
every core busy.
"""

from __future__ import annotations

import os
import threading

import numba

from bertnp.errors import BertnpError

THREADING_LAYER = "workqueue"
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = THREADING_LAYER
LAUNCH_LOCK = threading.Lock()  # held while kernels run: workqueue must never see two launching threads


def set_threads(n: int) -> None:
    """Run Numba's kernels on n threads and, when threadpoolctl is installed, BLAS GEMMs on n threads too.

    Numba's count applies to the calling Python thread (numba.set_num_threads is thread-local); the BLAS
    count applies to the whole process.
    """
    limit = numba.config.NUMBA_NUM_THREADS
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= limit:
        raise BertnpError(f"threads={n!r}: expected an integer from 1 to NUMBA_NUM_THREADS={limit}")
    numba.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(limits=n, user_api="blas")


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
