"""What bertnp does around fork(), so that a model loaded before it works in every child (gunicorn
--preload, multiprocessing's "fork" start, Celery prefork).

A child inherits every lock in the state it was in, and only the thread that forked: a lock held by
another thread stays held forever, and a preparation under way on another thread never ends. So before
fork, bertnp finishes what is under way or pending (`wait_before_fork`: the background preparation of the fast path),
then takes its locks in their usual order (`hold_across_fork`), so that no forward pass is in flight;
both processes release them after. One hook does it all, in that order: hooks registered separately run
in reverse order of import, which would take the locks before waiting for a preparation that needs them.

Python runs before-fork hooks in reverse order of registration, so ours must come after those of modules
whose locks a preparation takes: logging (Numba's compiler logs) and concurrent.futures (kernels.gemm's
pool) take their module locks before fork. They are imported here, before our hook is registered.
"""

from __future__ import annotations

import concurrent.futures.thread  # noqa: F401  (its before-fork hook must run after ours: see above)
import logging  # noqa: F401
import os

_waits: list = []  # callables, each waiting for something under way
_locks: list = []  # acquired in this order before fork, released after


def wait_before_fork(wait) -> None:
    _waits.append(wait)


def hold_across_fork(lock, outer: bool = False) -> None:
    """Take `lock` before fork and release it after: after the locks registered before it, or before all
    of them if `outer` (a lock that code takes before the others, as a forward pass takes
    kernels.LAUNCH_LOCK before bertnp.blas.LOCK: fork must take them in the same order)."""
    _locks.insert(0, lock) if outer else _locks.append(lock)


def _before():
    for wait in list(_waits):
        wait()
    for lock in _locks:
        lock.acquire()


def _after():
    for lock in reversed(_locks):
        lock.release()


os.register_at_fork(before=_before, after_in_parent=_after, after_in_child=_after)
