"""Which implementation runs the forward pass. Every backend computes the same model.py maths.

- "numpy": the reference path of bertnp/model.py, padded batches, NumPy and BLAS only.
- "numba": bertnp/fast.py, pad-free batches with the Numba kernels of bertnp.kernels.
- "cupy": bertnp/gpu.py on an NVIDIA GPU, cuBLAS GEMMs and the fused kernels of bertnp.kernels.gpu.

backend=None picks BERTNP_BACKEND from the environment when set, else "numba" when Numba is installed,
else "numpy". It never picks the GPU unless asked (backend="cupy" or BERTNP_BACKEND=cupy).
"""

from __future__ import annotations

import importlib.util
import os
import threading
import warnings
import weakref

from . import blas, forks, model
from .errors import InputError

BACKENDS = ("numpy", "numba", "cupy")


class NumpyBackend:
    name = "numpy"

    def __init__(self, weights, config):
        import numpy

        self.weights, self.config, self.xp = weights, config, numpy

    def forward(self, input_ids, attention_mask, token_type_ids, output_hidden_states, output_attentions,
                numerics=model.TRANSFORMERS, tap=model.no_tap, pooler_output=True):
        return model.bert(input_ids, attention_mask, token_type_ids, self.weights, self.config, self.xp,
                          output_hidden_states=output_hidden_states, output_attentions=output_attentions,
                          numerics=numerics, tap=tap, pooler_output=pooler_output)


class NumbaBackend:
    """bertnp.fast: pad-free batches on the Numba kernels.

    Preparing it means importing Numba, laying the weights out for the GEMMs (fast.prepare) and compiling
    this dtype's kernels: about 10 s after an install, under a second from Numba's cache. With
    background=True (what backend=None gives) that happens on a thread of its own, started when the first
    forward pass has answered (or by `wait`, or before a fork), and until it is done forward passes run on
    the reference path, so that no caller waits for the compiler; the two paths agree within the fast
    path's parity (tests/claims.py `fast`). Why after the first answer: begun at load, the preparation
    competed with that answer for the GIL and both cores, and a one-word first embedding took 0.13 s
    instead of 0.014 s; a process that embeds one text and exits never prepares at all. Otherwise
    (backend="numba" asked by name, or deterministic mode, which never mixes paths) it happens here,
    before the first call. A fork prepares first (or waits for a preparation under way), so that every
    child inherits the compiled kernels and shares the packed weights.
    """

    name = "numba"

    def __init__(self, weights, config, deterministic: bool = False, background: bool = False):
        self.config, self.deterministic = config, deterministic
        self.reference = NumpyBackend(weights, config)
        self.fast = self.weights = None  # bertnp.fast and its FastWeights, once prepared
        self.error: BaseException | None = None  # why preparing failed; the reference path serves on
        self._prepared = threading.Event()
        self._unprepared = None  # the weights, until a background preparation starts
        self._start = threading.Lock()
        if background and not deterministic:
            self._unprepared = weights
            _PREPARING.add(self)
        else:
            self._prepare(weights)
            if self.error is not None:
                raise self.error

    def _prepare(self, weights):
        try:
            from . import fast

            prepared = fast.prepare(weights, self.config)
            fast.warm_up(prepared, self.config)
            self.fast, self.weights = fast, prepared
            fast.release_originals(weights)  # the GEMM layout replaces them: one resident copy of the weights
        except BaseException as e:  # a background thread has nobody to raise to
            self.error = e
            if threading.current_thread() is not threading.main_thread():
                warnings.warn(f"bertnp: the numba backend could not be prepared ({type(e).__name__}: {e}); "
                              "the reference path answers instead", RuntimeWarning, stacklevel=1)
        finally:
            self._prepared.set()

    def _start_preparing(self):
        """Start the background preparation, once."""
        with self._start:
            weights, self._unprepared = self._unprepared, None
        if weights is not None:
            threading.Thread(target=self._prepare, args=(weights,), name="bertnp-prepare", daemon=True).start()

    def wait(self, timeout: float | None = None) -> bool:
        """Prepare the fast path now if that has not begun, and block until it is done (or timeout seconds
        pass); True when it runs the calls."""
        self._start_preparing()
        self._prepared.wait(timeout)
        return self.fast is not None

    def forward(self, input_ids, attention_mask, token_type_ids, output_hidden_states, output_attentions,
                numerics=model.TRANSFORMERS, tap=model.no_tap, pooler_output=True):
        fast = self.fast
        if fast is None or numerics != model.TRANSFORMERS or tap is not model.no_tap:  # the kernels implement
            try:
                with blas.single_threaded():  # transformers' arithmetic only; BLAS threads: kernels.gemm says why
                    return self.reference.forward(input_ids, attention_mask, token_type_ids, output_hidden_states,
                                                  output_attentions, numerics, tap, pooler_output)
            finally:
                self._start_preparing()  # once the first answer is out (class docstring)
        return fast.forward(input_ids, attention_mask, token_type_ids, self.weights, self.config,
                            output_hidden_states=output_hidden_states, output_attentions=output_attentions,
                            pooler_output=pooler_output)


_PREPARING: weakref.WeakSet = weakref.WeakSet()  # NumbaBackends preparing in the background, or yet to begin


def _wait_for_preparations():
    for backend in list(_PREPARING):
        backend.wait()


forks.wait_before_fork(_wait_for_preparations)


class CupyBackend:
    """Weights uploaded once; activations stay on the GPU; results come back as NumPy arrays unless
    keep_on_device. TF32 is off unless allow_tf32 (TF32 rounds GEMM inputs to 10 mantissa bits: float32
    parity with the CPU drops from about 1e-6 to about 1e-3)."""

    name = "cupy"

    def __init__(self, weights, config, allow_tf32: bool = False, keep_on_device: bool = False):
        from . import gpu

        self.cupy = import_cupy()
        set_tf32(self.cupy, allow_tf32)
        from .kernels.gpu import CupyOps

        self.gpu, self.config, self.keep_on_device = gpu, config, keep_on_device
        self.weights = gpu.prepare(weights, self.cupy)
        self.ops = CupyOps()

    def forward(self, input_ids, attention_mask, token_type_ids, output_hidden_states, output_attentions,
                numerics=model.TRANSFORMERS, tap=model.no_tap, pooler_output=True):
        cp = self.cupy
        ids, mask, types = (cp.asarray(a) for a in (input_ids, attention_mask, token_type_ids))
        if numerics != model.TRANSFORMERS or tap is not model.no_tap:  # unfused reference functions, on the GPU
            device_tap = tap if tap is model.no_tap or self.keep_on_device else (lambda n, a: tap(n, cp.asnumpy(a)))
            out = model.bert(ids, mask, types, self.weights.reference, self.config, cp, output_hidden_states,
                             output_attentions, numerics=numerics, tap=device_tap, pooler_output=pooler_output)
        else:
            out = self.gpu.forward(ids, mask, types, self.weights, self.config, cp, self.ops, output_hidden_states,
                                   output_attentions, pooler_output)
        return out if self.keep_on_device else to_host(out, cp)


def to_host(out, cp):
    """Every array of a BertOutput as NumPy."""
    def host(a):
        return None if a is None else tuple(cp.asnumpy(x) for x in a) if isinstance(a, tuple) else cp.asnumpy(a)

    return model.BertOutput(last_hidden_state=host(out.last_hidden_state), pooler_output=host(out.pooler_output),
                            logits=host(out.logits), hidden_states=host(out.hidden_states),
                            attentions=host(out.attentions))


def import_cupy():
    """cupy, or a clear error saying what is missing."""
    try:
        import cupy
    except ImportError:
        raise InputError("backend='cupy' needs CuPy: pip install 'bertnp[gpu]' (cupy-cuda12x)") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDARuntimeError when there is no driver
        raise InputError(f"backend='cupy': no usable CUDA GPU ({type(e).__name__}: {e})") from None
    if count == 0:
        raise InputError("backend='cupy': CuPy is installed but sees no CUDA GPU")
    return cupy


def set_tf32(cupy, allow: bool):
    """float32 GEMMs in full float32 (default) or TF32, for this process (CuPy's setting is global)."""
    from cupy._core import _routines_linalg as linalg

    linalg.set_compute_type(cupy.float32, linalg.COMPUTE_TYPE_TF32 if allow else linalg.COMPUTE_TYPE_PEDANTIC)


def numba_available() -> bool:
    return importlib.util.find_spec("numba") is not None and importlib.util.find_spec("bertnp.fast") is not None


def choose(name: str | None) -> str:
    """The backend name that `name` (an argument, maybe None) resolves to; InputError for an unknown one."""
    from_environment = name is None and bool(os.environ.get("BERTNP_BACKEND"))
    if name is None:
        name = os.environ.get("BERTNP_BACKEND") or ("numba" if numba_available() else "numpy")
    if name not in BACKENDS:
        source = "BERTNP_BACKEND" if from_environment else "backend"
        raise InputError(f"{source}={name!r}: expected one of {', '.join(BACKENDS)} (or None to pick the fastest)")
    if name == "numba" and not numba_available():
        raise InputError("backend='numba' needs Numba: pip install numba (or use backend='numpy')")
    return name


def create(name: str | None, weights, config, deterministic: bool = False, **options):
    """options (allow_tf32, keep_on_device) are the cupy backend's. deterministic: the numba backend's GEMMs
    at heights that do not depend on the thread count (bertnp.fast.forward); the reference path needs
    nothing more than Bert's deterministic mode gives it (one sequence at a time, one BLAS thread).
    The numba backend prepares in the background when it was not asked for by name (NumbaBackend)."""
    chosen = choose(name)
    if options and chosen != "cupy":
        raise InputError(f"{', '.join(options)}: options of backend='cupy', not of backend={chosen!r}")
    if chosen == "numba":
        return NumbaBackend(weights, config, deterministic, background=name is None and not os.environ.get("BERTNP_BACKEND"))
    return {"numpy": NumpyBackend, "cupy": CupyBackend}[chosen](weights, config, **options)
