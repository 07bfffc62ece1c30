"""Regenerate the float32 erf coefficients ERF_P and ERF_Q of cpu.py (needs SciPy; not imported by bertnp).

    python bertnp/kernels/fit_erf.py

Two minimax polynomials, fitted by Lawson's iteratively reweighted least squares on a dense grid:
  |x| <  1:  erf(x) = x + x * P(x^2),    P(s) ~ erf(sqrt s) / sqrt s - 1, minimax in relative error
  |x| >= 1:  erf(x) = 1 - exp(Q(|x|)),   Q(t) ~ log(erfc(t)) on [1, 4], minimax in absolute error
Writing the small range as x + x*P keeps P's rounding a small fraction of the result; the large range
needs only an exp, which vectorizes, where erfc's usual rational forms need a division and two exps.
Degrees 6 (P) and 8 (Q) were chosen by measuring the worst error in float32 ULPs over a dense sweep
(tests/test_kernels.py): more terms add rounding in float32 Horner faster than they remove error.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf, erfc

SPLIT, TOP = 1.0, 4.0  # erf(4) rounds to 1.0 in float32


def minimax(x, f, degree, weight, iterations=400):
    """Coefficients c0..c_degree minimizing max |weight * (f - sum c_k x^k)| on the grid x."""
    basis = np.vander(x, degree + 1, increasing=True)
    w = np.full_like(x, 1 / len(x))
    for _ in range(iterations):
        root = np.sqrt(w) * weight
        c, *_ = np.linalg.lstsq(basis * root[:, None], f * root, rcond=None)
        error = np.abs(weight * (f - basis @ c))
        w = w * error / (w * error).sum()
    return c, error.max()


def main():
    s = np.linspace(0, SPLIT**2, 20001)
    x = np.sqrt(s)
    ratio = np.where(x > 0, erf(x) / np.where(x > 0, x, 1), 2 / np.sqrt(np.pi))  # erf(x)/x, 2/sqrt(pi) at 0
    p, p_error = minimax(s, ratio - 1, 6, 1 / ratio)
    t = np.linspace(SPLIT, TOP, 20001)
    q, q_error = minimax(t, np.log(erfc(t)), 8, np.ones_like(t))
    for name, c, error in (("P", p, p_error), ("Q", q, q_error)):
        print(f"{name} (highest power first; fit error {error:.2e}):")
        print("   ", ", ".join(repr(float(np.float32(v))) for v in c[::-1]))


if __name__ == "__main__":
    main()
