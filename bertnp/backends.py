"""Which implementation runs the forward pass. Every backend computes the same model.py maths.

- "numpy": the reference path of bertnp/model.py, padded batches, NumPy and BLAS only.
- "numba": bertnp/fast.py, pad-free batches with the Numba kernels of bertnp.kernels.

backend=None picks BERTNP_BACKEND from the environment when set, else "numba" when Numba is installed,
else "numpy".
"""

from __future__ import annotations

import importlib.util
import os

from . import model
from .errors import BertnpError

BACKENDS = ("numpy", "numba")


class NumpyBackend:
    name = "numpy"

    def __init__(self, weights, config):
        import numpy

        self.weights, self.config, self.xp = weights, config, numpy

    def forward(self, input_ids, attention_mask, token_type_ids, output_hidden_states, output_attentions,
                numerics=model.TRANSFORMERS, tap=model.no_tap):
        return model.bert(input_ids, attention_mask, token_type_ids, self.weights, self.config, self.xp,
                          output_hidden_states=output_hidden_states, output_attentions=output_attentions,
                          numerics=numerics, tap=tap)


class NumbaBackend:
    name = "numba"

    def __init__(self, weights, config):
        from . import fast

        self.fast, self.config = fast, config
        self.weights = fast.prepare(weights, config)
        self.reference = NumpyBackend(weights, config)

    def forward(self, input_ids, attention_mask, token_type_ids, output_hidden_states, output_attentions,
                numerics=model.TRANSFORMERS, tap=model.no_tap):
        if numerics != model.TRANSFORMERS or tap is not model.no_tap:  # the kernels implement transformers' arithmetic only
            return self.reference.forward(input_ids, attention_mask, token_type_ids, output_hidden_states,
                                          output_attentions, numerics, tap)
        return self.fast.forward(input_ids, attention_mask, token_type_ids, self.weights, self.config,
                                 output_hidden_states=output_hidden_states, output_attentions=output_attentions)


def numba_available() -> bool:
    return importlib.util.find_spec("numba") is not None and importlib.util.find_spec("bertnp.fast") is not None


def choose(name: str | None) -> str:
    """The backend name that `name` (an argument, maybe None) resolves to."""
    if name is None:
        name = os.environ.get("BERTNP_BACKEND") or ("numba" if numba_available() else "numpy")
    if name not in BACKENDS:
        raise BertnpError(f"backend={name!r}: expected one of {', '.join(BACKENDS)} (or None to pick the fastest)")
    if name == "numba" and not numba_available():
        raise BertnpError("backend='numba' needs Numba: pip install numba (or use backend='numpy')")
    return name


def create(name: str | None, weights, config):
    return {"numpy": NumpyBackend, "numba": NumbaBackend}[choose(name)](weights, config)
