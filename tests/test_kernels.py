"""Every Numba kernel against its reference twin in bertnp/model.py, float32 and float64, hypothesis shapes.

Kernels are called with the argument kinds bertnp.fast passes (weights read-only, Python ints and floats
for scalars), so the tests reuse the compilations a forward pass makes. A failure prints the kernel and
its max abs error; the erf and exp sweeps print their worst error in float32 ULPs.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import types

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from parity import assert_close

from bertnp import model
from bertnp.erf import erf as erf_reference
from bertnp.errors import BertnpError
from bertnp.kernels import cpu, gemm, packed, set_threads, team
from bertnp.weights import LayerNorm, Linear

DTYPES = [np.float32, np.float64]
ATOL = {np.float32: 1e-5, np.float64: 1e-12}
SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.blas_free
def test_the_checkout_has_no_top_level_package_but_bertnp():
    """`python -m pytest` puts the checkout's root on sys.path, where a package folder shadows any installed
    distribution of its name: a kernels/ there once shadowed Hugging Face's `kernels`, which transformers
    imports from 5.25 on, and every test that loaded a transformers model failed. Ours is bertnp/kernels."""
    packages = sorted(entry.name for entry in os.scandir(ROOT)
                      if os.path.isfile(os.path.join(entry.path, "__init__.py")))
    assert packages == ["bertnp"], f"package folders at the checkout's root: {packages}"


def frozen(array):
    """A read-only view, as bertnp.fast.prepare hands weights to the kernels."""
    view = np.ascontiguousarray(array).view(np.ndarray)
    view.flags.writeable = False
    return view


def ulps(got, want64):
    """|got - want| in units of the last place of float32 at want."""
    spacing = np.spacing(np.abs(want64.astype(np.float32))).astype(np.float64)
    return np.abs(got.astype(np.float64) - want64) / spacing


@numba.njit(cache=True)
def erf_all(x, out):
    for i in range(x.shape[0]):
        out[i] = cpu.erf(x[i])


@numba.njit(cache=True)
def exp_all(x, out):
    for i in range(x.shape[0]):
        out[i] = cpu.exp(x[i])


@st.composite
def masks(draw, B, T):
    """Right padding mostly; sometimes left padding, holes, or rows with no real token."""
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    kind = draw(st.sampled_from(["right", "right", "any", "empty_row"]))
    lengths = rng.integers(1, T + 1, B)
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.int64)
    if kind == "any":
        mask = rng.integers(0, 2, (B, T))
    elif kind == "empty_row":
        mask[rng.integers(0, B)] = 0
    return mask


def computed_positions(mask):
    """[B, T] bool: the positions bertnp.fast computes (real tokens, position 0, rows with no real token)."""
    keep = mask != 0
    keep[:, 0] = True
    keep[~(mask != 0).any(axis=1)] = True
    return keep


# ---- scalar math ---------------------------------------------------------------------------------------


@pytest.mark.blas_free
def test_erf_float32_within_ulps_of_exact():
    x = np.concatenate([np.linspace(0, 4.5, 8_000_001, dtype=np.float32),
                        np.geomspace(1e-30, 1, 200_001).astype(np.float32)])
    x = np.concatenate([x, -x])
    got = np.empty_like(x)
    erf_all(x, got)
    error = ulps(got, erf_reference(x.astype(np.float64)))
    worst = float(error.max())
    print(f"erf float32: max error {worst:.3f} ulp at x = {x[error.argmax()]!r} over {x.size} points")
    assert worst <= 1.5, f"erf float32: max error {worst:.3f} ulp at x = {x[error.argmax()]!r}"
    special = np.array([0.0, -0.0, np.inf, -np.inf, 10.0, -10.0, np.nan], np.float32)
    out = np.empty_like(special)
    erf_all(special, out)
    np.testing.assert_array_equal(out[:6], [0.0, 0.0, 1.0, -1.0, 1.0, -1.0])
    assert np.isnan(out[6])


def test_exp_float32_within_ulps_of_exact():
    x = np.linspace(-87.3, 88.0, 4_000_001, dtype=np.float32)
    got = np.empty_like(x)
    exp_all(x, got)
    error = ulps(got, np.exp(x.astype(np.float64)))
    worst = float(error.max())
    print(f"exp float32: max error {worst:.3f} ulp at x = {x[error.argmax()]!r}")
    assert worst <= 1.5, f"exp float32: max error {worst:.3f} ulp"
    edges = np.array([-1000.0, -89.0, 0.0, 1000.0, np.nan], np.float32)
    out = np.empty_like(edges)
    exp_all(edges, out)
    assert out[0] == out[1] == 0.0 and out[2] == 1.0
    assert out[3] == np.float32(math.exp(88.0)), "above 88, exp saturates at e^88"
    assert np.isnan(out[4])


@numba.njit(cache=True)
def exp_rows_all(panel, rows, top, total):
    cpu.exp_rows(panel, 0, rows, top, total)


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_rows_matches_exp_and_sums_each_column_in_order(dtype):
    """attend's softmax step (its own IR for float32): exp within the same ulps as exp_float32 (libm for
    float64), and each column's float64 sum added row by row."""
    width = packed.NR[np.dtype(dtype)]
    x = np.linspace(-87.3, 88.0, width * 125_000, dtype=dtype)
    panel, top, total = x.copy(), np.zeros(width, dtype), np.full(width, 0.5)
    exp_rows_all(panel, x.size // width, top, total)
    if dtype == np.float32:
        error = ulps(panel, np.exp(x.astype(np.float64)))
        worst = float(error.max())
        print(f"exp_rows float32: max error {worst:.3f} ulp at x = {x[error.argmax()]!r}")
        assert worst <= 1.5, f"exp_rows float32: max error {worst:.3f} ulp"
    else:
        assert_close("exp_rows float64", panel, np.exp(x), 1e-15 * math.exp(88.0))
    in_order = np.cumsum(np.concatenate([[np.full(width, 0.5)], panel.reshape(-1, width).astype(np.float64)]), 0)
    np.testing.assert_array_equal(total, in_order[-1])
    edges = np.array([-1000.0, -89.0, 0.0, 1000.0, np.nan, 3.0], dtype)
    rows = -(-edges.size // width)  # whole rows of the panel (width 4 without AVX: two)
    shifted, top = np.resize(edges, rows * width) + 2, np.full(width, 2, dtype)  # exp(x - top)
    exp_rows_all(shifted, rows, top, np.zeros(width))
    assert shifted[0] == 0.0 and shifted[2] == 1.0 and np.isnan(shifted[4])
    if dtype == np.float32:
        assert shifted[1] == 0.0, "below -88, exp is 0"
        assert shifted[3] == np.float32(math.exp(88.0)), "above 88, exp saturates at e^88"
        got = np.empty(1, dtype)
        exp_all(np.array([3.0], dtype), got)
        assert shifted[5] == got[0], "exp_rows and exp_float32 round alike"


def test_float64_math_is_libm():
    x = np.linspace(-7, 7, 10001)
    got = np.empty_like(x)
    erf_all(x, got)
    assert_close("erf float64", got, erf_reference(x), 1e-15)
    exp_all(x, got)
    assert_close("exp float64", got, np.exp(x), 1e-15 * math.exp(7))


# ---- packing -------------------------------------------------------------------------------------------


@SETTINGS
@given(data=st.data())
def test_pack_lists_the_computed_positions(data):
    B, T = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 12))
    mask = data.draw(masks(B, T))
    token_index, seq_start, key_start, uniform = cpu.pack(mask)
    keep = computed_positions(mask)
    np.testing.assert_array_equal(token_index, np.flatnonzero(keep))
    np.testing.assert_array_equal(np.diff(seq_start), keep.sum(axis=1))
    np.testing.assert_array_equal(uniform, ~(mask != 0).any(axis=1))
    for b in range(B):
        keys = token_index[key_start[b]:seq_start[b + 1]] - b * T
        expected = np.arange(T) if uniform[b] else np.flatnonzero(mask[b])
        np.testing.assert_array_equal(keys, expected)


# ---- row kernels ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@SETTINGS
@given(data=st.data())
def test_embed_layer_norm_matches_embeddings(dtype, data):
    B, T, H = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 12)), data.draw(st.integers(1, 40))
    V, types_, absolute = data.draw(st.integers(1, 30)), data.draw(st.integers(1, 3)), data.draw(st.booleans())
    eps = data.draw(st.sampled_from([1e-12, 1e-5]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    w = types.SimpleNamespace(word=rng.standard_normal((V, H)).astype(dtype),
                              position=rng.standard_normal((T + 3, H)).astype(dtype),
                              token_type=rng.standard_normal((types_, H)).astype(dtype),
                              norm=LayerNorm(1 + 0.1 * rng.standard_normal(H).astype(dtype),
                                             0.1 * rng.standard_normal(H).astype(dtype)))
    config = types.SimpleNamespace(position_embedding_type="absolute" if absolute else "relative_key",
                                   layer_norm_eps=eps)
    ids, token_types = rng.integers(0, V, (B, T)), rng.integers(0, types_, (B, T))
    mask = data.draw(masks(B, T))
    token_index, *_ = cpu.pack(mask)
    out = np.empty((token_index.size, H), dtype)
    cpu.embed_layer_norm(ids, token_types, token_index, frozen(w.word), frozen(w.position), frozen(w.token_type),
                         frozen(w.norm.weight), frozen(w.norm.bias), eps, absolute, out, data.draw(st.booleans()))
    want = model.embeddings(ids, token_types, w, config, np).reshape(B * T, H)[token_index]
    assert_close(f"embed_layer_norm {np.dtype(dtype).name}", out, want, ATOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@SETTINGS
@given(data=st.data())
def test_bias_residual_layer_norm_matches_layer_norm(dtype, data):
    M, H = data.draw(st.integers(1, 50)), data.draw(st.integers(1, 70))
    eps = data.draw(st.sampled_from([1e-12, 1e-5]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    h, x = rng.standard_normal((M, H)).astype(dtype), rng.standard_normal((M, H)).astype(dtype)
    bias = rng.standard_normal(H).astype(dtype)
    norm = LayerNorm(1 + 0.1 * rng.standard_normal(H).astype(dtype), 0.1 * rng.standard_normal(H).astype(dtype))
    want = model.layer_norm(h + bias + x, norm, eps, np)
    cpu.bias_residual_layer_norm(h, frozen(bias), x, frozen(norm.weight), frozen(norm.bias), eps,
                                 data.draw(st.booleans(), label="parallel"))
    assert_close(f"bias_residual_layer_norm {np.dtype(dtype).name}", x, want, ATOL[dtype])


@pytest.mark.parametrize("name", list(model.ACTIVATIONS))
@pytest.mark.parametrize("dtype", DTYPES)
@SETTINGS
@given(data=st.data())
def test_bias_activation_matches_activations(name, dtype, data):
    M, I = data.draw(st.integers(1, 20), label="M"), data.draw(st.integers(1, 90), label="I")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    x = (3 * rng.standard_normal((M, I))).astype(dtype)
    x.flat[: min(x.size, 4)] = [0.0, -20.0, 20.0, -100.0][: min(x.size, 4)]  # the tails, where exp saturates
    bias = rng.standard_normal(I).astype(dtype)
    with np.errstate(over="ignore"):  # the reference's exp overflows to inf in the tails, correctly
        want = model.ACTIVATIONS[name](x + bias, np)
    cpu.bias_activation(x, frozen(bias), cpu.ACTIVATION_CODES[name], data.draw(st.booleans(), label="parallel"))
    assert_close(f"bias_activation {name} {np.dtype(dtype).name}", x, want, ATOL[dtype])


# ---- attention -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@SETTINGS
@given(data=st.data())
def test_attention_matches_self_attention(dtype, data):
    """Context and probabilities of every computed query, pad-free, against the padded reference."""
    B = data.draw(st.integers(1, 3), label="B")
    T = data.draw(st.sampled_from([1, 2, 5, 9, 16, 127, 128, 129]), label="T")  # query blocks of 128
    N, D = data.draw(st.integers(1, 3), label="N"), data.draw(st.integers(1, 11), label="D")  # D % 4 != 0 too
    kind = data.draw(st.sampled_from(list(cpu.RELATIVE_CODES)), label="position_embedding_type")
    H, P = N * D, T + data.draw(st.integers(0, 3))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))

    def linear():
        return Linear(rng.standard_normal((H, H)).astype(dtype) / np.sqrt(H), 0.1 * rng.standard_normal(H).astype(dtype))

    w = types.SimpleNamespace(query=linear(), key=linear(), value=linear(),
                              distance=rng.standard_normal((2 * P - 1, D)).astype(dtype) if kind != "absolute" else None)
    config = types.SimpleNamespace(num_attention_heads=N, head_size=D, position_embedding_type=kind)
    x = rng.standard_normal((B, T, H)).astype(dtype)
    mask = data.draw(masks(B, T), label="mask")
    want_context, want_probs = model.self_attention(x, model.mask_bias(mask, dtype, np), w, config, np)

    token_index, seq_start, key_start, uniform = cpu.pack(mask)
    weight = np.concatenate([w.query.weight, w.key.weight, w.value.weight]).T  # [H, 3H]
    qkv = x.reshape(B * T, H)[token_index] @ weight  # [M, 3H]
    bias = frozen(np.concatenate([w.query.bias, w.key.bias, w.value.bias]))
    distance = frozen(w.distance if w.distance is not None else np.zeros((1, D), dtype))
    context = np.empty((token_index.size, H), dtype)
    probs = np.zeros((B, N, T, T), dtype)
    cpu.attention(qkv, bias, seq_start, key_start, uniform, token_index, T, N, distance, cpu.RELATIVE_CODES[kind],
                  context, probs, True, data.draw(st.booleans(), label="parallel"))
    name = f"attention {kind} {np.dtype(dtype).name}"
    assert_close(f"{name} context", context, want_context.reshape(B * T, H)[token_index], ATOL[dtype])
    rows = computed_positions(mask)[:, None, :].repeat(N, axis=1)  # [B, N, T] computed query rows
    assert_close(f"{name} probs", probs[rows], want_probs[rows], ATOL[dtype])
    assert not probs[~rows].any(), f"{name}: probabilities written for a query that was not computed"


# ---- threads -------------------------------------------------------------------------------------------


def test_parallel_kernels_run_on_the_workqueue_layer():
    """OpenMP threads spinning against OpenBLAS's cost 40x on 2 cores (bertnp/kernels/__init__.py): keep workqueue."""
    x = np.zeros((4, 8), np.float32)
    cpu.bias_activation(x, frozen(np.zeros(8, np.float32)), cpu.RELU, True)
    expected = os.environ.get("NUMBA_THREADING_LAYER", "workqueue")
    assert numba.threading_layer() == expected


def test_set_threads_sets_numba_and_blas():
    import threading

    from bertnp import kernels

    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = kernels.threads()
    blas_before = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    try:
        set_threads(1)
        assert numba.get_num_threads() == 1 and kernels.threads() == 1
        assert all(i["num_threads"] == 1 for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas")
        seen = []  # numba.set_num_threads is per Python thread: another thread must see the count too
        worker = threading.Thread(target=lambda: seen.append(kernels.threads()))
        worker.start()
        worker.join()
        assert seen == [1]
    finally:
        set_threads(before)
        if blas_before:
            threadpoolctl.threadpool_limits(limits=max(blas_before), user_api="blas")
    for bad in (0, -1, 1.5, True, numba.config.NUMBA_NUM_THREADS + 1):
        with pytest.raises(BertnpError, match="threads="):
            set_threads(bad)


def test_bertnp_num_threads_is_read_at_import():
    code = "import bertnp.kernels, numba; print(numba.get_num_threads())"
    env = dict(os.environ, BERTNP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
    env["BERTNP_NUM_THREADS"] = "many"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "BERTNP_NUM_THREADS='many'" in out.stderr


# ---- GEMMs ---------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(dtype=st.sampled_from(DTYPES), rows=st.integers(1, 300), inner=st.integers(1, 700),
       columns=st.integers(1, 100), seed=st.integers(0, 2**16))
def test_packed_gemm_equals_numpy(dtype, rows, inner, columns, seed):
    """kernels.packed against its twin a @ w, both against the float64 product: every shape, including K
    past one chunk (KC), rows past one block of `a` (A_BYTES) and a last panel padded with zero columns."""
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal((rows, inner)) / math.sqrt(inner)).astype(dtype)
    w = rng.standard_normal((inner, columns)).astype(dtype)
    out = np.full((rows, columns), np.nan, dtype)
    packed.matmul(a, packed.pack(w), out)
    exact = a.astype(np.float64) @ w.astype(np.float64)
    ours, numpy_error = np.abs(out - exact).max(), np.abs(a @ w - exact).max()
    bound = {np.float32: 4e-6, np.float64: 1e-14}[dtype]
    assert ours <= max(bound, 2 * numpy_error), f"packed GEMM {rows}x{inner}x{columns}: {ours:.2e} (numpy {numpy_error:.2e})"


GROUP = packed.GROUP  # a global of this module: Numba sees it as the literal that transpose_rows needs


@numba.njit
def _copy_group(a, out, live):
    packed.transpose_rows(a.reshape(-1), 0, a.shape[1], out, 0, GROUP, a.shape[1], live, GROUP)


@pytest.mark.parametrize("live", [packed.GROUP, packed.GROUP - 1, 1])
def test_group_of_a_transposed_in_registers_is_its_transpose_padded_with_zeros(live):
    """matmul_block copies GROUP rows of `a` at a time k-major, [K, GROUP], zero past the rows that exist; in
    float32, whole vectors of columns are transposed in registers (kernels.packed.transpose_rows)."""
    lanes = packed.VECTOR_BYTES // 4
    if lanes < packed.GROUP:
        pytest.skip(f"{lanes} float32 lanes, fewer than a group's {packed.GROUP} rows: copied value by value")
    a = np.random.default_rng(live).standard_normal((live, 3 * lanes)).astype(np.float32)  # only the live rows
    out = np.full(3 * lanes * packed.GROUP, np.nan, np.float32)
    _copy_group(a, out, live)
    expected = np.zeros((3 * lanes, packed.GROUP), np.float32)
    expected[:, :live] = a.T
    assert np.array_equal(out.reshape(3 * lanes, packed.GROUP), expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows,inner,columns", [(1400, 128, 96), (16, 1024, 1040)])  # split by rows; by panels
def test_gemm_rows_do_not_depend_on_threads_or_batch(dtype, rows, inner, columns):
    """kernels.gemm splits a GEMM between a team's threads; every row is one fixed sum, so results are
    bit-equal whatever the thread count and whatever rows surround it (alone, or in the whole batch)."""
    assert rows * inner * columns >= gemm.TEAM_MIN_WORK  # large enough to be split
    rng = np.random.default_rng(5)
    a = (rng.standard_normal((rows, inner)) / math.sqrt(inner)).astype(dtype)
    panels = packed.pack(rng.standard_normal((inner, columns)).astype(dtype))
    results = []
    for helpers in (0, 1, 2):
        crew = team.Team(helpers)
        crew.unpark()
        out = np.full((rows, columns), np.nan, dtype)
        results.append(gemm.matmul(a, panels, out, crew))
        crew.stop()
    assert_close("gemm.matmul", results[0], a @ packed.unpack(panels, columns), ATOL[dtype])
    for helpers, out in zip((1, 2), results[1:]):
        assert np.array_equal(out, results[0]), f"{helpers + 1} threads differ from 1"
    for row in (0, 7, rows - 1):
        alone = np.empty((1, columns), dtype)
        gemm.matmul(a[row : row + 1], panels, alone)
        assert np.array_equal(alone[0], results[0][row]), f"row {row} alone differs from row {row} in the batch"


WIDTH_CHILD = """
import sys
import numpy as np
from bertnp.kernels import cpu, packed

def inputs(dtype):  # the same arrays in parent and child: a GEMM past one chunk and one block, and attention
    rng = np.random.default_rng(11)
    a = rng.standard_normal((100, 300)).astype(dtype) / 17
    w = rng.standard_normal((300, 70)).astype(dtype)
    mask = np.ones((2, 40), np.int64)
    mask[1, 29:] = 0
    token_index, seq_start, key_start, uniform = cpu.pack(mask)
    qkv = rng.standard_normal((token_index.size, 3 * 48)).astype(dtype)
    bias = rng.standard_normal(3 * 48).astype(dtype)
    distance = np.zeros((1, 24), dtype)
    bias.flags.writeable = distance.flags.writeable = False
    return a, w, (qkv, bias, seq_start, key_start, uniform, token_index, 40, 2, distance, 0)

def results():
    out = {"width": np.array(packed.NR[np.dtype(np.float32)])}
    for dtype in (np.float32, np.float64):
        a, w, attention = inputs(dtype)
        product = np.empty((a.shape[0], w.shape[1]), dtype)
        packed.matmul(a, packed.pack(w), product)
        context = np.empty((attention[0].shape[0], 48), dtype)
        cpu.attention(*attention, context, np.zeros((1, 1, 1, 1), dtype), False, False)
        out[f"gemm {np.dtype(dtype).name}"], out[f"attention {np.dtype(dtype).name}"] = product, context
    return out

if __name__ == "__main__":
    np.savez(sys.argv[1], **results())
"""


@pytest.mark.blas_free
def test_results_do_not_depend_on_the_vector_width(tmp_path):
    """Panels are as wide as two of the machine's SIMD registers (kernels.packed.vector_bytes: 32 float32
    columns with AVX-512, 16 with AVX2), yet every output element is the same sequence of fused multiply-adds
    at any width: GEMMs and attention are bit-equal on a narrower machine. Emulated here by compiling the
    kernels again in a child told that the widest extension is missing (NUMBA_CPU_FEATURES)."""
    from numba.core import codegen

    features = codegen.get_host_cpu_features().split(",")
    drop = {64: "+avx512", 32: "+avx2"}.get(packed.VECTOR_BYTES)
    if drop is None or numba.config.CPU_FEATURES is not None:
        pytest.skip(f"{packed.VECTOR_BYTES}-byte vectors (NUMBA_CPU_FEATURES={numba.config.CPU_FEATURES}): none narrower")
    narrower = ",".join("-" + f[1:] if f.startswith(drop) else f for f in features)
    script = tmp_path / "width.py"
    script.write_text(WIDTH_CHILD)
    env = dict(os.environ, NUMBA_CPU_FEATURES=narrower, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    subprocess.run([sys.executable, str(script), str(tmp_path / "out.npz")], env=env, check=True, timeout=600)
    child = dict(np.load(tmp_path / "out.npz"))
    namespace = {}
    exec(compile(WIDTH_CHILD, "width.py", "exec"), namespace)
    ours = namespace["results"]()
    assert child.pop("width") == ours.pop("width") // 2, "the child did not compile for half the width"
    for name, value in ours.items():
        difference = np.abs(child[name].astype(np.float64) - value).max()
        assert np.array_equal(child[name], value), f"{name}: differs at half the vector width by {difference:.2e}"


def test_single_threaded_blas_limits_and_restores():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from bertnp import blas

    def blas_threads():
        return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]

    before = blas_threads()
    with blas.single_threaded():
        assert all(n == 1 for n in blas_threads())
        with blas.single_threaded():  # limits nest
            assert all(n == 1 for n in blas_threads())
        assert all(n == 1 for n in blas_threads())
    assert blas_threads() == before
