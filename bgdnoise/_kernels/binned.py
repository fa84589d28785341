"""The clipped median on a bucket-sorted copy of the line: O(1) per iteration.

The values are bucket-sorted once into a fine histogram around a sample
median, or with a fixed scale a median of medians (:mod:`.histogram`); the
clipped set after any number of iterations is the set of values inside
``[A, B]``, the tightest bounds so far, so its size, moments and median come
from bin counts, prefix sums and a selection (or, with a fixed scale, a sort)
inside one or two small bins.  Same result as the partition algorithm
(:mod:`.partition`), which takes the lines this one cannot.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._jit import scalar_helper
from .histogram import (
    _count_outside,
    _fill_histogram,
    _rank_median,
    _window_stats,
    n_bins_for,
)
from .moments import _FLOAT_MAX, _S2_TINY, _std
from .partition import _clipped_median
from .select import _select

# Lines shorter than this use the partition algorithm.
_BINNED_MIN = 64
# Values sampled for the bins' centre and spread without a fixed scale.
_SAMPLE = 31
# Bins span the centre +- _RANGE sample sigmas (or fixed scales).
_RANGE = 6.0
# What _place_bins found.
_PLACED = 0
_CONSTANT = 1
_UNPLACEABLE = 2


@njit(cache=True, nogil=True)
def binned_scratch(length):
    """Scratch for :func:`_binned_clipped_median` on up to ``length`` values.

    Parameters
    ----------
    length : int

    Returns
    -------
    tuple
        ``(srt, idx, cnt, start, ps1, ps2, smp)``, see :mod:`.histogram`;
        ``smp`` holds the ``_SAMPLE`` sampled values.
    """
    nbins = n_bins_for(length) + 3
    return (
        np.empty(length),
        np.empty(length, dtype=np.uint32),
        np.empty(nbins, dtype=np.int64),
        np.empty(nbins, dtype=np.int64),
        np.empty(nbins),
        np.empty(nbins),
        np.empty(_SAMPLE),
    )


@scalar_helper
def _binned_clipped_median(vals, n, clip, scratch):
    """Iteratively sigma-clipped median of ``vals[:n]`` (finite values).

    Lines shorter than ``_BINNED_MIN``, and the rare lines the histogram
    cannot hold in float64 (a value range or sum of squares beyond the
    float64 range, or only tiny values), go to the partition algorithm.

    Parameters
    ----------
    vals : ndarray of float64
        Not modified.
    n : int
    clip : tuple
        ``(sigma_lower, sigma_upper, fixed_scale, maxiters)`` as for
        :func:`.partition._clipped_median`.
    scratch : tuple
        From :func:`binned_scratch` for at least ``n`` values.

    Returns
    -------
    float
        The level, the same as :func:`.partition._clipped_median`; NaN when
        ``n <= 0``.
    """
    if n >= _BINNED_MIN:
        hist, placed = _place_bins(vals, n, clip[2], scratch[6])
        if placed == _CONSTANT:
            return hist[0]
        if placed == _PLACED:
            # The moments only serve a clip whose scale is their std.
            fixed = clip[2] > 0.0
            total2 = _fill_histogram(vals, n, hist, scratch, not fixed and clip[3] != 0)
            if clip[3] == 0:
                # (no sums follow: a small bin may be sorted)
                return _rank_median(scratch[0], scratch[3], hist[2] + 2, np.int64(0), n, fixed)
            # Every window's sum of squares is part of this total: finite and
            # not tiny means no moment overflows or loses its digits.
            if fixed or _S2_TINY <= total2 <= _FLOAT_MAX:
                return _binned_iterations(n, clip, hist, scratch)
    srt = scratch[0]
    for i in range(n):
        srt[i] = vals[i]
    return _clipped_median(srt, n, clip)


@scalar_helper
def _place_bins(vals, n, fixed_scale, smp):
    """Where the bins go: around a median of evenly spread values.

    Any placement is exact, a good one keeps the edge bins small. With a
    fixed scale, around :func:`_tukey_median` (no sums are kept, so the
    result does not depend on the placement); else around the median of
    ``_SAMPLE`` values, their quantiles giving the spread.

    Parameters
    ----------
    vals : ndarray of float64
    n : int
        ``n >= _BINNED_MIN``.
    fixed_scale : float
        The sample's spread when > 0.
    smp : ndarray of float64
        Scratch of ``_SAMPLE`` values (not used with a fixed scale).

    Returns
    -------
    hist : tuple
        ``(lo, inv_w, nb, shift)``, see :mod:`.histogram`.
    placed : int
        ``_PLACED``; ``_CONSTANT`` when all values equal ``hist[0]``;
        ``_UNPLACEABLE`` when the range is beyond float64 or tiny.
    """
    ns = _SAMPLE
    if fixed_scale > 0.0:
        # Only the centre is needed, and with no sums kept (a fixed scale) the
        # result does not depend on it: a branch-free median of medians of 27
        # values, not a selection of 31 (whose mispredicted branches cost as
        # much as binning 200 values).
        center = _tukey_median(vals, n)
        spread = fixed_scale
    else:
        for i in range(ns):
            smp[i] = vals[i * (n - 1) // (ns - 1)]
        # Selections, not a sort of the sample: the same order statistics, and
        # on noise a sort of 31 values cost as much as binning 128 of them.
        mid = ns >> 1
        first = np.int64(0)  # not a literal: see _kernels/__init__.py
        _select(smp, first, ns - 1, mid)
        center = smp[mid]
        low, high = ns // 6, (5 * ns) // 6
        _select(smp, first, mid - 1, low)
        _select(smp, mid + 1, ns - 1, high)
        spread = 0.5 * (smp[high] - smp[low])
    nb = n_bins_for(n)
    if spread > 0.0 and np.isfinite(spread):
        lo = center - _RANGE * spread
        width = 2.0 * _RANGE * spread / nb
    else:
        vmin, vmax = _min_max(vals, n)
        if vmax == vmin:
            return (vmin, 0.0, nb, center), _CONSTANT
        lo = vmin
        width = (vmax - vmin) / nb
    if not width > 0.0:  # a range of a few subnormals: bins of zero width (or NaN)
        return (lo, 0.0, nb, center), _UNPLACEABLE
    inv_w = 1.0 / width
    if not (width > 0.0 and width - width == 0.0 and inv_w - inv_w == 0.0 and lo - lo == 0.0):
        return (lo, inv_w, nb, center), _UNPLACEABLE
    return (lo, inv_w, nb, center), _PLACED


@scalar_helper
def _median3(a, b, c):
    """The middle one of three finite values, without branches."""
    return max(min(a, b), min(max(a, b), c))


@scalar_helper
def _tukey_median(vals, n):
    """Tukey's median of medians of 27 evenly spread values of ``vals[:n]`` (``n >= 27``).

    Three rounds of medians of three: near the median of the values (on
    Gaussian noise within about 0.3 standard deviations of it for 512
    values), robust to a few outliers, and free of data-dependent branches.

    Parameters
    ----------
    vals : ndarray of float64
        Finite values.
    n : int

    Returns
    -------
    float
        One of the sampled values.
    """
    step = (n - 1) / 26.0
    # (not literals: see _kernels/__init__.py)
    return _median3(
        _median_of_nine(vals, np.int64(0), step),
        _median_of_nine(vals, np.int64(9), step),
        _median_of_nine(vals, np.int64(18), step),
    )


@scalar_helper
def _median_of_nine(vals, first, step):
    """Median of the medians of three of the sampled values ``first..first + 8``."""
    return _median3(
        _median_of_three(vals, first, step),
        _median_of_three(vals, first + 3, step),
        _median_of_three(vals, first + 6, step),
    )


@scalar_helper
def _median_of_three(vals, first, step):
    """Median of the sampled values ``first..first + 2`` (value ``k`` at ``int(k * step)``)."""
    return _median3(
        vals[int(first * step)], vals[int((first + 1) * step)], vals[int((first + 2) * step)]
    )


@scalar_helper
def _min_max(vals, n):
    """Smallest and largest of ``vals[:n]`` (``n >= 1``).

    Parameters
    ----------
    vals : ndarray of float64
    n : int

    Returns
    -------
    vmin, vmax : float
    """
    vmin = vals[0]
    vmax = vals[0]
    for i in range(1, n):
        v = vals[i]
        if v < vmin:
            vmin = v
        if v > vmax:
            vmax = v
    return vmin, vmax


@scalar_helper
def _binned_iterations(n, clip, hist, scratch):
    """The clipping iterations on a filled histogram of ``n`` values.

    Parameters
    ----------
    n : int
    clip : tuple
        As for :func:`_binned_clipped_median`; ``maxiters != 0``.
    hist, scratch : tuple
        The histogram (:mod:`.histogram`).

    Returns
    -------
    float
        The median of all values within the last bounds, as astropy masks
        the whole line with them; the last median if none is.
    """
    sigma_lower, sigma_upper, fixed_scale, maxiters = clip
    srt, _, _, start, ps1, ps2, _ = scratch
    total_bins = hist[2] + 2
    use_std = not (fixed_scale > 0.0)
    a = -np.inf
    b = np.inf
    count = n
    iteration = 0
    med = np.nan
    lower = np.nan
    upper = np.nan
    while True:
        below, m, s1, s2 = _window_stats(srt, start, ps1, ps2, hist, a, b)
        # (The std's sums take the bins' values in their order: no sorting there.)
        med = _rank_median(srt, start, total_bins, below, m, not use_std)
        scale = _std(s1, s2, m) if use_std else fixed_scale
        lower = med - sigma_lower * scale
        upper = med + sigma_upper * scale
        a2 = max(a, lower)
        b2 = min(b, upper)
        if a2 > b2:
            break
        new_count = n - _count_outside(srt, start, n, hist, a2, b2)
        if new_count == count or new_count == 0:
            break
        a = a2
        b = b2
        count = new_count
        iteration += 1
        if maxiters > 0 and iteration >= maxiters:
            break
    below, m, _, _ = _window_stats(srt, start, ps1, ps2, hist, lower, upper)
    if m <= 0:
        return med  # no value within the last bounds
    return _rank_median(srt, start, total_bins, below, m, not use_std)
