"""Comparisons that report numbers: a failure names the tensor, the claim and its max abs error.

The tolerances are the claims of tests/claims.py (the README's "What the tests assert" table).
"""

from __future__ import annotations

import numpy as np

from claims import tolerance


def max_abs(got, want) -> float:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    return float(np.abs(got - want).max()) if got.size else 0.0


def assert_close(name: str, got, want, atol: float):
    got, want = np.asarray(got), np.asarray(want)
    assert not np.isnan(got).any(), f"{name}: bertnp produced NaN"
    error = max_abs(got, want)
    assert error <= atol, f"{name}: max abs error {error:.3e} > {atol:.0e}"
    return error


def assert_claim(claim: str, name: str, got, want, dtype) -> float:
    """assert_close at the tolerance that `claim` asserts for dtype; returns the max abs error."""
    return assert_close(f"{name} [claim {claim}, {np.dtype(dtype).name}]", got, want, tolerance(claim, dtype))


def computed_positions(attention_mask) -> np.ndarray:
    """Where the fast path (backend numba) computes a state: real tokens, position 0 of every row, and
    every position of a row without real tokens (bertnp/fast.py says why). [B, T] bool."""
    real = np.asarray(attention_mask) != 0
    keep = real.copy()
    keep[:, 0] = True
    keep[~real.any(axis=1)] = True
    return keep


def compared_positions(attention_mask, dtype, backend: str) -> np.ndarray:
    """The positions a parity test compares. float32: real tokens only: padded states are arbitrary and
    ill-conditioned (on MiniLM torch's float32 last hidden state is 6e-5 from the float64 truth there,
    against 2e-6 at real tokens). float64: every position the path computes (the pad-free fast path leaves
    the others 0)."""
    if np.dtype(dtype) == np.float32:
        return np.asarray(attention_mask) != 0
    if backend == "numba":
        return computed_positions(attention_mask)
    return np.ones(np.shape(attention_mask), bool)


def compare_outputs(out, ref: dict, attention_mask, dtype, real_tokens_only: bool = True,
                    claim: str = "minilm") -> dict:
    """Every output of a bertnp forward pass against reference arrays at `claim`'s tolerance; returns
    {name: max abs error}.

    Compared at the positions where attention_mask is not 0 (every position with real_tokens_only=False);
    attentions at those query rows. pooler_output and logits are compared whole.
    """
    atol = tolerance(claim, dtype)
    real = np.asarray(attention_mask).astype(bool)  # [B, T]
    keep = real if real_tokens_only else np.ones_like(real)
    label = f" [claim {claim}, {np.dtype(dtype).name}]"
    errors = {}
    errors["last_hidden_state"] = assert_close("last_hidden_state" + label, out.last_hidden_state[keep],
                                               ref["last_hidden_state"][keep], atol)
    for name in ("pooler_output", "logits"):
        if ref.get(name) is None:
            assert getattr(out, name) is None, f"{name}: expected None"
        else:
            errors[name] = assert_close(name + label, getattr(out, name), ref[name], atol)
    for i, (got, want) in enumerate(zip(out.hidden_states or (), ref.get("hidden_states", ()))):
        errors[f"hidden_states[{i}]"] = assert_close(f"hidden_states[{i}]" + label, got[keep], want[keep], atol)
    for i, (got, want) in enumerate(zip(out.attentions or (), ref.get("attentions", ()))):
        # [B, N, T, T]: keep the query rows of compared positions
        rows = np.broadcast_to(keep[:, None, :], got.shape[:3])
        errors[f"attentions[{i}]"] = assert_close(f"attentions[{i}]" + label, got[rows], want[rows], atol)
    if "hidden_states" in ref:
        assert len(out.hidden_states) == len(ref["hidden_states"]), "hidden_states count differs"
        assert len(out.attentions) == len(ref["attentions"]), "attentions count differs"
    return errors


def summary(errors: dict) -> str:
    """{name: error} -> one line, hidden states and attentions folded into their maxima."""
    folded = {k: v for k, v in errors.items() if not k.startswith(("hidden_states[", "attentions["))}
    for group in ("hidden_states", "attentions"):
        values = [v for k, v in errors.items() if k.startswith(group + "[")]
        if values:
            folded[group + " (max)"] = max(values)
    return ", ".join(f"{k} {v:.2e}" for k, v in folded.items())
