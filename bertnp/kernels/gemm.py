"""GEMMs for the fast path on weights packed by kernels.packed: on the calling thread, or in blocks shared
with a kernels.team.Team, each followed by the row kernel that comes after it in BERT.

Neither BLAS nor its threads run in bertnp.fast. kernels.packed says why its GEMM beats BLAS's on BERT's
shapes; and OpenBLAS's threads split each GEMM into fixed shares and, between GEMMs, spin waiting for the
next one:
  - on a busy machine (other processes on every core) a GEMM waits for its slowest share, whose thread
    the OS may not run for a whole time slice: one 16-token MiniLM text took 153 ms at p95 beside two
    CPU-bound processes, and the reference path (which keeps BLAS's threads) 660 ms per forward pass;
  - on an idle machine the spinning threads share their cores with the Numba kernel that follows: GELU
    over 4096 x 1536 values took 3.1 ms after a pause, 5.0 ms right after a GEMM.
A team's helpers spin only while bertnp.fast runs a forward pass, and take blocks as they come: the caller
never waits for a helper that has not begun one (kernels.team). A row's result does not depend on the
block it falls in (kernels.packed), so the split never changes a result.
"""

from __future__ import annotations

import numpy as np

from . import cpu, packed
from .team import Plan

SPLIT_ROWS = 64  # from this many rows, blocks of rows; below, blocks of panels (each thread streams its own weights)
TEAM_MIN_WORK = 1_000_000  # multiply-adds below which the caller does it all: one 16-token text's GEMMs (2.4M
#   to 9.4M) are split; its pooler's (0.15M) is not
ROWS_PER_BLOCK = 48  # a team's blocks of rows (whole groups of packed.GROUP): small, so that the caller and
#   helpers finish together even when the OS slows one down. On 2 Zen 3 cores (AVX2) GEMMs of 640 rows ran at 114-127
#   GFLOP/s in 4 blocks of 160 rows, 123-146 in 14 of 48; each block streams the weights once, 24 flops a byte


def matmul(a: np.ndarray, panels: np.ndarray, out: np.ndarray, team=None, bias=None, activation=None,
           residual=None, gamma=None, beta=None, eps=0.0) -> np.ndarray:
    """out = a @ w, w packed by kernels.packed.pack. a [R, K] and out [R, N] C-contiguous.

    With a kernels.team.Team (bertnp.fast unparks one for each forward pass), from TEAM_MIN_WORK
    multiply-adds, in blocks that its helpers and the caller claim: blocks of rows for a large a, blocks
    of output panels for a few rows (then each thread reads only its share of the weights, which is what
    bounds a GEMM of few rows). Otherwise on the calling thread. A kernels.team.Plan records the jobs such
    a team would run, below TEAM_MIN_WORK too (one block).

    With bias (and activation, or residual, gamma, beta and eps), the row kernel that follows the GEMM in
    BERT runs on its output: kernels.cpu.bias_activation (out = activation(out + bias)) or
    bias_residual_layer_norm (residual = LayerNorm(out + bias + residual)), on each block of rows as the
    team computes it. Not reentrant: bertnp.fast calls it under kernels.LAUNCH_LOCK.
    """
    rows, inner = a.shape
    P = panels.shape[0]
    epilogue = {} if bias is None else {"bias": bias, "activation": activation} if residual is None else \
        {"bias": bias, "residual": residual, "gamma": gamma, "beta": beta, "eps": eps}
    if team is not None and team.helpers and rows * inner * P * panels.shape[2] >= TEAM_MIN_WORK:
        threads = team.helpers + 1
        by_rows = rows >= SPLIT_ROWS
        groups = -(-rows // packed.GROUP)
        count = min(max(2 * threads, -(-rows // ROWS_PER_BLOCK)), groups) if by_rows else min(2 * threads, P)
        return team.matmul(a, panels, out, count, by_rows, **epilogue)
    if isinstance(team, Plan):  # a plan records every GEMM: this one as one block, for whoever claims it
        return team.matmul(a, panels, out, 1, True, **epilogue)
    packed.matmul(a, panels, out)
    if bias is not None and residual is None:
        cpu.bias_activation(out, bias, activation, False)
    elif bias is not None:
        cpu.bias_residual_layer_norm(out, bias, residual, gamma, beta, eps, False)
    return out
