"""erf(x) to the last bit of float64, for NumPy (which has none) and any array module `xp`.

BERT's GELU is x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2))) with the exact erf. This is Sun's fdlibm
s_erf.c (the erf behind most C libraries, and Numba's math.erf), evaluated on whole arrays: each of its
four ranges of |x| is a rational approximation, computed only on the elements in that range.
"""

from __future__ import annotations

import numpy as np

ERX = 8.45062911510467529297e-01  # erf(1) rounded; 0.84375 <= |x| < 1.25 is expanded around it
PP = (1.28379167095512558561e-01, -3.25042107247001499370e-01, -2.84817495755985104766e-02,
      -5.77027029648944159157e-03, -2.37630166566501626084e-05)
QQ = (1.0, 3.97917223959155352819e-01, 6.50222499887672944485e-02, 5.08130628187576562776e-03,
      1.32494738004321644526e-04, -3.96022827877536812320e-06)
PA = (-2.36211856075265944077e-03, 4.14856118683748331666e-01, -3.72207876035701323847e-01,
      3.18346619901161753674e-01, -1.10894694282396677476e-01, 3.54783043256182359371e-02,
      -2.16637559486879084300e-03)
QA = (1.0, 1.06420880400844228286e-01, 5.40397917702171048937e-01, 7.18286544141962662868e-02,
      1.26171219808761642112e-01, 1.36370839120290507362e-02, 1.19844998467991074170e-02)
RA = (-9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e+01,
      -6.23753324503260060396e+01, -1.62396669462573470355e+02, -1.84605092906711035994e+02,
      -8.12874355063065934246e+01, -9.81432934416914548592e+00)
SA = (1.0, 1.96512716674392571292e+01, 1.37657754143519042600e+02, 4.34565877475229228821e+02,
      6.45387271733267880336e+02, 4.29008140027567833386e+02, 1.08635005541779435134e+02,
      6.57024977031928170135e+00, -6.04244152148580987438e-02)
RB = (-9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e+01,
      -1.60636384855821916062e+02, -6.37566443368389627722e+02, -1.02509513161107724954e+03,
      -4.83519191608651397019e+02)
SB = (1.0, 3.03380607434824582924e+01, 3.25792512996573918826e+02, 1.53672958608443695994e+03,
      3.19985821950859553908e+03, 2.55305040643316442583e+03, 4.74528541206955367215e+02,
      -2.24409524465858183362e+01)


def polyval(coefficients, z):
    """c0 + c1 z + c2 z^2 + ... by Horner's rule, in fdlibm's order of operations."""
    result = coefficients[-1]
    for c in reversed(coefficients[:-1]):
        result = c + z * result
    return result


def erf(x, xp=np):
    """Exact erf of a float64 array (float32 input is widened; the result has x's dtype)."""
    x64 = xp.asarray(x, dtype=xp.float64)
    ax = xp.abs(x64)
    out = xp.empty_like(x64)

    small = ax < 0.84375  # erf(x) = x + x * P(x^2) / Q(x^2)
    z = x64[small] * x64[small]
    out[small] = x64[small] + x64[small] * (polyval(PP, z) / polyval(QQ, z))

    middle = (ax >= 0.84375) & (ax < 1.25)  # erf(|x|) = erx + P(|x|-1) / Q(|x|-1)
    s = ax[middle] - 1.0
    out[middle] = ERX + polyval(PA, s) / polyval(QA, s)

    tail = (ax >= 1.25) & (ax < 6.0)  # erf(|x|) = 1 - exp(-x^2 - 0.5625 + R(1/x^2) / S(1/x^2)) / |x|
    a = ax[tail]
    s = 1.0 / (a * a)
    near = a < 1 / 0.35
    r_over_s = xp.where(near, polyval(RA, s) / polyval(SA, s), polyval(RB, s) / polyval(SB, s))
    # exp(-a^2) split as exp(-z^2) * exp((z - a)(z + a)), z = a with its low 32 bits cleared, so that
    # z*z is exact and the large exponent loses no bits (fdlibm's trick).
    zz = (a.view(xp.uint64) & xp.uint64(0xFFFFFFFF00000000)).view(xp.float64)
    out[tail] = 1.0 - xp.exp(-zz * zz - 0.5625) * xp.exp((zz - a) * (zz + a) + r_over_s) / a

    out[ax >= 6.0] = 1.0  # erf(6) = 1 - 2e-17: 1.0 is the nearest double
    out[xp.isnan(ax)] = xp.nan
    sign_restored = xp.where(~small & (x64 < 0), -out, out)  # erf is odd; the small range kept x's sign
    return sign_restored.astype(xp.asarray(x).dtype, copy=False) if xp.asarray(x).dtype.kind == "f" else sign_restored
