"""Comparisons that report numbers: a failure names the tensor and its max abs error."""

from __future__ import annotations

import numpy as np

# The tolerances: float32 against transformers float32, float64 against transformers float64.
ATOL = {np.float32: 1e-5, np.float64: 1e-12}


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


def compare_outputs(out, ref: dict, attention_mask, dtype, real_tokens_only: bool = True) -> dict:
    """Every output of a bertnp forward pass against reference arrays; returns {name: max abs error}.

    Positions the mask pads out are left out unless real_tokens_only=False: their states are arbitrary
    and ill-conditioned (on MiniLM torch float32 itself is 6e-5 from the float64 truth there, versus 3e-6
    on real tokens), and the pad-free fast path does not compute them (it returns zeros there). The
    reference path in float64 is also checked with padding included.
    """
    atol = ATOL[dtype]
    real = np.asarray(attention_mask).astype(bool)  # [B, T]
    keep = real if real_tokens_only else np.ones_like(real)
    errors = {}
    errors["last_hidden_state"] = assert_close("last_hidden_state", out.last_hidden_state[keep],
                                               ref["last_hidden_state"][keep], atol)
    for name in ("pooler_output", "logits"):
        if ref.get(name) is None:
            assert getattr(out, name) is None, f"{name}: expected None"
        else:
            errors[name] = assert_close(name, getattr(out, name), ref[name], atol)
    for i, (got, want) in enumerate(zip(out.hidden_states or (), ref.get("hidden_states", ()))):
        errors[f"hidden_states[{i}]"] = assert_close(f"hidden_states[{i}]", got[keep], want[keep], atol)
    for i, (got, want) in enumerate(zip(out.attentions or (), ref.get("attentions", ()))):
        # [B, N, T, T]: keep the query rows of real tokens
        rows = np.broadcast_to(keep[:, None, :], got.shape[:3])
        errors[f"attentions[{i}]"] = assert_close(f"attentions[{i}]", got[rows], want[rows], atol)
    if "hidden_states" in ref:
        assert len(out.hidden_states) == len(ref["hidden_states"]), "hidden_states count differs"
        assert len(out.attentions) == len(ref["attentions"]), "attentions count differs"
    return errors
