"""Numba kernels for the CPU: the ops of bertnp/model.py between the linear layers, fused and pad-free.

A batch arrives packed: only the tokens that count, M of them, as rows of [M, H] arrays (see `pack`).
The linear layers' GEMMs are kernels.packed's; these kernels do what sits between them, each in one pass over
memory: embedding gather + LayerNorm, bias + activation, bias + residual + LayerNorm, and attention per
(sequence, head) at the sequence's own length. Each docstring names its twin in bertnp/model.py, and
tests/test_kernels.py holds every kernel to it in float32 and float64.

Kernels take arrays and scalars only, work in the arrays' dtype (float32 or float64), and write into
arrays the caller owns. Shape letters as in model.py, plus M packed tokens and S sequences (= rows B).

Compilation flags are decided here and nowhere else. Kernels that sum compile with `reassoc` (so LLVM
may vectorize the sums of LayerNorm and softmax), `contract` (fused multiply-add) and `nsz`; elementwise
kernels and the scalar math helpers with `contract` only, because reassociation would undo the helpers'
range reduction. Never `nnan`, `ninf` or `afn`, which would let LLVM assume away the NaNs and infinities
a caller must see, or swap in cruder functions.
LLVM keeps each instruction's flags when it inlines a small helper (exp) into a kernel, so the flag sets
coexist; erf is too large for LLVM's inliner, and a call in a loop stops vectorization, so Numba inlines
it instead, which gives it the caller's flags: only kernels without `reassoc` may call it.
Numba's cache is keyed on the file of the function it compiled: keep every kernel and helper here, so that
an edit anywhere recompiles all of them. The one exception is attention's products, which call
kernels.packed's micro-kernel: after editing packed.py, touch this file too (or clear the cache).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from . import packed

SUM_FASTMATH = {"reassoc", "contract", "nsz"}
EXACT_FASTMATH = {"contract"}
COMMON = {"cache": True, "error_model": "numpy", "nogil": True}  # x / 0 is inf as in NumPy: a raise in a loop
#   would stop SIMD; nogil: other Python threads (a server's event loop) run while a kernel does

kernel = numba.njit(fastmath=SUM_FASTMATH, parallel=True, **COMMON)  # prange over rows or (sequence, head)
serial_kernel = numba.njit(fastmath=SUM_FASTMATH, **COMMON)  # bookkeeping too small to split; row helpers
helper = numba.njit(fastmath=EXACT_FASTMATH, **COMMON)  # scalar math small enough for LLVM to inline
inlined_helper = numba.njit(fastmath=EXACT_FASTMATH, inline="always", **COMMON)  # too large: Numba inlines
elementwise_helper = numba.njit(fastmath=EXACT_FASTMATH, **COMMON)  # a row loop that may call erf

# Activation codes for `bias_activation`: every name of model.ACTIVATIONS.
GELU, GELU_TANH, GELU_FAST, QUICK_GELU, SILU, RELU = range(6)
ACTIVATION_CODES = {"gelu": GELU, "gelu_new": GELU_TANH, "gelu_pytorch_tanh": GELU_TANH, "gelu_fast": GELU_FAST,
                    "quick_gelu": QUICK_GELU, "silu": SILU, "swish": SILU, "relu": RELU}

# Relative position codes for `attention` (config.position_embedding_type).
RELATIVE_CODES = {"absolute": 0, "relative_key": 1, "relative_key_query": 2}
QUERY_BLOCK = 128  # queries per pass of `attention`: [nk, 128] scores stay in L2 up to 512 keys


# ---- scalar math that vectorizes -----------------------------------------------------------------------
# Numba's math.exp / math.erf are calls into libm, one element at a time: a loop over them never becomes
# SIMD (math.erf: 15 ms for 6.3M values). For float32 we evaluate polynomials in float32 with a select in
# place of every branch, so LLVM turns the whole loop into AVX-512 code; float64 keeps libm.

F32 = np.float32
EXP_LOW, EXP_HIGH = F32(-88.0), F32(88.0)  # e^-88 underflows to 0 below; e^88 = 1.65e38 < float32 max
LOG2E = F32(1.44269504)
LN2_HIGH, LN2_LOW = F32(0.693359375), F32(-2.12194440e-4)  # ln 2 = HIGH + LOW; n * HIGH is exact for |n| < 2^15
# Cephes expf: e^r = 1 + r + r^2 P(r) on |r| <= ln2 / 2
EXP_P = (F32(1.9875691500e-4), F32(1.3981999507e-3), F32(8.3334519073e-3), F32(4.1665795894e-2),
         F32(1.6666665459e-1), F32(5.0000001201e-1))
# bertnp/kernels/fit_erf.py: erf(x) = x + x P(x^2) for |x| < 1; erf(x) = 1 - exp(Q(|x|)) for 1 <= |x| < 4
ERF_SPLIT, ERF_TOP = F32(1.0), F32(4.0)
ERF_P = (F32(7.853860734030604e-05), F32(-0.0008010194287635386), F32(0.005188327748328447),
         F32(-0.026853812858462334), F32(0.1128358542919159), F32(-0.3761262595653534), F32(0.12837916612625122))
ERF_Q = (F32(1.5998098206182476e-06), F32(-4.529790749074891e-05), F32(0.0005902016418986022),
         F32(-0.004727680701762438), F32(0.026327501982450485), F32(-0.10990969091653824),
         F32(-0.6320134997367859), F32(-1.1301196813583374), F32(0.00029101959080435336))


@helper
def exp_float32(x):
    """e^x in float32 within 1.02 ulp for |x| <= 88, by range reduction and Cephes' polynomial.

    x = n ln2 + r with |r| <= ln2/2, e^x = 2^n e^r, and 2^n is built directly in the exponent bits.
    Below -88 the result is 0, above 88 it stays e^88 (finite), NaN stays NaN.
    """
    x = EXP_LOW if x < EXP_LOW else x
    x = EXP_HIGH if x > EXP_HIGH else x
    n = np.floor(x * LOG2E + F32(0.5))  # -127 <= n <= 127
    r = x - n * LN2_HIGH
    r = r - n * LN2_LOW
    p = EXP_P[0]
    p = p * r + EXP_P[1]
    p = p * r + EXP_P[2]
    p = p * r + EXP_P[3]
    p = p * r + EXP_P[4]
    p = p * r + EXP_P[5]
    p = p * r * r + r + F32(1.0)
    two_to_n = np.int32((np.int32(n) + 127) << 23).view(np.float32)  # n = -127 gives 0.0
    return p * two_to_n


@inlined_helper
def erf_float32(x):
    """erf(x) in float32 within 1.3 ulp (tests/test_kernels.py measures it): both ranges computed, one selected."""
    ax = abs(x)
    s = x * x
    p = ERF_P[0]
    p = p * s + ERF_P[1]
    p = p * s + ERF_P[2]
    p = p * s + ERF_P[3]
    p = p * s + ERF_P[4]
    p = p * s + ERF_P[5]
    p = p * s + ERF_P[6]
    small = x + x * p
    t = ERF_TOP if ax > ERF_TOP else ax
    q = ERF_Q[0]
    q = q * t + ERF_Q[1]
    q = q * t + ERF_Q[2]
    q = q * t + ERF_Q[3]
    q = q * t + ERF_Q[4]
    q = q * t + ERF_Q[5]
    q = q * t + ERF_Q[6]
    q = q * t + ERF_Q[7]
    q = q * t + ERF_Q[8]
    large = F32(1.0) - exp_float32(q)
    large = -large if x < F32(0.0) else large
    return small if ax < ERF_SPLIT else large


def exp(x):
    """e^x inside a kernel: exp_float32 for float32 (vectorizes), libm for float64."""
    return math.exp(x)


def erf(x):
    """erf(x) inside a kernel: erf_float32 for float32 (vectorizes), libm for float64."""
    return math.erf(x)


@overload(exp, inline="always")
def _exp(x):
    if x == types.float32:
        return lambda x: exp_float32(x)
    return lambda x: math.exp(x)


@overload(erf, inline="always")
def _erf(x):
    if x == types.float32:
        return lambda x: erf_float32(x)
    return lambda x: math.erf(x)


@intrinsic
def full_width_loops(typingctx):
    """Let LLVM vectorize the calling function's loops with the machine's full vectors. On AVX-512 machines
    (Skylake-X and later) it prefers 256-bit ones unless told otherwise (a function's "prefer-vector-width").
    Elementwise only: a sum's order would change with the width. One Sapphire Rapids core, exact GELU over
    [384, 1536] float32: 2.39 -> 1.92 ns a value, bit-equal."""
    def codegen(context, builder, signature, args):
        # a string attribute, which llvmlite's set of known attributes would refuse
        set.add(builder.function.attributes, f'"prefer-vector-width"="{8 * packed.VECTOR_BYTES}"')
        return context.get_dummy_value()
    return types.void(), codegen


panel_width = packed.of_dtype(lambda dtype: packed.NR[dtype])  # kernels.packed.NR for the array's dtype


@intrinsic
def lane_max(typingctx, panel, start, rows, top):
    """top[c] = the largest of panel[start + j * NR + c] over j < rows (rows >= 1), for c < NR (packed.NR):
    the largest score of each query in one of `attend`'s [rows, NR] panels, two vectors kept in registers.

    Each lane keeps x when x > top (the first row when none is larger), so a NaN after the first row is
    passed over and a NaN in it is kept; softmax's result is NaN either way. Numba's vectorizer keeps
    this loop scalar (the stores to top might alias the panel): a seventh of attention on Zen 3.
    """
    sig = types.void(panel, start, rows, top)

    def codegen(context, builder, signature, args):
        panel_arr, first, n, top_arr = args
        dtype = np.dtype(signature.args[0].dtype.name)
        lanes = packed.VECTOR_BYTES // dtype.itemsize
        vec = ir.VectorType(context.get_value_type(signature.args[0].dtype), lanes)
        vectors = packed.NR[dtype] // lanes
        i64 = ir.IntType(64)
        rows_ptr = builder.bitcast(packed.element(context, builder, signature.args[0], panel_arr, first), vec.as_pointer())
        firsts = [builder.load(builder.gep(rows_ptr, [ir.Constant(i64, v)]), align=4) for v in range(vectors)]

        def one_row(builder, j, tops):
            row = builder.gep(rows_ptr, [builder.mul(j, ir.Constant(i64, vectors))])
            xs = [builder.load(builder.gep(row, [ir.Constant(i64, v)]), align=4) for v in range(vectors)]
            return [builder.select(builder.fcmp_ordered(">", x, top), x, top) for x, top in zip(xs, tops)]

        finals = packed.counted_loop(builder, "lane_max", ir.Constant(i64, 1), n, firsts, one_row)
        out = builder.bitcast(packed.element(context, builder, signature.args[3], top_arr, ir.Constant(i64, 0)),
                              vec.as_pointer())
        for v in range(vectors):
            builder.store(finals[v], builder.gep(out, [ir.Constant(i64, v)]), align=4)
        return context.get_dummy_value()

    return sig, codegen


def _exp_vector(context, builder, x):
    """IR for exp_float32 on a vector of float32 x, step for step (the multiply-adds fused as `contract` lets
    LLVM fuse them there)."""
    vec = x.type
    lanes = vec.count
    ints = ir.VectorType(ir.IntType(32), lanes)
    module = builder.module

    def constant(value):
        return ir.Constant(vec, [float(F32(value))] * lanes)

    def call(name, *args):
        function = cgutils.get_or_insert_function(module, ir.FunctionType(vec, [vec] * len(args)),
                                                  f"llvm.{name}.v{lanes}f32")
        return builder.call(function, args)

    x = builder.select(builder.fcmp_ordered("<", x, constant(EXP_LOW)), constant(EXP_LOW), x)
    x = builder.select(builder.fcmp_ordered(">", x, constant(EXP_HIGH)), constant(EXP_HIGH), x)
    n = call("floor", call("fma", x, constant(LOG2E), constant(0.5)))
    r = call("fma", n, constant(-LN2_HIGH), x)
    r = call("fma", n, constant(-LN2_LOW), r)
    p = constant(EXP_P[0])
    for c in EXP_P[1:]:
        p = call("fma", p, r, constant(c))
    p = builder.fadd(call("fma", builder.fmul(p, r), r, r), constant(1.0))
    exponent = builder.shl(builder.add(builder.fptosi(n, ints), ir.Constant(ints, [127] * lanes)),
                           ir.Constant(ints, [23] * lanes))
    return builder.fmul(p, builder.bitcast(exponent, vec))


@intrinsic
def read(typingctx, array, index):
    """array[index] of a contiguous 1-d array, without the check that Numba adds to an index it cannot prove
    non-negative (wraparound, as in NumPy): that select on every address kept LLVM from vectorizing attend's
    loops over flat arrays. 128 rows x 32 values written at computed offsets took 8 us with the check, 0.9 us
    without (a view per row costs as little, but an atomic reference count on an array both threads share)."""
    def codegen(context, builder, signature, args):
        return builder.load(packed.element(context, builder, signature.args[0], args[0], args[1], inbounds=True))

    return array.dtype(array, index), codegen


@intrinsic
def write(typingctx, array, index, value):
    """array[index] = value (cast to the array's dtype), as `read` reads: no wraparound."""
    def codegen(context, builder, signature, args):
        value = context.cast(builder, args[2], signature.args[2], signature.args[0].dtype)
        builder.store(value, packed.element(context, builder, signature.args[0], args[0], args[1], inbounds=True))
        return context.get_dummy_value()

    return types.void(array, index, value), codegen


@intrinsic
def prefetch(typingctx, array, index):
    """Ask for the cache line of a contiguous array's element `index` (a hint: never faults, even past the end)."""
    sig = types.void(array, index)

    def codegen(context, builder, signature, args):
        array_value, position = args
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        address = builder.bitcast(packed.element(context, builder, signature.args[0], array_value, position), i8p)
        function = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                                  "llvm.prefetch.p0")
        builder.call(function, [address, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _exp_rows_float32(typingctx, panel, start, rows, top, total):
    """exp_rows for float32: each row's two vectors in registers, the exponential as _exp_vector's IR at the
    full vector width (Numba's vectorizer gave the loop a quarter of it: 4 lanes on AVX-512, next to the
    float64 sums), and the sums kept in registers as float64 vectors."""
    sig = types.void(panel, start, rows, top, total)

    def codegen(context, builder, signature, args):
        panel_arr, first, n, top_arr, total_arr = args
        lanes = packed.VECTOR_BYTES // 4
        vec, wide = ir.VectorType(ir.FloatType(), lanes), ir.VectorType(ir.DoubleType(), lanes // 2)
        vectors = packed.NR[np.dtype(np.float32)] // lanes
        i64, i32 = ir.IntType(64), ir.IntType(32)

        def data(array, array_type, index=ir.Constant(i64, 0)):
            return packed.element(context, builder, array_type, array, index)

        rows_ptr = builder.bitcast(data(panel_arr, signature.args[0], first), vec.as_pointer())
        top_ptr = builder.bitcast(data(top_arr, signature.args[3]), vec.as_pointer())
        total_ptr = builder.bitcast(data(total_arr, signature.args[4]), wide.as_pointer())
        tops = [builder.load(builder.gep(top_ptr, [ir.Constant(i64, v)]), align=4) for v in range(vectors)]
        halves = [ir.Constant(ir.VectorType(i32, lanes // 2), list(range(h * lanes // 2, (h + 1) * lanes // 2)))
                  for h in range(2)]
        starts = [builder.load(builder.gep(total_ptr, [ir.Constant(i64, w)]), align=8) for w in range(2 * vectors)]

        def one_row(builder, j, sums):
            row = builder.gep(rows_ptr, [builder.mul(j, ir.Constant(i64, vectors))])
            updated = []
            for v in range(vectors):
                target = builder.gep(row, [ir.Constant(i64, v)])
                e = _exp_vector(context, builder, builder.fsub(builder.load(target, align=4), tops[v]))
                builder.store(e, target, align=4)
                for h in range(2):
                    half = builder.shuffle_vector(e, ir.Constant(vec, ir.Undefined), halves[h])
                    updated.append(builder.fadd(sums[2 * v + h], builder.fpext(half, wide)))
            return updated

        finals = packed.counted_loop(builder, "exp_rows", ir.Constant(i64, 0), n, starts, one_row)
        for w in range(2 * vectors):
            builder.store(finals[w], builder.gep(total_ptr, [ir.Constant(i64, w)]), align=8)
        return context.get_dummy_value()

    return sig, codegen


def exp_rows(panel, start, rows, top, total):
    """panel[start + j * NR + c] = exp(panel[start + j * NR + c] - top[c]) and total[c] += it, for j < rows
    and c < NR (packed.NR), in order of j: softmax's exponentials and sums down the columns of one of
    `attend`'s [rows, NR] panels. total: float64 [NR]. Float32 runs _exp_rows_float32, float64 this loop."""
    width = panel_width(panel)
    for j in range(rows):
        for c in range(width):
            panel[start + j * width + c] = math.exp(panel[start + j * width + c] - top[c])
            total[c] += panel[start + j * width + c]


@overload(exp_rows, inline="always")
def _exp_rows(panel, start, rows, top, total):
    if panel.dtype == types.float32:
        return lambda panel, start, rows, top, total: _exp_rows_float32(panel, start, rows, top, total)
    return exp_rows  # its own body, compiled


# ---- packing -------------------------------------------------------------------------------------------


@serial_kernel
def pack(attention_mask):
    """Which tokens of a padded [B, T] batch to compute, as packed rows: [B, T] -> token_index [M], ...

    Sequence b's tokens are the packed rows seq_start[b] .. seq_start[b+1]-1, in row order:
      - its real tokens (mask != 0), the only keys its queries attend to;
      - position 0 even when masked, as a query only (first row, keys start at key_start[b] = row + 1):
        the pooler reads position 0 whatever the mask, and the reference computes it like any query;
      - all T positions when no token is real (uniform[b]): the reference's mask bias is then the same
        everywhere, its softmax uniform over all T keys, and we reproduce that.
    token_index[m] is the flat index b * T + t of packed row m in the padded batch.
    """
    B, T = attention_mask.shape
    seq_start = np.empty(B + 1, np.int64)
    key_start = np.empty(B, np.int64)
    uniform = np.zeros(B, np.bool_)
    M = 0
    for b in range(B):
        real = 0
        for t in range(T):
            real += attention_mask[b, t] != 0
        seq_start[b] = M
        key_start[b] = M
        if real == 0:
            uniform[b] = True
            M += T
        elif attention_mask[b, 0] == 0:
            key_start[b] = M + 1
            M += real + 1
        else:
            M += real
    seq_start[B] = M
    token_index = np.empty(M, np.int64)
    m = 0
    for b in range(B):
        for t in range(T):
            if uniform[b] or t == 0 or attention_mask[b, t] != 0:
                token_index[m] = b * T + t
                m += 1
    return token_index, seq_start, key_start, uniform


# ---- row kernels ---------------------------------------------------------------------------------------
# Each kernel is a driver and a per-row (or per-head) helper. The driver's last argument, parallel,
# chooses between prange over Numba's threads and a plain loop on the calling thread: for one short
# text, waking the threads costs more than the work (bertnp.fast decides, from the number of tokens).


@serial_kernel
def layer_norm_row(row, gamma, beta, eps):
    """model.layer_norm on one row, in place. Sums run in float64, so no order the vectorizer picks matters."""
    H = row.shape[0]
    total = 0.0
    for k in range(H):
        total += row[k]
    mean = total / H
    squares = 0.0
    for k in range(H):
        d = row[k] - mean
        squares += d * d
    inv_std = 1.0 / math.sqrt(squares / H + eps)
    F = row.dtype.type
    mean_f, inv_f = F(mean), F(inv_std)
    for k in range(H):
        row[k] = (row[k] - mean_f) * inv_f * gamma[k] + beta[k]


@serial_kernel
def embed_row(m, input_ids, token_type_ids, positions, from_ids, token_index, word, position, token_type, gamma,
              beta, eps, add_positions, out):
    """Row m of `embed_layer_norm`."""
    T = input_ids.shape[1]
    b, t = token_index[m] // T, token_index[m] % T
    w, ty = input_ids[b, t], token_type_ids[b, t]
    p = positions[b, t] if from_ids else t
    row = out[m]
    if add_positions:
        for k in range(row.shape[0]):
            row[k] = word[w, k] + token_type[ty, k] + position[p, k]
    else:
        for k in range(row.shape[0]):
            row[k] = word[w, k] + token_type[ty, k]
    layer_norm_row(row, gamma, beta, eps)


@kernel
def embed_layer_norm(input_ids, token_type_ids, token_index, word, position, token_type, gamma, beta, eps,
                     add_positions, out, parallel, position_ids=None):
    """model.embeddings on packed tokens: out[m] = LayerNorm(word + token type (+ position)).

    input_ids, token_type_ids: [B, T] padded; token_index: [M] from `pack`; out: [M, E]. The position of
    a token is its index in its row, as in the reference, or position_ids[b, t] when given ([B, T]: RoBERTa's,
    model.create_position_ids_from_input_ids, as model.roberta_embeddings); relative models (add_positions
    false) add none.
    """
    positions = input_ids if position_ids is None else position_ids
    from_ids = position_ids is not None
    if not parallel:
        for m in range(out.shape[0]):
            embed_row(m, input_ids, token_type_ids, positions, from_ids, token_index, word, position, token_type,
                      gamma, beta, eps, add_positions, out)
    else:
        for m in prange(out.shape[0]):
            embed_row(m, input_ids, token_type_ids, positions, from_ids, token_index, word, position, token_type,
                      gamma, beta, eps, add_positions, out)


@serial_kernel
def bias_residual_layer_norm_row(h, bias, row, gamma, beta, eps):
    """One row of `bias_residual_layer_norm`."""
    for k in range(row.shape[0]):
        row[k] = h[k] + bias[k] + row[k]
    layer_norm_row(row, gamma, beta, eps)


@kernel
def bias_residual_layer_norm(h, bias, x, gamma, beta, eps, parallel):
    """BertSelfOutput / BertOutput: x = model.layer_norm(h + bias + x), in place in x [M, H].

    h [M, H] is the GEMM output (model.linear without its bias), x the residual stream.
    """
    if not parallel:
        for m in range(x.shape[0]):
            bias_residual_layer_norm_row(h[m], bias, x[m], gamma, beta, eps)
    else:
        for m in prange(x.shape[0]):
            bias_residual_layer_norm_row(h[m], bias, x[m], gamma, beta, eps)


@elementwise_helper
def bias_activation_row(row, bias, activation):
    """One row of `bias_activation`: one loop per activation, each of which LLVM vectorizes at full width."""
    full_width_loops()
    F = row.dtype.type
    zero, half, one, two = F(0.0), F(0.5), F(1.0), F(2.0)
    sqrt_half = F(math.sqrt(0.5))
    sqrt_2_over_pi, fast_constant = F(math.sqrt(2.0 / math.pi)), F(0.7978845608)
    cubic, quick = F(0.044715), F(1.702)
    I = row.shape[0]
    if activation == GELU:
        for i in range(I):
            v = row[i] + bias[i]
            row[i] = v * half * (one + erf(v * sqrt_half))
    elif activation == GELU_TANH:
        for i in range(I):
            v = row[i] + bias[i]
            u = sqrt_2_over_pi * (v + cubic * (v * v * v))
            row[i] = v / (one + exp(-two * u))
    elif activation == GELU_FAST:
        for i in range(I):
            v = row[i] + bias[i]
            u = v * fast_constant * (one + cubic * v * v)
            row[i] = v / (one + exp(-two * u))
    elif activation == QUICK_GELU:
        for i in range(I):
            v = row[i] + bias[i]
            row[i] = v / (one + exp(-quick * v))
    elif activation == SILU:
        for i in range(I):
            v = row[i] + bias[i]
            row[i] = v / (one + exp(-v))
    else:
        for i in range(I):
            v = row[i] + bias[i]
            row[i] = zero if v < zero else v


@kernel
def bias_activation(x, bias, activation, parallel):
    """BertIntermediate: x = model.ACTIVATIONS[name](x + bias), in place in x [M, I].

    activation is ACTIVATION_CODES[name]. The tanh forms use 0.5 v (1 + tanh u) = v / (1 + e^(-2u)).
    Parity trap: the reference widens exact GELU to float64 (NumPy has no float32 erf); float32 here stays
    in float32 with erf_float32, a few float32 ulps from it.
    """
    if not parallel:
        for m in range(x.shape[0]):
            bias_activation_row(x[m], bias, activation)
    else:
        for m in prange(x.shape[0]):
            bias_activation_row(x[m], bias, activation)


# ---- attention -----------------------------------------------------------------------------------------


@serial_kernel
def attend(s, h, qkv, qkv_bias, seq_start, key_start, uniform, token_index, T, n_heads, distance, relative,
           context, probs, write_probs):
    """One (sequence s, head h) of `attention`: two small GEMMs on kernels.packed's micro-kernel, scores
    transposed so that queries run along the SIMD lanes, W (two vectors) at a time.

    QUERY_BLOCK queries at a time, in QP panels of W queries:
      scores^T [QP, nk, W] = K Q^T: K read in place from qkv (GROUP keys per micro-kernel call, then up to
                             MR), Q^T + bias times 1/sqrt(D) copied into panels [QP, D, W], the layout of
                             a packed weight;
      softmax down each panel's columns over the nk keys, elementwise across the lanes (no horizontal
                             reduction: `lane_max` keeps the largest in registers, `exp_rows` the sums);
      context [W, D]       = exp(scores) V for each panel: exp(scores) read in place down its columns (GROUP
                             queries per call, then up to MR), V copied once into panels [VP, nk, W] of W columns.
    K's bias is left out of scores: it adds q . key_bias to every score of query q, which softmax cancels
    (relative_key_query's term, which multiplies keys by positions, adds it back). The scale is applied
    to the query as it is copied (model.py scales the scores: the same up to rounding), which saves a pass
    over the scores. With lane_max, one (sequence, head) of MiniLM at 128 tokens took 80-105 us on a Zen 3
    core, against 98-120 us before (medians of 15 in three runs). On a Sapphire Rapids core: 73 us, then 47
    with exp_rows and the prefetch of a sequence's rows (below). GROUP rows per micro-kernel call where MR
    had been (12 with AVX-512, as matmul_block's): BERT-base at 128 tokens 99-104 -> 64-70 us, MiniLM at 12
    tokens 2.3-3.1 -> 2.0-2.7 us, MiniLM at 128 unchanged (minimums of 100-300 calls, alternating processes).
    """
    H = context.shape[1]
    D = H // n_heads
    P = (distance.shape[0] + 1) // 2
    F = qkv.dtype.type
    W = panel_width(qkv)
    scale = F(D**-0.5)
    q0, q1, k0 = seq_start[s], seq_start[s + 1], key_start[s]
    nk = q1 - k0
    QP = (min(QUERY_BLOCK, q1 - q0) + W - 1) // W  # panels per block of queries: fewer for a short sequence
    q_col, k_col, v_col = h * D, H + h * D, 2 * H + h * D
    query_bias, key_bias, value_bias = qkv_bias[q_col:q_col + D], qkv_bias[k_col:k_col + D], qkv_bias[v_col:v_col + D]
    VP = (D + W - 1) // W
    L = packed.lanes(qkv)  # a vector's lanes (W / 2): queries are transposed into Q^T's panels L at a time
    in_registers = D - D % L
    # The loops below index flat arrays: a view per row (qkv[j, a:b]) of an array from Python costs Numba a
    # reference count up and down (one (sequence, head) of MiniLM at 128 tokens, one core: 73 -> 68 us without).
    # Their copies use `read` and `write`, which LLVM vectorizes (with flat_qkv[i]'s checks: 80 -> 72 us)
    # Six arrays carved from one allocation: seven allocations had cost 0.6 of the 3 us of one (sequence, head)
    # at 12 tokens
    v_end = VP * nk * W
    q_end = v_end + QP * D * W
    s_end = q_end + QP * nk * W
    t_end = s_end + W * VP * W
    scratch = np.empty(t_end + W + QP * W, qkv.dtype)
    flat_v = scratch[:v_end]  # V in panels [VP, nk, W] of W columns, zero past D (its bias: at the end)
    flat_q = scratch[v_end:q_end]  # Q^T + bias in panels [QP, D, W]; every lane is written (zero past nb)
    flat_s = scratch[q_end:s_end]  # scores^T [QP, nk, W]
    flat_t = scratch[s_end:t_end]  # [W, VP * W]: one panel's exp(scores) V, before the division
    top = scratch[t_end:t_end + W]
    inv_total = scratch[t_end + W:].reshape((QP, W))
    queries_t, scores_t = flat_q.reshape((QP, D, W)), flat_s.reshape((QP, nk, W))
    total = np.empty(W, np.float64)
    flat_qkv, flat_context = qkv.reshape(-1), context.reshape(-1)
    if h == 0:  # the sequence's first head asks for all its rows of qkv in order, which the hardware prefetchers
        for j in range(q0 * 3 * H, q1 * 3 * H, 64 // qkv.itemsize):  # follow; each head's slices (D values every
            prefetch(flat_qkv, j)                                     # 3H, a page apart) defeat them
        for j in range(q0 * H, q1 * H, 64 // qkv.itemsize):  # and its rows of context, which every head writes a
            prefetch(flat_context, j)                         # slice of (one core, 32 x 128: 69 -> 64 us a head)
    for j in range(nk):
        for vp in range(VP):
            value = (k0 + j) * 3 * H + v_col + vp * W
            for c in range(W):
                write(flat_v, (vp * nk + j) * W + c, read(flat_qkv, value + c) if vp * W + c < D else 0)
    for b0 in range(q0, q1, QUERY_BLOCK):
        nb = min(QUERY_BLOCK, q1 - b0)
        panels = (nb + W - 1) // W
        for half in range(2 * panels):  # Q^T, L queries at a time (a panel's W = 2L lanes), zero past nb,
            # transposed in registers (one (sequence, head) on a Sapphire Rapids core: MiniLM 62 -> 56 us, BERT-base
            # 115 -> 100, medians of 5 processes; value by value, each query's D values were written W apart)
            live, q_t = max(0, min(L, nb - half * L)), (half // 2) * D * W + (half % 2) * L
            first = (b0 + half * L) * 3 * H + q_col
            packed.transpose_rows(flat_qkv, first, 3 * H, flat_q, q_t, W, in_registers, live, L)
            for d in range(in_registers, D):  # the last D % L columns
                for i in range(L):
                    write(flat_q, q_t + d * W + i, read(flat_qkv, first + i * 3 * H + d) if i < live else 0)
        for p in range(panels):  # + bias, times 1/sqrt(D), at the queries' lanes
            for d in range(D):
                row, bias = (p * D + d) * W, query_bias[d]
                for i in range(min(W, nb - p * W)):
                    write(flat_q, row + i, (read(flat_q, row + i) + bias) * scale)
        for p in range(panels):
            j = 0
            while j < nk:  # scores^T = K Q^T: [nk, D] @ [D, W]
                j += packed._micro_in_place(flat_qkv, (k0 + j) * 3 * H + k_col, 3 * H, 1, flat_q, p * D * W, flat_s,
                                            (p * nk + j) * W, W, D, False, nk - j)
            s_t, q_t = scores_t[p], queries_t[p]  # [nk, W], [D, W]
            if relative != 0:  # model.relative_scores: q . table[t_q - t_k] (+ (k + key_bias) . table[t_q - t_k])
                for j in range(nk):
                    t_k, key = token_index[k0 + j] % T, qkv[k0 + j, k_col:k_col + D]
                    for i in range(min(W, nb - p * W)):
                        table = distance[token_index[b0 + p * W + i] % T - t_k + P - 1]
                        term = F(0.0)
                        for d in range(D):  # q_t holds the scaled query
                            term += q_t[d, i] * table[d]
                        if relative == 2:
                            key_term = F(0.0)
                            for d in range(D):
                                key_term += (key[d] + key_bias[d]) * table[d]
                            term += key_term * scale
                        s_t[j, i] += term
            lane_max(flat_s, p * nk * W, nk, top)  # model.softmax begins: the largest score of each query
            for i in range(W):
                total[i] = 0.0
            if uniform[s]:  # every key masked: the reference's softmax of equal values
                for j in range(nk):
                    for i in range(W):
                        write(flat_s, (p * nk + j) * W + i, 1)
                        total[i] += 1
            else:
                exp_rows(flat_s, p * nk * W, nk, top, total)
            for i in range(W):
                inv_total[p, i] = F(1.0 / total[i])
            rows = min(W, nb - p * W)
            for vp in range(VP):  # context = exp(scores) V: [rows, nk] (scores^T read down) @ [nk, W]
                i = 0
                while i < rows:
                    i += packed._micro_in_place(flat_s, p * nk * W + i, 1, W, flat_v, vp * nk * W, flat_t,
                                                i * VP * W + vp * W, VP * W, nk, False, rows - i)
            for i in range(rows):  # probabilities sum to 1, so the value bias adds once, after the division
                out, sums, inv = (b0 + p * W + i) * H + q_col, i * VP * W, inv_total[p, i]
                for d in range(D):
                    write(flat_context, out + d, read(flat_t, sums + d) * inv + value_bias[d])
        if write_probs:
            for i in range(nb):
                t_q, p, lane = token_index[b0 + i] % T, i // W, i % W
                for j in range(nk):
                    probs[s, h, t_q, token_index[k0 + j] % T] = scores_t[p, j, lane] * inv_total[p, lane]


@kernel
def attention(qkv, qkv_bias, seq_start, key_start, uniform, token_index, T, n_heads, distance, relative,
              context, probs, write_probs, parallel):
    """model.self_attention after its GEMM, per (sequence, head), each sequence at its own length.

    qkv: [M, 3H] packed tokens @ [Wq | Wk | Wv] without bias; qkv_bias: [3H]. seq_start, key_start,
    uniform, token_index: from `pack`; T: the padded length. distance: [2P-1, D] relative position
    table, read when relative is 1 (relative_key) or 2 (relative_key_query). Writes context [M, H]
    and, when write_probs, the probabilities into probs [B, N, T, T] at the tokens' padded positions
    (probs must hold zeros: the entries of uncomputed positions are left as they are).

    The two products per (sequence, head) run on kernels.packed's register-blocked micro-kernel (`attend`
    says how): on MiniLM 32x128 attention was a fifth of a forward pass with the rank-4 loops it replaced.
    """
    S = seq_start.shape[0] - 1
    if not parallel:
        for job in range(S * n_heads):
            attend(job // n_heads, job % n_heads, qkv, qkv_bias, seq_start, key_start, uniform, token_index, T,
                   n_heads, distance, relative, context, probs, write_probs)
    else:
        for job in prange(S * n_heads):
            attend(job // n_heads, job % n_heads, qkv, qkv_bias, seq_start, key_start, uniform, token_index, T,
                   n_heads, distance, relative, context, probs, write_probs)
