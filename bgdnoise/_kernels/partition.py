"""The clipped median by in-place partitioning: for short lines and extreme values.

The clipped set is always a window ``[lo, hi)`` of the order statistics, kept
partitioned in the buffer, so each iteration is one pass plus a selection in
about half of the window.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import scalar_helper
from .moments import _CANCEL, _FLOAT_MAX, _S2_TINY, _moment_exponent, _moments, _scaled, _std
from .select import _window_median


@scalar_helper
def _clipped_median(buf, n, clip):
    """Iteratively sigma-clipped median of ``buf[:n]`` (finite values).

    Same result as astropy ``sigma_clip(cenfunc="median", stdfunc="std")``
    followed by a masked median.  Any finite values give a finite result:
    the median of two values does not overflow, moments of huge or tiny
    values are taken of values scaled by a power of two, and bounds that
    keep no value (a zero spread between two middle values) give the last
    median rather than NaN.

    Parameters
    ----------
    buf : ndarray of float64
        The values; reordered in place.
    n : int
        Number of values.
    clip : tuple
        ``(sigma_lower, sigma_upper, fixed_scale, maxiters)``:
        ``fixed_scale > 0`` replaces the standard deviation by that
        constant; ``maxiters < 0`` iterates until nothing changes.

    Returns
    -------
    float
        The level; NaN when ``n <= 0``.
    """
    if n <= 0:
        return np.nan
    med, pivot = _window_median(buf, np.int64(0), n, np.int64(-1))
    if clip[3] == 0 or n < 2:
        return med
    lo, hi, pivot, med, lower, upper, need_median = _clip_window(buf, n, clip, med, pivot)
    # astropy masks with the final bounds applied to the whole line, so a
    # value clipped early but inside the final bounds counts again.
    wide_lo, wide_hi = _widen(buf, n, lo, hi, lower, upper)
    if wide_lo != lo or wide_hi != hi:
        need_median = True
    if need_median and wide_hi > wide_lo:  # else: no value within the last bounds
        med, _ = _window_median(buf, wide_lo, wide_hi, pivot)
    return med


@scalar_helper
def _clip_window(buf, n, clip, med, pivot):
    """The clipping iterations on ``buf[:n]``, starting from its median.

    Parameters
    ----------
    buf : ndarray of float64
        Reordered in place: the clipped set ends as ``buf[lo:hi]``.
    n : int
    clip : tuple
        As for :func:`_clipped_median`.
    med : float
        Median of ``buf[:n]``.
    pivot : int
        Index of a value in its sorted place (from the median), or -1.

    Returns
    -------
    lo, hi, pivot : int
        The last window and a pivot inside it (or -1).
    med, lower, upper : float
        The last median and bounds.
    need_median : bool
        Whether the window changed after ``med`` was taken.
    """
    sigma_lower, sigma_upper, fixed_scale, maxiters = clip
    use_std = not (fixed_scale > 0.0)
    # Moments about the first median, updated as values leave the window,
    # so the standard deviation costs no extra pass per iteration.
    shift_k, k, s1, s2 = _first_moments(buf, n, med, use_std)
    lo = np.int64(0)  # not a literal: see _kernels/__init__.py
    hi = n
    iteration = 0
    while True:
        if use_std:
            scale = _std(s1, s2, hi - lo)
            if k != 0:
                scale = math.ldexp(scale, k)
        else:
            scale = fixed_scale
        lower = med - sigma_lower * scale
        upper = med + sigma_upper * scale
        s2_before = s2
        n_below, n_above, pivot, s1, s2 = _clip_pass(
            buf, lo, hi, pivot, (lower, upper), (use_std, shift_k, k, s1, s2)
        )
        if n_below + n_above == 0:
            return lo, hi, pivot, med, lower, upper, False
        lo += n_below
        hi -= n_above
        iteration += 1
        if hi <= lo or (maxiters > 0 and iteration >= maxiters):
            return lo, hi, pivot, med, lower, upper, True
        med, pivot = _window_median(buf, lo, hi, pivot)
        if use_std and not (s2 >= _CANCEL * s2_before):
            # The clipped values held nearly all of the sum of squares (far
            # outliers): recompute the moments of what is left, about its
            # median and in its own range.
            k = _moment_exponent(buf, lo, hi, med)
            s1, s2 = _moments(buf, lo, hi, med, k)
            shift_k = _scaled(med, k)


@scalar_helper
def _first_moments(buf, n, shift, use_std):
    """Moments of ``buf[:n]`` about ``shift``, in range whatever the values.

    Parameters
    ----------
    buf : ndarray of float64
    n : int
    shift : float
    use_std : bool
        False: no moments are needed (all zero).

    Returns
    -------
    shift_k : float
        ``shift * 2**-k``.
    k : int
        Scaling exponent (see :mod:`.moments`).
    s1, s2 : float
        Sum and sum of squares of ``(v - shift) * 2**-k``.
    """
    k = np.int64(0)
    s1 = 0.0
    s2 = 0.0
    if use_std:
        s1, s2 = _moments(buf, np.int64(0), n, shift, np.int64(0))
        if not (_S2_TINY <= s2 <= _FLOAT_MAX):  # overflow, or tiny values
            k = _moment_exponent(buf, np.int64(0), n, shift)
            if k != 0:
                s1, s2 = _moments(buf, np.int64(0), n, shift, k)
    return _scaled(shift, k), k, s1, s2


@scalar_helper
def _clip_pass(buf, lo, hi, pivot, bounds, moments):
    """Move the values of ``buf[lo:hi]`` outside ``bounds`` out of the window.

    Parameters
    ----------
    buf : ndarray of float64
    lo, hi : int
        The window.
    pivot : int
        Index in its sorted place, or -1.
    bounds : tuple of float
        ``(lower, upper)``.
    moments : tuple
        ``(use_std, shift_k, k, s1, s2)``, see :func:`_clip_below`.

    Returns
    -------
    n_below, n_above : int
        Values moved to ``buf[lo:lo + n_below]`` and ``buf[hi - n_above:hi]``.
    pivot : int
        Still valid, or -1.
    s1, s2 : float
        The moments without the moved values.
    """
    lower, upper = bounds
    use_std, shift_k, k, s1, s2 = moments
    if pivot >= 0 and lower <= buf[pivot] <= upper:
        # Values below ``lower`` can only sit left of the pivot, values
        # above ``upper`` only right of it.
        n_below, s1, s2 = _clip_below(buf, lo, pivot, lower, (use_std, shift_k, k, s1, s2))
        n_above, s1, s2 = _clip_above(buf, pivot + 1, hi, upper, (use_std, shift_k, k, s1, s2))
        return n_below, n_above, pivot, s1, s2
    n_below, s1, s2 = _clip_below(buf, lo, hi, lower, (use_std, shift_k, k, s1, s2))
    n_above, s1, s2 = _clip_above(buf, lo + n_below, hi, upper, (use_std, shift_k, k, s1, s2))
    return n_below, n_above, -1, s1, s2


@scalar_helper
def _clip_below(buf, start, stop, lower, moments):
    """Move values of ``buf[start:stop]`` below ``lower`` to its front.

    Parameters
    ----------
    buf : ndarray of float64
    start, stop : int
    lower : float
    moments : tuple
        ``(use_std, shift_k, k, s1, s2)``: when ``use_std`` the moved values
        are removed from ``s1``, ``s2``, the moments of
        ``v * 2**-k - shift_k``.

    Returns
    -------
    count : int
    s1, s2 : float
    """
    use_std, shift, k, s1, s2 = moments
    i = start
    for j in range(start, stop):
        v = buf[j]
        if v < lower:
            buf[j] = buf[i]
            buf[i] = v
            i += 1
            if use_std:
                d = _scaled(v, k) - shift
                s1 -= d
                s2 -= d * d
    return i - start, s1, s2


@scalar_helper
def _clip_above(buf, start, stop, upper, moments):
    """Move values of ``buf[start:stop]`` above ``upper`` to its back.

    Parameters and returns as :func:`_clip_below`.
    """
    use_std, shift, k, s1, s2 = moments
    j = stop
    for t in range(stop - 1, start - 1, -1):
        v = buf[t]
        if v > upper:
            j -= 1
            buf[t] = buf[j]
            buf[j] = v
            if use_std:
                d = _scaled(v, k) - shift
                s1 -= d
                s2 -= d * d
    return stop - j, s1, s2


@scalar_helper
def _widen(buf, n, lo, hi, lower, upper):
    """Bring values clipped earlier but inside the last bounds back in.

    Parameters
    ----------
    buf : ndarray of float64
        ``buf[:lo]`` holds values clipped below, ``buf[hi:n]`` above.
    n, lo, hi : int
    lower, upper : float
        The last bounds.

    Returns
    -------
    lo, hi : int
        The window of all values within ``[lower, upper]``.
    """
    j = lo
    for t in range(lo - 1, -1, -1):
        v = buf[t]
        if v >= lower:
            j -= 1
            buf[t] = buf[j]
            buf[j] = v
    i = hi
    for t in range(hi, n):
        v = buf[t]
        if v <= upper:
            buf[t] = buf[i]
            buf[i] = v
            i += 1
    return j, i
