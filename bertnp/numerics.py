"""The parity machinery that bertnp/model.py's functions take, kept out of the way of a reader of BERT:
arithmetic switches that reproduce other engines, and the tap that traces intermediates.

Numerics' defaults are transformers'; `bertnp parity --explain` reruns the model under each other choice
to tell which one explains a difference from another engine. A tap(name, array) callable receives every
named intermediate (model.bert's docstring lists the names); no_tap, the default, keeps nothing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Numerics:
    """Arithmetic choices where engines differ. The defaults are transformers'; the others reproduce other
    engines, so that `bertnp parity --explain` can tell which choice explains a difference."""

    mask: str = "min"  # added to masked scores: "min" = finfo(dtype).min (transformers), "-10000" (Google's TF
    #                    BERT, Spark NLP's TF graphs), "-inf" (a fully masked row then gives NaN)
    gelu: str = "erf"  # "erf": exact GELU; "tanh": the tanh approximation some graph optimizers substitute
    variance: str = "two_pass"  # LayerNorm variance as mean((x - mean)^2), or "one_pass": mean(x^2) - mean^2
    accumulate: str = "native"  # sums of softmax and LayerNorm in the compute dtype, or "float64"


TRANSFORMERS = Numerics()
NUMERICS_CHOICES = {"mask": ("min", "-10000", "-inf"), "gelu": ("erf", "tanh"), "variance": ("two_pass", "one_pass"),
                    "accumulate": ("native", "float64")}


def no_tap(name, array):
    """The default tap: tracing off. A tap(name, array) callable receives every named intermediate."""
