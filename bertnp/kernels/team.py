"""A team of helper threads that wait for the fast path's next job by spinning, and sleep between calls.

Why: waking a sleeping thread (a futex) takes 50 to 200 us on a virtual machine, and so does handing the GIL
to a thread that sleeps on it. One 16-token MiniLM text runs 24 GEMMs of 60 to 150 us each, streaming 42 MB
of packed weights: split between two cores with one wake-up per GEMM it took 5.4 ms instead of 3.3 on one
core; with one wake-up per forward pass, 2.1-2.4 ms (the second core brings its own memory bandwidth).
Batches of a few hundred tokens lost a third of the second core the same way. So while bertnp.fast runs a
forward pass (`unpark` ... `release`), the helpers do not sleep: each runs `_serve`, compiled code without
the GIL that spins on the control words until the caller publishes a job, claims blocks of it, and spins
again. After a forward pass they linger for LINGER spins (a few ms), then sleep until the next: a team never
burns a core for long when nobody calls, and calls in a row never wait for a wake-up.

Jobs:
  - a GEMM of kernels.packed, out [M, N] = a [M, K] @ w, in blocks of rows or of weight panels; each block
    of rows is followed at once, while in cache, by the row kernel that comes after the GEMM in BERT
    (kernels.cpu's bias + activation, or bias + residual + LayerNorm);
  - kernels.cpu.attention, in blocks of (sequence, head) pairs.
The caller writes the job's scalars and its arrays' addresses and shapes into `control` (an int64 array),
then publishes it by a release store of its generation: from Python (Team.matmul, Team.attention), or a
recorded Plan's jobs one after another in compiled code (Team.execute), which bertnp.fast uses for the
layers. Blocks are claimed by compare-and-swap on one word,
CLAIM, that holds (generation << 32 | next block), and each claim checks the block against the job's
COUNT. Before writing a new job's fields the caller sets CLAIM to -1, which matches no generation: a helper
still reading the last job (it may be descheduled for milliseconds between two loads) can then never
claim a block with one job's generation and another's fields, and a claim that succeeds proves that every
field read before it belongs to the claimed job (the caller changes fields only after every block of the
job is done). The caller claims blocks too, so no caller ever waits for a helper that is not running: it
waits only for blocks that a helper has claimed (on a busy machine, a descheduled helper costs at most
the block it holds).

Results do not depend on who computes a block: every output row is one fixed-order sum (kernels.packed),
every (sequence, head) one call of kernels.cpu.attend. Not reentrant: one caller at a time (bertnp.fast
holds kernels.LAUNCH_LOCK). Numba caches each file on its own: after editing cpu.py or packed.py, touch
this file too (or clear the cache).
"""

from __future__ import annotations

import os
import platform
import threading

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from . import cpu, packed

SPIN_LIMIT = 2_000_000  # pause instructions without a job before a helper parks itself (~50 ms on Zen 5)
LINGER = 100_000  # the same once the forward pass is over (~2.5 ms on Zen 5, 4 on Skylake): a call that comes
#   sooner finds them awake (one 16-token text: p50 2.1 -> 1.9 ms in a loop of calls), a later one wakes them
X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")

# control words: the job's state, then its scalars, then its arrays (an address and 4 dimensions each)
GENERATION, CLAIM, DONE, PARK, STOP, KIND, FLOAT64, COUNT, BY_ROWS, T, HEADS, RELATIVE, WRITE_PROBS = range(13)
EPILOGUE, ACTIVATION, EPS = 13, 14, 15  # a GEMM's: what runs on each block of rows once computed; eps: float bits
HELPED = 16  # blocks the helpers have run, ever (tests/test_team.py reads it)
ACTIVE = 17  # 1 while a caller runs a forward pass (unpark ... release)
ARRAYS, SLOT = 18, 5  # array i: words ARRAYS + SLOT * i (address), then its shape
WORDS = ARRAYS + SLOT * 10
GEMM, ATTENTION = 0, 1  # kinds of job
NONE, BIAS_ACTIVATION, BIAS_RESIDUAL_NORM = 0, 1, 2  # a GEMM's epilogue: kernels.cpu's row kernels, fused


# ---- atomics on int64 arrays, and pointers ---------------------------------------------------------------


@intrinsic
def _load(typingctx, array, index):
    """array[index] with acquire ordering."""
    def codegen(context, builder, signature, args):
        pointer = packed.element(context, builder, signature.args[0], *args)
        return builder.load_atomic(pointer, "acquire", 8)
    return types.int64(array, index), codegen


@intrinsic
def _store(typingctx, array, index, value):
    """array[index] = value with release ordering."""
    def codegen(context, builder, signature, args):
        pointer = packed.element(context, builder, signature.args[0], args[0], args[1])
        builder.store_atomic(args[2], pointer, "release", 8)
        return context.get_dummy_value()
    return types.void(array, index, value), codegen


@intrinsic
def _add(typingctx, array, index, value):
    """array[index] += value, atomically; the old value."""
    def codegen(context, builder, signature, args):
        pointer = packed.element(context, builder, signature.args[0], args[0], args[1])
        return builder.atomic_rmw("add", pointer, args[2], "seq_cst")
    return types.int64(array, index, value), codegen


@intrinsic
def _cas(typingctx, array, index, expected, value):
    """array[index] = value if it holds expected, atomically; whether it did."""
    def codegen(context, builder, signature, args):
        pointer = packed.element(context, builder, signature.args[0], args[0], args[1])
        pair = builder.cmpxchg(pointer, args[2], args[3], "seq_cst", "seq_cst")
        return builder.zext(builder.extract_value(pair, 1), ir.IntType(8))
    return types.uint8(array, index, expected, value), codegen


@intrinsic
def _pause(typingctx):
    """x86 PAUSE: a spinning core yields to its sibling and saves power (nothing elsewhere)."""
    def codegen(context, builder, signature, args):
        if X86:
            function = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                      "llvm.x86.sse2.pause")
            builder.call(function, [])
        return context.get_dummy_value()
    return types.void(), codegen


@intrinsic
def _float(typingctx, bits):
    """The float64 whose bits are the int64 `bits`."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(bits), codegen


@intrinsic
def _pointer(typingctx, address, like):
    """The int64 address as a pointer to like's dtype (like: an array, for its type only)."""
    target = types.CPointer(like.dtype)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(target))
    return target(address, like), codegen


# ---- the work ------------------------------------------------------------------------------------------


@numba.njit(nogil=True, cache=True)
def _span(block, count, total):
    """[first, last) of block `block` of `count` equal blocks of range(total)."""
    return total * block // count, total * (block + 1) // count


@numba.njit(nogil=True, cache=True)
def _claim(control, generation):
    """The next unclaimed block of job `generation`, or -1 when none is left (or the job is gone)."""
    while True:
        word = _load(control, CLAIM)
        if word >> 32 != generation or word & 0xFFFFFFFF >= _load(control, COUNT):
            return -1
        if _cas(control, CLAIM, word, word + 1):
            return word & 0xFFFFFFFF


@numba.njit(nogil=True, cache=True)
def _activate(control, out, first, last, c0, c1, bias):
    """Rows first..last-1, columns c0..c1-1 of a GEMM's output: kernels.cpu.bias_activation's (elementwise)."""
    activation = _load(control, ACTIVATION)
    for m in range(first, last):
        cpu.bias_activation_row(out[m, c0:c1], bias[c0:c1], activation)


@numba.njit(nogil=True, cache=True)
def _epilogue(control, out, first, last, bias, residual, gamma, beta):
    """Rows first..last-1 of a GEMM's output, finished: kernels.cpu.bias_activation's or
    bias_residual_layer_norm's rows (the second writes into residual)."""
    kind = _load(control, EPILOGUE)
    if kind == BIAS_ACTIVATION:
        _activate(control, out, first, last, 0, out.shape[1], bias)
    elif kind == BIAS_RESIDUAL_NORM:
        eps = _float(_load(control, EPS))  # a float64, as bertnp.fast passes config.layer_norm_eps
        for m in range(first, last):
            cpu.bias_residual_layer_norm_row(out[m], bias, residual[m], gamma, beta, eps)


@numba.njit(nogil=True, cache=True)
def _gemm_blocks(control, generation, a, panels, out, bias, residual, gamma, beta):
    """Claim and run blocks of a GEMM (blocks of rows, each with its epilogue, or of panels, each with its
    columns' bias + activation; LayerNorm needs whole rows: _finish) until none is left; the number of blocks
    run. (When the caller ran every GELU alone after the GEMM, that took 0.3 of one 16-token text's 4.8 ms.)"""
    count, by_rows = _load(control, COUNT), _load(control, BY_ROWS)
    ran = 0
    while True:
        block = _claim(control, generation)
        if block < 0:
            return ran
        if by_rows:  # whole groups of the micro-kernel's GROUP rows, but for the last
            g0, g1 = _span(block, count, (a.shape[0] + packed.GROUP - 1) // packed.GROUP)
            r0, r1 = g0 * packed.GROUP, min(g1 * packed.GROUP, a.shape[0])
            packed.matmul_block(a, panels, out, r0, r1, 0, panels.shape[0])
            _epilogue(control, out, r0, r1, bias, residual, gamma, beta)
        else:
            p0, p1 = _span(block, count, panels.shape[0])
            packed.matmul_block(a, panels, out, 0, a.shape[0], p0, p1)
            if _load(control, EPILOGUE) == BIAS_ACTIVATION:  # elementwise: the block's own columns, in cache
                _activate(control, out, 0, out.shape[0], p0 * panels.shape[2], min(p1 * panels.shape[2], out.shape[1]),
                          bias)
        _add(control, DONE, 1)
        ran += 1


@numba.njit(nogil=True, cache=True)
def _attention_blocks(control, generation, qkv, qkv_bias, seq_start, key_start, uniform, token_index, distance,
                      context, probs):
    """Claim and run blocks of (sequence, head) pairs of kernels.cpu.attention until none is left; the number
    of blocks run."""
    count, n_heads = _load(control, COUNT), _load(control, HEADS)
    length, relative, write_probs = _load(control, T), _load(control, RELATIVE), _load(control, WRITE_PROBS) != 0
    jobs = (seq_start.shape[0] - 1) * n_heads
    ran = 0
    while True:
        block = _claim(control, generation)
        if block < 0:
            return ran
        first, last = _span(block, count, jobs)
        for job in range(first, last):
            cpu.attend(job // n_heads, job % n_heads, qkv, qkv_bias, seq_start, key_start, uniform, token_index,
                       length, n_heads, distance, relative, context, probs, write_probs)
        _add(control, DONE, 1)
        ran += 1


@numba.njit(nogil=True, cache=True)
def _vector(control, i, like):
    """Array i of the job: 1 dimension, like's dtype."""
    word = ARRAYS + SLOT * i
    return numba.carray(_pointer(_load(control, word), like), (_load(control, word + 1),))


@numba.njit(nogil=True, cache=True)
def _matrix(control, i, like):
    """Array i of the job: 2 dimensions, like's dtype."""
    word = ARRAYS + SLOT * i
    return numba.carray(_pointer(_load(control, word), like), (_load(control, word + 1), _load(control, word + 2)))


@numba.njit(nogil=True, cache=True)
def _cube(control, i, like):
    """Array i of the job: 3 dimensions, like's dtype."""
    word = ARRAYS + SLOT * i
    shape = (_load(control, word + 1), _load(control, word + 2), _load(control, word + 3))
    return numba.carray(_pointer(_load(control, word), like), shape)


@numba.njit(nogil=True, cache=True)
def _tesseract(control, i, like):
    """Array i of the job: 4 dimensions, like's dtype."""
    word = ARRAYS + SLOT * i
    shape = (_load(control, word + 1), _load(control, word + 2), _load(control, word + 3), _load(control, word + 4))
    return numba.carray(_pointer(_load(control, word), like), shape)


@numba.njit(nogil=True, cache=True)
def _run(control, generation, like, indices, flags):
    """A helper's share of job `generation`, its floats of like's dtype; the number of blocks it ran."""
    if _load(control, KIND) == GEMM:
        return _gemm_blocks(control, generation, _matrix(control, 0, like), _cube(control, 1, like),
                            _matrix(control, 2, like), _vector(control, 3, like), _matrix(control, 4, like),
                            _vector(control, 5, like), _vector(control, 6, like))
    return _attention_blocks(control, generation, _matrix(control, 0, like), _vector(control, 1, like),
                             _vector(control, 2, indices), _vector(control, 3, indices), _vector(control, 4, flags),
                             _vector(control, 5, indices), _matrix(control, 6, like), _matrix(control, 7, like),
                             _tesseract(control, 8, like))


_wide = packed.of_dtype(lambda dtype: dtype == np.float64)  # whether the array's dtype is float64


@numba.njit(nogil=True, cache=True)
def _serve(control, like, indices, flags, seen):
    """A helper's loop for jobs on floats of like's dtype (compiled for the dtype in use only): spin until a
    job is published, claim its blocks, spin again. Returns (why, the last generation seen): 0 when parked,
    stopped, or after spinning without a job (having parked itself: SPIN_LIMIT spins in a forward pass,
    LINGER after one); 1 when a job of the other dtype waits, which the caller passes to the other
    compilation."""
    idle = 0
    while True:
        if _load(control, PARK) or _load(control, STOP):
            return 0, seen
        generation = _load(control, GENERATION)
        if generation == seen:
            idle += 1
            if idle >= SPIN_LIMIT:
                _store(control, PARK, 1)
                return 0, seen
            if idle >= LINGER and _load(control, ACTIVE) == 0 and _cas(control, PARK, 0, 1):
                # parked, unless a caller began a forward pass meanwhile: it sets ACTIVE, then reads PARK (to
                # wake us), and we set PARK, then read ACTIVE, each a full barrier: one of us sees the other
                if _load(control, ACTIVE) == 0:
                    return 0, seen
                _store(control, PARK, 0)
                idle = 0
            _pause()
            continue
        if (_load(control, FLOAT64) != 0) != _wide(like):
            return 1, seen
        seen, idle = generation, 0
        _add(control, HELPED, _run(control, generation, like, indices, flags))


@numba.njit(nogil=True, cache=True)
def _publish(control, generation):
    """Publish the job whose fields the caller wrote (release: a helper that sees the generation sees them)."""
    _store(control, DONE, 0)
    _store(control, CLAIM, generation << 32)
    _store(control, GENERATION, generation)


@numba.njit(nogil=True, cache=True)
def _set(control, index, value):
    _store(control, index, value)


@numba.njit(nogil=True, cache=True)
def _begin(control):
    """ACTIVE = 1 with a full barrier: the caller's next read of PARK comes after it (see _serve)."""
    _cas(control, ACTIVE, 0, 1)


@numba.njit(nogil=True, cache=True)
def _wait(control):
    """Until every block is done (the caller has claimed all the others itself)."""
    count = _load(control, COUNT)
    while _load(control, DONE) < count:
        _pause()


@numba.njit(nogil=True, cache=True)
def _finish(control, like):
    """After a GEMM in blocks of panels, its bias + residual + LayerNorm on every row (whole only now)."""
    by_panels = _load(control, KIND) == GEMM and _load(control, BY_ROWS) == 0
    if by_panels and _load(control, EPILOGUE) == BIAS_RESIDUAL_NORM:
        out = _matrix(control, 2, like)
        _epilogue(control, out, 0, out.shape[0], _vector(control, 3, like), _matrix(control, 4, like),
                  _vector(control, 5, like), _vector(control, 6, like))


@numba.njit(nogil=True, cache=True)
def _execute(control, jobs, generation, like, indices, flags):
    """Run the jobs of a Plan (rows of control words) in turn, each shared with the helpers as Team.matmul
    and Team.attention share one: fields written after CLAIM = -1, published, the caller's share claimed,
    every block waited for. The last generation published."""
    for job in range(jobs.shape[0]):
        generation = (generation + 1) & 0x7FFFFFFF
        _store(control, CLAIM, -1)
        for word in range(KIND, HELPED):
            _store(control, word, jobs[job, word])
        for word in range(ARRAYS, WORDS):
            _store(control, word, jobs[job, word])
        _publish(control, generation)
        _run(control, generation, like, indices, flags)
        _wait(control)
        _finish(control, like)
    return generation


# ---- jobs ----------------------------------------------------------------------------------------------


def _fields(words, kind, count, arrays, scalars):
    """A job's fields into words (the control words, or a Plan's row): its kind, block count and scalars,
    then each array's address and shape."""
    words[KIND], words[COUNT], words[FLOAT64] = kind, count, arrays[0].dtype == np.float64
    for name, value in scalars.items():
        words[globals()[name]] = value
    for i, array in enumerate(arrays):
        word = ARRAYS + SLOT * i
        words[word] = array.ctypes.data
        words[word + 1:word + 1 + array.ndim] = array.shape


def _gemm_fields(a, panels, out, by_rows, bias=None, activation=None, residual=None, gamma=None, beta=None,
                 eps=0.0):
    """A GEMM job's arrays (those it lacks: a read-only row of out, whose type serves every call) and scalars."""
    epilogue = NONE if bias is None else BIAS_ACTIVATION if residual is None else BIAS_RESIDUAL_NORM
    unused = out[0].view()  # read-only, as bertnp.fast's vectors are: one compilation serves every call
    unused.flags.writeable = False
    arrays = (a, panels, out, unused if bias is None else bias, out if residual is None else residual,
              unused if gamma is None else gamma, unused if beta is None else beta)
    return arrays, {"BY_ROWS": by_rows, "EPILOGUE": epilogue, "ACTIVATION": activation or 0,
                    "EPS": np.float64(eps).view(np.int64)}


def _attention_fields(qkv, qkv_bias, seq_start, key_start, uniform, token_index, T, n_heads, distance, relative,
                      context, probs, write_probs):
    """An attention job's arrays and scalars."""
    arrays = (qkv, qkv_bias, seq_start, key_start, uniform, token_index, distance, context, probs)
    return arrays, {"T": T, "HEADS": n_heads, "RELATIVE": relative, "WRITE_PROBS": write_probs}


class Plan:
    """Jobs recorded instead of run, in the order given, for Team.execute to run in one compiled call: a
    forward pass's layers cost no Python between jobs. Launched one by one from Python (Team.matmul), a job
    costs 14-16 us besides its work, during which the helpers wait: 30 jobs in one MiniLM pass, and one
    16-token text took 2.9 ms at p50 instead of 2.1.

    matmul and attention take Team's arguments. Arrays among `buffers` (a forward pass's own) are recorded as
    offsets into them, so that the plan serves any later call with buffers of the same shapes; every other
    array must be read-only (weights), and the plan keeps it alive."""

    def __init__(self, helpers: int, buffers):
        self.helpers = helpers
        self.float64 = None
        self.rows, self.kept, self.moved = [], [], []  # moved: (row, word, buffer, byte offset)
        self._where = [(b.ctypes.data, b.ctypes.data + b.nbytes) for b in buffers]

    def matmul(self, a, panels, out, count, by_rows, **epilogue):
        self._record(GEMM, count, *_gemm_fields(a, panels, out, by_rows, **epilogue))
        return out

    def attention(self, count, *args):
        arrays, scalars = _attention_fields(*args)
        self._record(ATTENTION, count, arrays, scalars)
        return arrays[7]

    def _record(self, kind, count, arrays, scalars):
        row = np.zeros(WORDS, np.int64)
        _fields(row, kind, count, arrays, scalars)
        self.float64 = bool(row[FLOAT64])
        for i, array in enumerate(arrays):
            address = array.ctypes.data
            inside = [b for b, (start, end) in enumerate(self._where) if start <= address < end]
            if inside:
                buffer = inside[0]
                self.moved.append((len(self.rows), ARRAYS + SLOT * i, buffer, address - self._where[buffer][0]))
            elif array.flags.writeable:
                raise ValueError(f"array {i} of job {len(self.rows)} is neither a buffer nor read-only")
            else:
                self.kept.append(array)
        self.rows.append(row)

    def rebased(self, buffers) -> np.ndarray:
        """The jobs' rows, pointing into these buffers."""
        if isinstance(self.rows, list):  # recording is over
            self.rows = np.array(self.rows, np.int64).reshape(-1, WORDS)
            self.moved = np.array(self.moved, np.int64).reshape(-1, 4).T
        rows = self.rows.copy()
        row, word, buffer, offset = self.moved
        rows[row, word] = np.array([b.ctypes.data for b in buffers], np.int64)[buffer] + offset
        return rows


# ---- the team ------------------------------------------------------------------------------------------


class Team:
    """Helper threads for one caller at a time: `unpark` before a forward pass keeps them spinning, `park`
    after it lets them sleep; `matmul` and `attention` run one job with them."""

    def __init__(self, helpers: int):
        self.helpers = helpers
        self.control = np.zeros(WORDS, np.int64)
        self.control[PARK] = 1
        self.wake = threading.Condition(threading.Lock())
        self.generation = 0
        self.likes = np.zeros(1, np.float32), np.zeros(1, np.float64), np.zeros(1, np.int64), np.zeros(1, np.bool_)
        self.threads = [threading.Thread(target=self._helper, name=f"bertnp-team-{i}", daemon=True)
                        for i in range(helpers)]
        for thread in self.threads:
            thread.start()

    def _helper(self):
        control, seen, wide = self.control, -1, False
        while True:
            with self.wake:
                while control[PARK] and not control[STOP]:
                    self.wake.wait()
            if control[STOP]:
                return
            why, seen = _serve(control, self.likes[wide], *self.likes[2:], seen)
            wide = wide != (why == 1)  # a job of the other dtype: its compilation takes over

    def unpark(self):
        """A forward pass begins: helpers spin from now on (sleeping ones wake within a fraction of a
        millisecond; those still lingering after the last pass are awake)."""
        _begin(self.control)
        if self.control[PARK]:
            with self.wake:
                _set(self.control, PARK, 0)
                self.wake.notify_all()

    def release(self):
        """The forward pass is over: helpers linger for LINGER spins in case another comes, then sleep."""
        _set(self.control, ACTIVE, 0)

    def park(self):
        """Helpers go back to sleep after the job at hand."""
        _set(self.control, ACTIVE, 0)
        _set(self.control, PARK, 1)

    def _job(self, kind, count, arrays, scalars):
        """Write a job's fields and publish it; its generation. Arrays C-contiguous (read in place)."""
        control = self.control
        self.generation = generation = (self.generation + 1) & 0x7FFFFFFF
        # first, no generation's blocks can be claimed: a helper still in the last job (it read its generation,
        # and reads fields as they change) must fail its claim, which checks the block against COUNT
        _set(control, CLAIM, -1)
        _fields(control, kind, count, arrays, scalars)
        _publish(control, generation)
        return generation

    def matmul(self, a, panels, out, count, by_rows, **epilogue):
        """out = a @ w (w packed by kernels.packed), in `count` blocks of rows (by_rows) or of panels. Then,
        with bias and activation (a kernels.cpu.ACTIVATION_CODES value): out = activation(out + bias), as
        kernels.cpu.bias_activation; with bias, residual, gamma, beta and eps: residual = LayerNorm(out + bias
        + residual), as kernels.cpu.bias_residual_layer_norm. Blocks of rows run it as each is computed, blocks
        of panels the bias + activation on their columns (LayerNorm once all are done)."""
        arrays, scalars = _gemm_fields(a, panels, out, by_rows, **epilogue)
        generation = self._job(GEMM, count, arrays, scalars)
        _gemm_blocks(self.control, generation, *arrays)
        _wait(self.control)
        _finish(self.control, self.likes[int(out.dtype == np.float64)])
        return out

    def attention(self, count, *args):
        """kernels.cpu.attention, its (sequence, head) pairs in `count` blocks (args: _attention_fields')."""
        arrays, scalars = _attention_fields(*args)
        generation = self._job(ATTENTION, count, arrays, scalars)
        _attention_blocks(self.control, generation, *arrays)
        _wait(self.control)
        return arrays[7]

    def execute(self, plan, buffers):
        """Run a Plan's jobs with this team, in one compiled call; `buffers` as the plan was recorded with, or
        a later forward pass's of the same shapes."""
        like = self.likes[int(plan.float64)]
        self.generation = _execute(self.control, plan.rebased(buffers), self.generation, like, *self.likes[2:])

    def stop(self):
        with self.wake:
            _set(self.control, STOP, 1)
            self.wake.notify_all()


def warm_up(dtype) -> None:
    """Compile (or load from Numba's cache) what a team runs for float arrays of dtype, on this thread: every
    job and epilogue on a team without helpers, and a helper's loop, which returns at once when stopped."""
    crew = Team(0)
    one = np.ones((2, 2), dtype)
    panels = packed.pack(one)
    vector = one[0].view()  # read-only, as bertnp.fast's biases, norms and position tables are
    vector.flags.writeable = False
    for kind in ({}, {"bias": vector, "activation": 0}, {"bias": vector, "residual": one.copy(), "gamma": vector,
                                                          "beta": vector, "eps": 1e-12}):
        crew.matmul(one, panels, np.empty((2, 2), dtype), 2, True, **kind)
    qkv_bias = np.zeros(6, dtype)  # one token, one head of 2: [1, 3H] = [1, 6]
    qkv_bias.flags.writeable = False
    index = np.zeros(1, np.int64)
    crew.attention(1, np.ones((1, 6), dtype), qkv_bias, np.array([0, 1]), index, np.zeros(1, np.bool_), index, 1, 1,
                   panels[0], 0, np.empty((1, 2), dtype), np.zeros((1, 1, 1, 1), dtype), False)
    out = np.empty((2, 2), dtype)  # a plan of one GEMM in blocks of panels, with its epilogue: Team.execute
    plan = Plan(0, (out,))
    one.flags.writeable = panels.flags.writeable = False  # as weights are
    plan.matmul(one, panels, out, 2, False, bias=vector, activation=0)
    crew.execute(plan, (out,))
    crew.control[STOP] = 1
    _serve(crew.control, crew.likes[int(np.dtype(dtype) == np.float64)], *crew.likes[2:], -1)


_team: Team | None = None


def team(helpers: int) -> Team:
    """The process's team of `helpers` helper threads (a new one when the count changes), at most one fewer
    than the cores this process may run on: a spinning helper without a core of its own would only take
    time from the caller."""
    global _team
    helpers = min(helpers, max(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else
                               os.cpu_count() or 1, 1) - 1)
    if _team is None or _team.helpers != helpers:
        if _team is not None:
            _team.stop()
        _team = Team(helpers)
    return _team


def _forget_team_after_fork() -> None:
    """A forked child has none of the team's threads: it starts its own when it needs one."""
    global _team
    _team = None


os.register_at_fork(after_in_child=_forget_team_after_fork)
