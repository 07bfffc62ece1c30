"""Fused CuPy kernels for the GPU path: the ops of bertnp/model.py that cuBLAS GEMMs leave between them.

Each kernel names its reference twin; bertnp/gpu.py's NumpyOps composes the same twins from model.py, so
CI (which has no GPU) runs the GPU forward pass with NumPy, and GPU tests compare these kernels with it.
Nothing here imports cupy at import time: `CupyOps()` does.
"""

from __future__ import annotations

# One block per row; a row's values stay in global memory (rows are at most a few thousand wide).
SOURCE = r"""
template <typename T> struct Sum { __device__ static T apply(T a, T b) { return a + b; } };
template <typename T> struct Max { __device__ static T apply(T a, T b) { return a > b ? a : b; } };

// Reduce v over the block (at most 1024 threads = 32 warps); every thread gets the result.
template <typename T, typename Op>
__device__ T block_reduce(T v, T* shared) {
    for (int offset = 16; offset > 0; offset >>= 1) v = Op::apply(v, __shfl_xor_sync(0xffffffffu, v, offset));
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < warps ? shared[lane] : shared[0];
        for (int offset = 16; offset > 0; offset >>= 1) v = Op::apply(v, __shfl_xor_sync(0xffffffffu, v, offset));
        if (lane == 0) shared[0] = v;
    }
    __syncthreads();
    const T result = shared[0];
    __syncthreads();  // shared is reused by the next reduction
    return result;
}

// Twin: model.layer_norm(y + bias + residual). out may be residual (in place).
template <typename T>
__global__ void add_bias_layer_norm(const T* y, const T* bias, const T* residual, const T* gamma, const T* beta,
                                    T* out, const int H, const double eps) {
    __shared__ T shared[32];
    const size_t row = blockIdx.x;
    const T* yr = y + row * H;
    const T* rr = residual + row * H;
    T* o = out + row * H;
    T s = 0;
    for (int i = threadIdx.x; i < H; i += blockDim.x) {
        const T v = (yr[i] + bias[i]) + rr[i];
        o[i] = v;
        s += v;
    }
    const T mean = block_reduce<T, Sum<T>>(s, shared) / T(H);
    T ss = 0;
    for (int i = threadIdx.x; i < H; i += blockDim.x) {
        const T d = o[i] - mean;
        ss += d * d;
    }
    const T denominator = sqrt(block_reduce<T, Sum<T>>(ss, shared) / T(H) + T(eps));
    for (int i = threadIdx.x; i < H; i += blockDim.x) o[i] = (o[i] - mean) / denominator * gamma[i] + beta[i];
}

// Twin: model.softmax(scores * scale + mask bias) over the last axis, in place. scores [B, N, Tq, Tk],
// bias [B, Tk]; rows_per_sequence = N * Tq.
template <typename T>
__global__ void scale_mask_softmax(T* scores, const T* bias, const int Tk, const int rows_per_sequence,
                                   const double scale) {
    __shared__ T shared[32];
    const size_t row = blockIdx.x;
    T* x = scores + row * Tk;
    const T* b = bias + (row / rows_per_sequence) * Tk;
    T m = -INFINITY;
    for (int i = threadIdx.x; i < Tk; i += blockDim.x) {
        const T v = x[i] * T(scale) + b[i];
        x[i] = v;
        m = v > m ? v : m;
    }
    m = block_reduce<T, Max<T>>(m, shared);
    T s = 0;
    for (int i = threadIdx.x; i < Tk; i += blockDim.x) {
        const T e = exp(x[i] - m);
        x[i] = e;
        s += e;
    }
    s = block_reduce<T, Sum<T>>(s, shared);
    for (int i = threadIdx.x; i < Tk; i += blockDim.x) x[i] = x[i] / s;
}
"""

KERNELS = ["add_bias_layer_norm<float>", "add_bias_layer_norm<double>",
           "scale_mask_softmax<float>", "scale_mask_softmax<double>"]

# Twin: model.ACTIVATIONS[act](y + bias). CUDA's erf is overloaded for float (erff, 2 ulp) and double.
ACTIVATION_CODE = {
    "gelu": "const T x = y + b; z = x * T(0.5) * (T(1) + erf(x * T(0.70710678118654752440)));",
    "gelu_new": "const T x = y + b; z = T(0.5) * x * (T(1) + tanh(T(0.79788456080286535588) * (x + T(0.044715) * x * x * x)));",
    "gelu_fast": "const T x = y + b; z = T(0.5) * x * (T(1) + tanh(x * T(0.7978845608) * (T(1) + T(0.044715) * x * x)));",
    "quick_gelu": "const T x = y + b; z = x * (T(1) / (T(1) + exp(T(-1.702) * x)));",
    "silu": "const T x = y + b; z = x * (T(1) / (T(1) + exp(-x)));",
    "relu": "const T x = y + b; z = x > T(0) ? x : T(0);",
}
ACTIVATION_CODE["gelu_pytorch_tanh"] = ACTIVATION_CODE["gelu_new"]
ACTIVATION_CODE["swish"] = ACTIVATION_CODE["silu"]
THREADS = 256


class CupyOps:
    """The fused GPU kernels, compiled once per process."""

    def __init__(self):
        import cupy

        self.cupy = cupy
        self.module = cupy.RawModule(code=SOURCE, options=("-std=c++14",), name_expressions=KERNELS)
        self.activations = {name: cupy.ElementwiseKernel("T y, T b", "T z", code, f"bertnp_{name}")
                            for name, code in ACTIVATION_CODE.items()}

    def _kernel(self, name, dtype):
        return self.module.get_function(f"{name}<{'float' if dtype == self.cupy.float32 else 'double'}>")

    def bias_activation(self, y, bias, activation):
        """[R, I] GEMM output -> activation(y + bias), in place."""
        return self.activations[activation](y, bias, y)

    def add_bias_layer_norm(self, y, bias, residual, norm, eps, out):
        """[R, H] -> layer_norm(y + bias + residual) into out (which may be residual)."""
        R, H = y.shape
        self._kernel("add_bias_layer_norm", y.dtype)(
            (R,), (min(THREADS, 32 * ((H + 31) // 32)),),
            (y, bias, residual, norm.weight, norm.bias, out, self.cupy.int32(H), self.cupy.float64(eps)))
        return out

    def scale_mask_softmax(self, scores, scale, bias):
        """[B, N, T, T] scores -> softmax(scores * scale + bias[:, None, None, :]) in place."""
        B, N, Tq, Tk = scores.shape
        self._kernel("scale_mask_softmax", scores.dtype)(
            (B * N * Tq,), (min(THREADS, 32 * ((Tk + 31) // 32)),),
            (scores, bias, self.cupy.int32(Tk), self.cupy.int32(N * Tq), self.cupy.float64(scale)))
        return scores
