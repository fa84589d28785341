"""Sums of deviations and their standard deviation, over the whole float64 range.

A line whose squared deviations overflow, or whose values are all tiny, has
its moments taken of ``v * 2**-k``, with ``k`` putting its largest magnitude
just below ``2**_EXP_LIMIT``: multiplying by a power of two is exact, so the
clipping is the same as with an unbounded exponent.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import scalar_helper

_FLOAT_MAX = 1.7976931348623157e308
_EXP_LIMIT = 480
_S2_TINY = 2.0**-800
# Values that leave the clipped set holding all but this fraction of the sum
# of squares: the running sums are recomputed (the downdate lost its digits).
_CANCEL = 2.0**-20


@scalar_helper
def _scaled(v, k):
    """``v * 2**-k``, exact unless it leaves the normal range.

    Parameters
    ----------
    v : float
    k : int

    Returns
    -------
    float
    """
    return v if k == 0 else math.ldexp(v, -k)


@scalar_helper
def _moment_exponent(buf, lo, hi, shift):
    """The ``k`` that keeps the squares of ``buf[lo:hi] - shift`` in range.

    Parameters
    ----------
    buf : ndarray of float64
    lo, hi : int
        The window.
    shift : float
        The centre of the moments.

    Returns
    -------
    int
        0 when the largest magnitude (of the values and ``shift``) lies
        within ``2**+-_EXP_LIMIT``; else ``k`` such that ``v * 2**-k`` has
        its largest magnitude in ``[2**(_EXP_LIMIT - 1), 2**_EXP_LIMIT)``.
    """
    amax = abs(shift)
    for i in range(lo, hi):
        a = abs(buf[i])
        if a > amax:
            amax = a
    if amax == 0.0:
        return 0
    e = math.frexp(amax)[1]
    if e > _EXP_LIMIT or e < -_EXP_LIMIT:
        return e - _EXP_LIMIT
    return 0


@scalar_helper
def _moments(buf, lo, hi, shift, k):
    """Sum and sum of squares of ``(v - shift) * 2**-k`` over ``buf[lo:hi]``.

    Parameters
    ----------
    buf : ndarray of float64
    lo, hi : int
    shift : float
        Unscaled centre.
    k : int
        Exponent from :func:`_moment_exponent`.

    Returns
    -------
    s1, s2 : float
    """
    sh = _scaled(shift, k)
    s1 = 0.0
    s2 = 0.0
    for i in range(lo, hi):
        d = _scaled(buf[i], k) - sh
        s1 += d
        s2 += d * d
    return s1, s2


@scalar_helper
def _std(s1, s2, m):
    """Standard deviation of ``m`` values from their sum and sum of squares.

    Parameters
    ----------
    s1, s2 : float
        Sum and sum of squares of the deviations from any fixed centre.
    m : int
        Number of values (> 0).

    Returns
    -------
    float
        0 where rounding makes the variance zero or negative.
    """
    mean = s1 / m
    var = s2 / m - mean * mean
    return np.sqrt(var) if var > 0.0 else 0.0
