"""The white-noise dispersion of a plane, for ``scale="global"``.

A difference of pixels two apart on the same line cancels the line's
stripe, an odd/even offset and any smooth signal (sky, source wings), so the
core of its distribution is white noise times sqrt(2) whatever the sources.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit

from .. import _scratch
from ._jit import scalar_helper
from .aot import launch
from .gather import _plane_rows, _usable_value
from .moments import _EXP_LIMIT, _FLOAT_MAX, _scaled
from .select import _SUBSAMPLE, _bracketed_ranks, _middle_ranks, _ranks
from .threads import claim, run_ranges

# Gaussian sigma from the MAD; and the std of a unit Gaussian truncated at +-3.
_MAD_TO_SIGMA = 1.482602218505602
_TRUNC3_STD = 0.9865766634773327


def plane_dispersion(data, flags, background, along_rows, line_step, out):
    """Per-plane white-noise sigma from differences two pixels apart along lines.

    Parameters
    ----------
    data, flags, background : ndarray
        As in the package docstring.
    along_rows : bool
        Lines along rows (else columns).
    line_step : int
        Every ``line_step``-th line (or row pair) is sampled.
    out : ndarray of float64
        (P,), written; NaN when too few pairs.

    Returns
    -------
    None
    """
    n_planes, ny, nx = data.shape
    # The sample: every line_step-th row (of the row pairs for column lines).
    if along_rows:
        n_rows, per_row = -(-ny // line_step), nx - 2
    else:
        n_rows, per_row = -(-max(ny - 2, 0) // line_step), nx
    n_rows, per_row = max(n_rows, 1), max(per_row, 1)  # (scratch shapes)
    if n_planes >= numba.get_num_threads():  # whole planes in parallel
        run_ranges(
            _plane_dispersion_range, n_planes, data, flags, background,
            (along_rows, line_step, n_rows, per_row), out, min_items=1,
        )  # fmt: skip
        return
    # Fewer planes than threads (a frame): the sampled lines of each in parallel.
    diff = _scratch.empty((n_rows, per_row))
    kept = np.empty(n_rows, np.int64)
    for p in range(n_planes):
        run_ranges(
            _kept_differences_range, n_rows, data, flags, background, (p, along_rows, line_step),
            diff, kept, min_items=8,
        )  # fmt: skip
        out[p] = launch(_sigma_of_kept, diff, kept)


@njit(cache=True, nogil=True)
def _plane_dispersion_range(claims, data, flags, background, sample, out):
    """Items of :func:`plane_dispersion`.

    ``sample = (along_rows, line_step, n_rows, per_row)``: lines along rows,
    the sampling step, and the sample's rows and pairs per row.
    """
    along_rows, line_step, n_rows, per_row = sample
    diff = np.empty((n_rows, per_row))
    kept = np.empty(n_rows, np.int64)
    start, stop = claim(claims)
    while start < stop:
        for p in range(start, stop):
            one_part = np.array([0, n_rows], dtype=np.int64)
            every_row = (one_part, np.zeros(1, np.int64), np.zeros(1, np.int64))
            where = (p, along_rows, line_step)
            _kept_differences_range(every_row, data, flags, background, where, diff, kept)
            out[p] = _sigma_of_kept(diff, kept)
        start, stop = claim(claims)


@njit(cache=True, nogil=True)
def _kept_differences_range(claims, data, flags, background, where, diff, kept):
    """Sampled rows: the differences of pixel pairs two apart kept on each.

    For pure noise the difference and the sum of a pair are independent, so
    keeping only pairs whose sum is below the median sum of their row
    leaves the difference distribution unchanged while dropping most pairs
    that sit on a source (sources only add flux).

    ``where = (p, along_rows, line_step)``; row ``r`` of the sample is row
    ``r * line_step`` of plane ``p``: ``diff[r]`` receives its kept
    differences from the front, ``kept[r]`` their number.
    """
    p, along_rows, line_step = where
    _, ny, nx = data.shape
    plane = _plane_rows(data, flags, background, p)
    last = ny if along_rows else max(ny - 2, 0)
    row_values = (np.empty(nx), np.empty(nx))
    pairs = (np.empty(diff.shape[1]), np.empty(diff.shape[1]))
    start, stop = claim(claims)
    while start < stop:
        for r in range(start, stop):
            y = r * line_step
            m = _row_pairs(plane, y, along_rows, row_values, pairs) if y < last else 0
            # (row_values, read into pairs, are the selection's scratch from here)
            kept[r] = (
                _keep_low_sum_pairs(pairs, m, row_values, diff[r], np.int64(0)) if m > 0 else 0
            )
        start, stop = claim(claims)


@njit(cache=True, nogil=True)
def _sigma_of_kept(diff, kept):
    """The sigma of one pixel from the kept differences of every sampled row, in row order.

    The rows' differences are moved together to the front of ``diff`` (in
    place), then :func:`_robust_sigma_of_differences`; NaN when too few.
    """
    flat = diff.ravel()
    n = np.int64(0)  # not a literal: see _kernels/__init__.py
    for r in range(kept.shape[0]):
        row = diff[r]
        for i in range(kept[r]):
            flat[n] = row[i]  # n <= r * row length + i: never ahead of what is read
            n += 1
    return _robust_sigma_of_differences(flat, n) / np.sqrt(2.0)


@scalar_helper
def _row_pairs(plane, y, along_rows, row_values, pairs):
    """Differences and sums of the usable pixel pairs two apart, at row ``y``.

    Parameters
    ----------
    plane : tuple of ndarray
        ``(dplane, fplane, bplane)``.
    y : int
        Row lines: the pairs ``(y, x)``, ``(y, x + 2)``; column lines:
        ``(y, x)``, ``(y + 2, x)``.
    along_rows : bool
    row_values : tuple of ndarray
        Two row-long scratch buffers.
    pairs : tuple of ndarray
        ``(row_diff, row_sum)``, written from the front.

    Returns
    -------
    int
        Number of pairs with both pixels usable.
    """
    r0, r2 = row_values
    row_diff, row_sum = pairs
    _usable_or_nan(plane, y, r0)
    m = 0
    if along_rows:
        for x in range(r0.shape[0] - 2):
            d = r0[x + 2] - r0[x]
            row_diff[m] = d
            row_sum[m] = r0[x + 2] + r0[x]
            m += d == d
    else:
        _usable_or_nan(plane, y + 2, r2)
        for x in range(r0.shape[0]):
            d = r2[x] - r0[x]
            row_diff[m] = d
            row_sum[m] = r2[x] + r0[x]
            m += d == d
    return m


@scalar_helper
def _keep_low_sum_pairs(pairs, m, scratch, diff, n):
    """Append the differences of pairs whose sum is below the median sum.

    Parameters
    ----------
    pairs : tuple of ndarray
        ``(row_diff, row_sum)`` of ``m`` pairs.
    m : int
    scratch : tuple of ndarray
        Two float64 buffers of at least ``m`` values (:func:`_median_sum`'s).
    diff : ndarray of float64
        Receives the kept differences from index ``n``.
    n : int

    Returns
    -------
    int
        The new number of differences in ``diff``.
    """
    row_diff, row_sum = pairs
    work, window = scratch
    threshold = _median_sum(row_sum, m, work, window)
    for i in range(m):
        keep = row_sum[i] < threshold
        diff[n] = row_diff[i]
        n += keep
    return n


@njit(cache=True, nogil=True)
def _robust_sigma_of_differences(diff, n):
    """Gaussian sigma of the core of ``diff[:n]``, differences centred on 0.

    MAD start, then a few passes of the standard deviation within +-3 sigma
    corrected for the truncation.

    Parameters
    ----------
    diff : ndarray of float64
    n : int

    Returns
    -------
    float
        The sigma of one difference; NaN for fewer than 8.
    """
    if n < 8:
        return np.nan
    absd = np.empty(n)
    for i in range(n):
        absd[i] = abs(diff[i])
    k = n >> 1
    # The values between two quantiles of a subsample hold the median: a
    # window of a quarter of them is plenty (else all are selected).
    _, mad = _middle_ranks(absd, n, k, k, np.empty(n // 4 + _SUBSAMPLE))
    sig = _MAD_TO_SIGMA * mad
    if not (sig > 0.0 and sig <= _FLOAT_MAX):
        return sig
    # Squares of differences far from 1 are taken of ``d * 2**-e``.
    e = math.frexp(sig)[1]
    e = e if e > _EXP_LIMIT or e < -_EXP_LIMIT else 0
    for _ in range(20):
        limit = 3.0 * sig
        s2 = 0.0
        m = 0
        for i in range(n):
            d = diff[i]
            inside = abs(d) <= limit
            d = _scaled(d, e)
            s2 += d * d if inside else 0.0
            m += inside
        if m < 2:
            break
        new = math.ldexp(np.sqrt(s2 / m) / _TRUNC3_STD, e)
        if abs(new - sig) <= 1e-7 * sig:
            sig = new
            break
        sig = new
    return sig


@scalar_helper
def _usable_or_nan(plane, y, out):
    """Row ``y`` of the plane with unusable pixels set to NaN.

    Parameters
    ----------
    plane : tuple of ndarray
    y : int
    out : ndarray of float64
        (Nx,), written.

    Returns
    -------
    None
    """
    dplane, fplane, bplane = plane
    has_flags = fplane.shape[0] > 0
    has_bg = bplane.shape[0] > 0
    drow = dplane[y]
    for x in range(out.shape[0]):
        v, ok = _usable_value(drow[x], fplane, bplane, y, x, has_flags, has_bg)
        out[x] = v if ok else np.nan


# The subsample of a row's sums that brackets their median (_median_sum): its
# size, and the ranks either side of its middle taken as the bracket. The
# subsample is spread evenly along the row, so the bracket holds about a
# quarter of the sums; the median falls outside it on about 0.2% of rows of
# noise (it is then selected among all of them).
_ROW_SAMPLE = (128, 17)


@scalar_helper
def _median_sum(row_sum, m, work, window):
    """The ``m >> 1``-th smallest of ``row_sum[:m]`` (the threshold of :func:`_keep_low_sum_pairs`).

    Parameters
    ----------
    row_sum : ndarray of float64
        Not NaN.
    m : int
        ``m >= 1``.
    work, window : ndarray of float64
        Scratch of at least ``m`` values each.

    Returns
    -------
    float
    """
    k = m >> 1
    sample = (np.int64(_ROW_SAMPLE[0]), np.int64(_ROW_SAMPLE[1]))  # (not literals: see _kernels)
    found, _, upper = _bracketed_ranks(row_sum, m, (k, k), window, sample)
    if found:
        return upper
    for i in range(m):
        work[i] = row_sum[i]  # select on a copy of the sums
    return _ranks(work, m, k, k)[1]
