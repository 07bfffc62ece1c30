"""GEMMs on weights packed once: out = a @ w for the fast path, faster than BLAS on the shapes BERT runs.

Why not BLAS? OpenBLAS copies the weight matrix into its own panel layout on every call. For one 16-token
text that copy is most of the work: MiniLM's 42 MB of weights are read, written and read again for 16
rows of arithmetic. Here the weights are packed once, at load (`pack`): w [K, N] becomes P panels of NR
columns, each a contiguous [K, NR] block, so that a call streams every weight once, in order.

The arithmetic is a register-blocked micro-kernel (`_micro`): a group of rows of `a` times one panel, the
rows x NR sums held in vector registers for a whole chunk of K, one fused multiply-add per row and vector
per k. A panel is two of the machine's vectors wide (`vector_bytes`): NR = 32 float32 with AVX-512, 16 with
AVX2. matmul_block's groups are GROUP rows: 12 with AVX-512 (24 of its 32 zmm registers hold sums), 6 with
AVX2 (12 of 16 ymm, leaving room for the panel's two vectors and a broadcast). The micro-kernel prefetches
the panel PREFETCH rows ahead, which matters when few rows of `a` meet each weight (one text): the weights
then stream from memory, and the hardware prefetchers alone left the core waiting. Numba's vectorizer never
keeps such a block of sums in registers, so it is written as LLVM vector IR in a Numba intrinsic. Measured
on one core, float32, against OpenBLAS single-threaded on the same machine:
  - Zen 5 (AVX-512, 6-row groups, no prefetch): 185 GFLOP/s on 18 x 384 x 1152 (OpenBLAS: 95), 215 on 4098
    x 384 x 1536 (188);
  - Zen 3 (AVX2, a busy 2-core VM, medians of 9, no prefetch): 62 on 18 x 384 x 1152 (40), 46-52 on 640 to
    4096 x 384 x 1536 (52-62), 57 on 4096 x 1536 x 384 (63-65): large GEMMs up to a quarter below OpenBLAS
    there. Copying `a` into groups (matmul_block) gained another 5-15%;
  - Sapphire Rapids (AVX-512 at about 2 GHz, a noisy 2-core VM, medians of 9 in one process): 12-row
    groups and the prefetch took 16 x 384 x 1536 (weights from memory) from 40 to 53 GFLOP/s, 48 x 3072 x
    768 from 60 to 71, 4096 x 384 x 1536 from 68 to 76 (torch's oneDNN: 71). With the panel in L1 the
    micro-kernel runs at 135 GFLOP/s with 12 rows, 97 with 6 (both prefetching). One core streams about 9
    GB/s from memory here, so one text's 42 MB bound its GEMMs. Built for AVX2 there (NUMBA_CPU_NAME=haswell)
    the prefetch changed large GEMMs by -9% to +12% (noise is about that).

Every output element is one sum over k in one fixed order (chunks of KC values, a fused multiply-add for
each, chunks added in order), whatever the other rows of `a`, the block a row is computed in and the
thread computing it: a row's result never depends on the rest of its batch, which BLAS cannot promise.

Twin: `a @ w` (model.linear without its bias). tests/test_kernels.py holds them together.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils, codegen, config
from numba.extending import intrinsic


def vector_bytes(features: str | None = None) -> int:
    """The width of the SIMD registers Numba compiles for: 64 bytes with AVX-512, 32 with AVX2, else 16.

    features: LLVM's feature string ("+avx2,-avx512f,..."); by default the one Numba compiles with:
    NUMBA_CPU_FEATURES, or the host's as Numba reads them (without AVX under NUMBA_ENABLE_AVX=0). Numba's
    cache keys compiled code by CPU and features, so code built with one width is never loaded on a machine
    that wants another.
    """
    if features is None:
        features = config.CPU_FEATURES if config.CPU_FEATURES is not None else codegen.get_host_cpu_features()
    flags = set(features.split(","))
    return 64 if "+avx512f" in flags else 32 if "+avx2" in flags and "+fma" in flags else 16


MR = 6  # `a` read in place (kernels.cpu.attend, matmul_block's small blocks): the rows left after the calls of
#   GROUP rows go at most MR a call (_micro_rows)
VECTOR_BYTES = vector_bytes()  # one register: the micro-kernel's sums are rows x 2 registers
NR = {np.dtype(np.float32): VECTOR_BYTES // 2, np.dtype(np.float64): VECTOR_BYTES // 4}  # panel width: two vectors
GROUP = 12 if VECTOR_BYTES == 64 else MR  # rows per micro-kernel call in matmul_block, as many as the registers
#   hold: 24 sums of AVX-512's 32 registers, 12 of AVX2's 16. One Sapphire Rapids core, a panel chunk in L1:
#   12 rows 135 GFLOP/s, 6 rows 97
GROUP_2_3, GROUP_1_3 = 2 * GROUP // 3, GROUP // 3  # the last group's rows are computed as a third of GROUP at a
#   time (literals for _micro)
PREFETCH = 32  # the micro-kernel asks for the panel's row this many rows ahead: a panel read from memory (few
#   rows of `a`: one text) arrives in time. On a Sapphire Rapids core 16 x 384 x 1536 with the weights in
#   memory: 10-20% faster; 16 and 32 rows ahead alike, 8 less
KC = 256  # k per chunk: a [KC, NR] panel chunk (32 KB with AVX-512, 16 with AVX2) stays in L1 while a block
#   of rows passes over it
A_BYTES = 128 * 1024  # a block of `a`'s rows, copied in groups of GROUP (matmul_block), stays in L2 while every
#   panel passes over it: 84 rows of K = 384 float32. On a Zen 3 core 64 to 320 KB were alike
MIN_ROWS = 48  # but never fewer rows than this (a multiple of GROUP), or each panel streams from L3 for too few
#   of them: BERT-base's 48 x 3072 x 768 ran at 36 GFLOP/s in blocks of 6 rows (A_BYTES's), 64 in blocks of 48
#   (295 KB of `a`)


def pack(weight: np.ndarray) -> np.ndarray:
    """w [K, N] -> [P, K, NR] panels (N padded with zero columns to P * NR), read-only."""
    K, N = weight.shape
    width = NR[weight.dtype]
    P = -(-N // width)
    padded = np.zeros((K, P * width), weight.dtype)
    padded[:, :N] = weight
    panels = np.ascontiguousarray(padded.reshape(K, P, width).transpose(1, 0, 2))
    panels.flags.writeable = False
    return panels


def unpack(panels: np.ndarray, columns: int) -> np.ndarray:
    """`pack` undone: [P, K, NR] -> w [K, columns]."""
    P, K, width = panels.shape
    return panels.transpose(1, 0, 2).reshape(K, P * width)[:, :columns]


def element(context, builder, array_type, array, index, inbounds=False):
    """LLVM IR: a pointer to element `index` of an array's memory (flat, from its data pointer). inbounds: the
    index is known to lie inside the array (LLVM may then vectorize loops over it; see kernels.cpu.read)."""
    base = context.make_array(array_type)(context, builder, array).data
    return builder.gep(base, [index], inbounds=inbounds)


def counted_loop(builder, name, start, stop, carried, body):
    """LLVM IR for `for i in range(start, stop)` with values carried from one iteration to the next: carried,
    their values before the first; body(builder, i, values) emits one iteration and returns the next values.
    The values after the last iteration (carried when there is none). Numba's own loops are not used where
    vectors must stay in registers: its vectorizer spills them or narrows them (see _micro, kernels.cpu)."""
    i64 = ir.IntType(64)
    entry = builder.block
    loop = builder.append_basic_block(f"{name}.loop")
    done = builder.append_basic_block(f"{name}.done")
    builder.cbranch(builder.icmp_signed("<", start, stop), loop, done)

    builder.position_at_end(loop)
    i = builder.phi(i64)
    values = [builder.phi(value.type) for value in carried]
    updated = body(builder, i, values)
    last = builder.block
    next_i = builder.add(i, ir.Constant(i64, 1))
    i.add_incoming(start, entry)
    i.add_incoming(next_i, last)
    for phi, first, new in zip(values, carried, updated):
        phi.add_incoming(first, entry)
        phi.add_incoming(new, last)
    builder.cbranch(builder.icmp_signed("<", next_i, stop), loop, done)

    builder.position_at_end(done)
    finals = []
    for first, new in zip(carried, updated):
        final = builder.phi(first.type)
        final.add_incoming(first, entry)
        final.add_incoming(new, last)
        finals.append(final)
    return finals


@intrinsic
def _micro(typingctx, a, a_start, lda, a_step, b, b_start, c, c_start, ldc, k_count, accumulate, rows, live):
    """c[i, j] (+)= sum over k < k_count of a[i, k] * b[k, j], for i < live, j < NR.

    a, b, c: arrays of one float dtype, addressed as flat memory from element a_start (rows lda apart, and
    a row's elements a_step apart: 1 for a row-major matrix), b_start (a contiguous [k_count, NR] panel
    chunk), c_start (rows ldc apart). accumulate: add the sums to c, or overwrite it. rows: a literal from
    1 to GROUP, the rows computed; live <= rows: the rows stored (the others are padding).
    """
    if not isinstance(rows, types.IntegerLiteral):
        return None
    dtype = a.dtype
    sig = types.void(a, a_start, lda, a_step, b, b_start, c, c_start, ldc, k_count, accumulate, rows, live)
    mr = rows.literal_value

    def codegen(context, builder, signature, args):
        a_arr, a0, lda_, a_step_, b_arr, b0, c_arr, c0, ldc_, k_n, acc_flag, _, live_rows = args
        scalar = context.get_value_type(dtype)
        lanes = VECTOR_BYTES // np.dtype(dtype.name).itemsize
        vec = ir.VectorType(scalar, lanes)
        vectors = NR[np.dtype(dtype.name)] // lanes
        i64 = ir.IntType(64)

        a_ptr = element(context, builder, signature.args[0], a_arr, a0)
        b_ptr = builder.bitcast(element(context, builder, signature.args[4], b_arr, b0), vec.as_pointer())
        c_ptr = element(context, builder, signature.args[6], c_arr, c0)
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]),
                                             f"llvm.fma.v{lanes}{'f32' if dtype == types.float32 else 'f64'}")
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        prefetch = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                                  "llvm.prefetch.p0")
        zero = ir.Constant(vec, [0.0] * lanes)
        splat = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)

        def one_k(builder, k, sums):  # sums[i * vectors + j] += a[i, k] * b[k, vector j], for every row i
            panel_row = builder.gep(b_ptr, [builder.mul(k, ir.Constant(i64, vectors))])
            a_k = builder.mul(k, a_step_)
            b_vectors = [builder.load(builder.gep(panel_row, [ir.Constant(i64, j)]), align=8) for j in range(vectors)]
            ahead = builder.bitcast(builder.gep(panel_row, [ir.Constant(i64, PREFETCH * vectors)]), i8p)
            for line in range(0, VECTOR_BYTES * vectors, 64):  # read, keep in every level, data
                builder.call(prefetch, [builder.gep(ahead, [ir.Constant(i64, line)]), ir.Constant(i32, 0),
                                        ir.Constant(i32, 3), ir.Constant(i32, 1)])
            updated = []
            for i in range(mr):
                a_ik = builder.load(builder.gep(a_ptr, [builder.add(builder.mul(ir.Constant(i64, i), lda_), a_k)]))
                broadcast = builder.shuffle_vector(builder.insert_element(ir.Constant(vec, ir.Undefined), a_ik,
                                                                          ir.Constant(ir.IntType(32), 0)),
                                                   ir.Constant(vec, ir.Undefined), splat)
                updated += [builder.call(fma, [broadcast, b_vectors[j], sums[i * vectors + j]]) for j in range(vectors)]
            return updated

        sums = counted_loop(builder, "micro", ir.Constant(i64, 0), k_n, [zero] * (mr * vectors), one_k)
        finals = [sums[i * vectors:(i + 1) * vectors] for i in range(mr)]
        add = builder.icmp_unsigned("!=", acc_flag, ir.Constant(acc_flag.type, 0))
        for i in range(mr):
            with builder.if_then(builder.icmp_signed("<", ir.Constant(live_rows.type, i), live_rows), likely=True):
                row = builder.bitcast(builder.gep(c_ptr, [builder.mul(ir.Constant(i64, i), ldc_)]), vec.as_pointer())
                for j in range(vectors):
                    target = builder.gep(row, [ir.Constant(i64, j)])
                    old = builder.load(target, align=8)
                    builder.store(builder.select(add, builder.fadd(old, finals[i][j]), finals[i][j]), target, align=8)
        return context.get_dummy_value()

    return sig, codegen


def of_dtype(value):
    """f(array) = value(array's dtype) in compiled code, as a literal: a constant that LLVM can unroll and
    vectorize loops by, and that intrinsics wanting one (transpose_rows' rows) accept. value is computed once
    per dtype, when a kernel is compiled. (A function's result would be typed as a plain int64, as would a
    module attribute: `packed.GROUP`; a module global read by name stays a literal.)"""
    @intrinsic
    def function(typingctx, array):
        constant = value(np.dtype(array.dtype.name))
        literal = types.literal(constant)

        def codegen(context, builder, signature, args):
            return context.get_constant(literal.literal_type, constant)
        return literal(array), codegen

    return function


lanes = of_dtype(lambda dtype: VECTOR_BYTES // dtype.itemsize)  # a vector's lanes of the array's dtype


@intrinsic
def transpose_rows(typingctx, a, a_start, lda, out, out_start, ldo, k_count, live, rows):
    """out[out_start + k * ldo + r] = a[a_start + r * lda + k] for k < k_count and r < rows (0 for rows r >=
    live, which are not read): rows of `a` copied k-major. matmul_block copies a group (GROUP rows, ldo =
    GROUP) so, as its micro-kernel reads it; kernels.cpu.attend its queries, a vector's lanes at a time.

    rows: a literal, at most the vector's lanes L (float32 groups: GROUP <= L; float64 groups are copied value
    by value). k_count: a multiple of L. L columns at a time: the rows loaded as L vectors (zero past rows),
    transposed in registers in log2(L) rounds of two-vector shuffles (round d swaps the off-diagonal d x d
    blocks of every 2d x 2d block), and each of the L vectors stored as its first `rows` values. A [48, 1536]
    block on a Sapphire Rapids core: 41 us value by value, 15 us so.
    """
    if not isinstance(rows, types.IntegerLiteral):
        return None
    dtype = np.dtype(a.dtype.name)
    lanes = VECTOR_BYTES // dtype.itemsize
    count = rows.literal_value
    sig = types.void(a, a_start, lda, out, out_start, ldo, k_count, live, rows)

    def codegen(context, builder, signature, args):
        if count > lanes:  # never called (callers check `lanes`)
            return context.get_dummy_value()
        a_arr, a0, lda_, out_arr, o0, ldo_, k_n, live_rows, _ = args
        vec = ir.VectorType(context.get_value_type(signature.args[0].dtype), lanes)
        i64, i32, flags = ir.IntType(64), ir.IntType(32), ir.VectorType(ir.IntType(1), lanes)
        pointer = vec.as_pointer()
        a_ptr = element(context, builder, signature.args[0], a_arr, a0)
        o_ptr = element(context, builder, signature.args[3], out_arr, o0)
        suffix = f"v{lanes}{'f32' if dtype == np.float32 else 'f64'}.p0"
        load = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [pointer, i32, flags, vec]),
                                              f"llvm.masked.load.{suffix}")
        store = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [vec, pointer, i32, flags]),
                                               f"llvm.masked.store.{suffix}")
        zero = ir.Constant(vec, [0.0] * lanes)
        align = ir.Constant(i32, dtype.itemsize)
        stored_lanes = ir.Constant(flags, [c < count for c in range(lanes)])

        def shuffle(x, y, mask):
            return builder.shuffle_vector(x, y, ir.Constant(ir.VectorType(i32, lanes), mask))

        def one_block(builder, block, _):
            k = builder.mul(block, ir.Constant(i64, lanes))
            vectors = []
            for row in range(count):  # a row past `live` is not loaded (a masked load of no lanes): zero
                there = builder.icmp_signed("<", ir.Constant(i64, row), live_rows)
                mask = builder.insert_element(ir.Constant(flags, ir.Undefined), there, ir.Constant(i32, 0))
                mask = shuffle(mask, ir.Constant(flags, ir.Undefined), [0] * lanes)
                address = builder.gep(a_ptr, [builder.add(builder.mul(ir.Constant(i64, row), lda_), k)])
                vectors.append(builder.call(load, [builder.bitcast(address, pointer), align, mask, zero]))
            vectors += [zero] * (lanes - count)
            d = 1
            while d < lanes:  # rows i and i + d (bit d of i clear) trade their off-diagonal d x d blocks
                swapped = list(vectors)
                for i in (i for i in range(lanes) if not i & d):
                    swapped[i] = shuffle(vectors[i], vectors[i + d], [c if not c & d else lanes + c - d for c in range(lanes)])
                    swapped[i + d] = shuffle(vectors[i], vectors[i + d], [c + d if not c & d else lanes + c for c in range(lanes)])
                vectors, d = swapped, 2 * d
            for column in range(lanes):  # vectors[column]: column k + column of the rows
                address = builder.gep(o_ptr, [builder.mul(builder.add(k, ir.Constant(i64, column)), ldo_)])
                builder.call(store, [vectors[column], builder.bitcast(address, pointer), align, stored_lanes])
            return []

        blocks = builder.sdiv(k_n, ir.Constant(i64, lanes))
        counted_loop(builder, "transpose", ir.Constant(i64, 0), blocks, [], one_block)
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(inline="always")
def _micro_rows(a, a_start, lda, a_step, b, b_start, c, c_start, ldc, k_count, accumulate, rows):
    """_micro for a row count known only at run time (the last block of rows)."""
    if rows == 6:
        _micro(a, a_start, lda, a_step, b, b_start, c, c_start, ldc, k_count, accumulate, 6, 6)
    elif rows == 5:
        _micro(a, a_start, lda, a_step, b, b_start, c, c_start, ldc, k_count, accumulate, 5, 5)
    elif rows == 4:
        _micro(a, a_start, lda, a_step, b, b_start, c, c_start, ldc, k_count, accumulate, 4, 4)
    elif rows == 3:
        _micro(a, a_start, lda, a_step, b, b_start, c, c_start, ldc, k_count, accumulate, 3, 3)
    elif rows == 2:
        _micro(a, a_start, lda, a_step, b, b_start, c, c_start, ldc, k_count, accumulate, 2, 2)
    else:
        _micro(a, a_start, lda, a_step, b, b_start, c, c_start, ldc, k_count, accumulate, 1, 1)


@numba.njit(inline="always")
def _micro_in_place(a, a_start, lda, a_step, b, b_start, c, c_start, ldc, k_count, accumulate, rows):
    """_micro on the next GROUP of `rows` rows of `a` read in place (rows lda apart, a row's values a_step
    apart), or on up to MR of them when fewer are left (no padding: rows past them may not exist); the number
    of rows done."""
    if rows >= GROUP:
        _micro(a, a_start, lda, a_step, b, b_start, c, c_start, ldc, k_count, accumulate, GROUP, GROUP)
        return GROUP
    done = min(MR, rows)
    _micro_rows(a, a_start, lda, a_step, b, b_start, c, c_start, ldc, k_count, accumulate, done)
    return done


@numba.njit(inline="always")
def _micro_group(a, a_start, b, b_start, c, c_start, ldc, k_count, accumulate, live):
    """_micro for a group of matmul_block's copy ([K, GROUP], k-major): its first `live` rows (the rest zero),
    computed as GROUP, two thirds or one third of it, whichever holds them."""
    if live > GROUP_2_3:
        _micro(a, a_start, 1, GROUP, b, b_start, c, c_start, ldc, k_count, accumulate, GROUP, live)
    elif live > GROUP_1_3:
        _micro(a, a_start, 1, GROUP, b, b_start, c, c_start, ldc, k_count, accumulate, GROUP_2_3, live)
    else:
        _micro(a, a_start, 1, GROUP, b, b_start, c, c_start, ldc, k_count, accumulate, GROUP_1_3, live)


@numba.njit(nogil=True, cache=True)
def matmul_block(a, panels, out, first, last, first_panel, last_panel):
    """out[first:last, columns of panels first_panel..last_panel-1] = the same block of a @ w, w packed by
    `pack`. a [M, K] and out [M, N] C-contiguous.

    Rows of `a` are copied, a block at a time (A_BYTES, at least MIN_ROWS rows), into groups of GROUP rows
    laid out k-major ([K, GROUP] per group, the last padded with zeros): the micro-kernel then reads one
    stream of `a`, in order, where it read GROUP rows K apart. Every sum is the same as without the copy.
    Float32 groups are transposed in registers (transpose_rows), 2.8x faster than value by value: the copy
    had cost about a tenth of GEMMs with N = 384 (a block's copy against its arithmetic goes as 1 / N).
    Fewer than MIN_ROWS rows (a team's blocks of panels, as for one text) are one block, read in place: GROUP
    rows a micro-kernel call, then up to MR.
    On one Zen 3 core (AVX2, medians of 9 and 7) MiniLM's GEMMs ran 5-15% faster (640 x 384 x 1536: 52 -> 57-60
    GFLOP/s, 4096 x 1536 x 384: 60 -> 63-68), BERT-base's as before (48 x 3072 x 768: 66 -> 64, 48 x 768 x 3072:
    59 -> 61).
    nogil: kernels.gemm runs blocks on several Python threads at once.
    """
    K = a.shape[1]
    _, _, width = panels.shape
    N = out.shape[1]
    flat_a, flat_b, flat_c = a.reshape(-1), panels.reshape(-1), out.reshape(-1)
    in_place = last - first < MIN_ROWS  # few rows (a team's blocks of panels): `a` read in place, one block.
    if in_place:                        # Copied, it cost each block more than it saved: 16 x 1536 took 55 us
        mc = max(last - first, 1)       # a block (it is allocated)
    else:
        groups = max(MIN_ROWS // GROUP, A_BYTES // (max(K, 1) * GROUP * a.itemsize))  # per block of rows
        mc = max(1, min(groups, -(-(last - first) // GROUP))) * GROUP
    vectorized = K - K % lanes(a) if lanes(a) >= GROUP else 0  # float32: K's columns transposed in registers,
    #   L at a time (0.2 ns a value); the rest value by value
    block = np.empty(0 if in_place else mc * K, a.dtype)  # group g: block[g*K*GROUP : (g+1)*K*GROUP] as [K, GROUP]
    edge = np.empty((mc, width), out.dtype)  # the last panel when it is padded: its sums land here first
    flat_edge = edge.reshape(-1)
    for i0 in range(first, last, mc):
        i1 = min(i0 + mc, last)
        for g in range(0 if in_place else -(-(i1 - i0) // GROUP)):
            live = min(GROUP, i1 - i0 - g * GROUP)
            top = i0 + g * GROUP
            if vectorized:
                transpose_rows(flat_a, top * K, K, block, g * K * GROUP, GROUP, vectorized, live, GROUP)
            if vectorized < K:  # the rest: written in order, read from GROUP rows at once (0.56 ns a value; a row
                group = block[g * K * GROUP:(g + 1) * K * GROUP].reshape(K, GROUP)  # at a time, writing GROUP
                for k in range(vectorized, K):                                       # values apart, took 1.4)
                    for r in range(GROUP):
                        group[k, r] = a[top + r, k] if r < live else 0
        for p in range(first_panel, last_panel):
            j0 = p * width
            whole = j0 + width <= N
            for k0 in range(0, K, KC):  # one [KC, NR] chunk of the panel in L1, every group of rows over it
                k_count = min(KC, K - k0)
                i = i0
                while i < i1:
                    c, c_start, ldc = (flat_c, i * N + j0, N) if whole else (flat_edge, (i - i0) * width, width)
                    if in_place:
                        i += _micro_in_place(flat_a, i * K + k0, K, 1, flat_b, (p * K + k0) * width, c, c_start, ldc,
                                             k_count, k0 > 0, i1 - i)
                    else:  # group (i - i0) / GROUP, row k0
                        _micro_group(block, (i - i0) * K + k0 * GROUP, flat_b, (p * K + k0) * width, c, c_start, ldc,
                                     k_count, k0 > 0, min(GROUP, i1 - i))
                        i += GROUP
            if not whole:
                for i in range(i0, i1):
                    for j in range(N - j0):
                        out[i, j0 + j] = edge[i - i0, j]


def matmul(a: np.ndarray, panels: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out = a @ w on the calling thread."""
    matmul_block(a, panels, out, 0, a.shape[0], 0, panels.shape[0])
    return out
