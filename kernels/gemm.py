"""GEMMs for the fast path on weights packed by kernels.packed, split into blocks of rows by us.

Neither BLAS nor its threads run in bertnp.fast. kernels.packed says why its GEMM beats BLAS's on BERT's
shapes; and OpenBLAS's threads split each GEMM into fixed shares and, between GEMMs, spin waiting for the
next one:
  - on a busy machine (other processes on every core) a GEMM waits for its slowest share, whose thread
    the OS may not run for a whole time slice: one 16-token MiniLM text took 153 ms at p95 beside two
    CPU-bound processes, and the reference path (which keeps BLAS's threads) 660 ms per forward pass;
  - on an idle machine the spinning threads share their cores with the Numba kernel that follows: GELU
    over 4096 x 1536 values took 3.1 ms after a pause, 5.0 ms right after a GEMM.
So `matmul` cuts a large GEMM into blocks of rows that Python threads, sleeping between GEMMs, take one at a
time along with the calling thread (kernels.packed runs without the GIL); the caller never waits for a
thread that has not started. A small batch runs on the calling thread alone. A row's result does not
depend on the block it falls in (kernels.packed), so the split never changes a result.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import cpu, packed

_executor: ThreadPoolExecutor | None = None
_executor_threads = 0


SPLIT_ROWS = 64  # from this many rows, blocks of rows; below, blocks of panels (each thread streams its own weights)
MIN_SPLIT_WORK = 16_000_000  # multiply-adds below which one thread does it all (a helper takes ~20 us to wake)
TEAM_MIN_WORK = 1_000_000  # the same with a spinning team: one 16-token text's GEMMs (2.4M to 9.4M) are split
ROWS_PER_BLOCK = 192  # a team's blocks of rows: small enough that the caller and helpers finish together


def matmul(a: np.ndarray, panels: np.ndarray, out: np.ndarray, threads: int, team=None, bias=None, activation=None,
           residual=None, gamma=None, beta=None, eps=0.0) -> np.ndarray:
    """out = a @ w, w packed by kernels.packed.pack, cut into 2 blocks per thread that up to `threads`
    threads compute: blocks of rows for a large a, blocks of output panels for a few rows (then each thread
    reads only its share of the weights, which is what bounds a GEMM of few rows).

    With a kernels.team.Team (bertnp.fast keeps one spinning during a forward pass), its helpers take the
    blocks, from TEAM_MIN_WORK multiply-adds: they start within a microsecond, where this module's pool
    takes a wake-up (up to 200 us on a virtual machine) for each GEMM.

    With bias (and activation, or residual, gamma, beta and eps), the row kernel that follows the GEMM in
    BERT runs on its output: kernels.cpu.bias_activation or bias_residual_layer_norm (Team.matmul says
    how), on each block of rows as the team computes it.

    a [R, K] and out [R, N] C-contiguous. The calling thread takes blocks too, and waits only for blocks a
    helper has begun: on a machine whose other cores are busy, a helper that the OS has not scheduled yet
    costs nothing (its blocks go to the caller), where a fixed share per thread would keep the caller
    waiting for it. Not reentrant: bertnp.fast calls it under kernels.LAUNCH_LOCK.
    """
    rows, inner = a.shape
    P = panels.shape[0]
    work = rows * inner * P * panels.shape[2]
    if team is not None and threads > 1 and work >= TEAM_MIN_WORK:
        by_rows = rows >= SPLIT_ROWS
        count = min(max(2 * threads, -(-rows // ROWS_PER_BLOCK)), rows) if by_rows else min(2 * threads, P)
        return team.matmul(a, panels, out, count, by_rows, bias, activation, residual, gamma, beta, eps)
    if threads <= 1 or work < MIN_SPLIT_WORK:
        packed.matmul(a, panels, out)
    else:
        _split(a, panels, out, threads)
    if bias is not None and residual is None:
        cpu.bias_activation(out, bias, activation, False)
    elif bias is not None:
        cpu.bias_residual_layer_norm(out, bias, residual, gamma, beta, eps, False)
    return out


def _split(a, panels, out, threads):
    """out = a @ w in blocks that this module's pool and the caller share."""
    rows, P = a.shape[0], panels.shape[0]
    count = 2 * threads
    if rows >= SPLIT_ROWS:
        bounds = [rows * i // count for i in range(count + 1)]
        blocks = [(lo, hi, 0, P) for lo, hi in zip(bounds, bounds[1:])]
    else:
        count = min(count, P)
        bounds = [P * i // count for i in range(count + 1)]
        blocks = [(0, rows, lo, hi) for lo, hi in zip(bounds, bounds[1:])]
    work = _Blocks(a, panels, out, blocks)
    pool = _pool(threads - 1)
    for _ in range(min(threads - 1, len(blocks) - 1)):
        pool.submit(work.run)
    work.run()
    work.wait()
    return out


class _Blocks:
    """One GEMM's blocks, (first row, last row, first panel, last panel), taken in order by whichever
    thread asks next."""

    def __init__(self, a, panels, out, blocks):
        self.a, self.panels, self.out, self.bounds = a, panels, out, blocks
        self.taken = self.finished = 0
        self.changed = threading.Condition(threading.Lock())

    def run(self):
        while True:
            with self.changed:
                if self.taken == len(self.bounds):
                    return
                block = self.bounds[self.taken]
                self.taken += 1
            packed.matmul_block(self.a, self.panels, self.out, *block)  # without the GIL
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
