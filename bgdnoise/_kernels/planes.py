"""Whole-plane transforms for the scene stage: residual, median of planes, binning, magnitudes."""

from __future__ import annotations

import numpy as np
from numba import njit

from ._jit import scalar_helper
from .flags import EXCLUDE
from .threads import claim, run_ranges


def median_over_planes(planes, flags, out):
    """Per pixel, the median over the planes of the values not excluded.

    Parameters
    ----------
    planes : ndarray of float32 or float64
        ``(P, ny, nx)``, P small (a sample of a cube's planes).
    flags : ndarray of uint8
        ``(Pf, ny, nx)``, Pf in {1, P}, or ``(1, 0, 0)``; EXCLUDE keeps a
        value out.
    out : ndarray of float64
        ``(ny, nx)``, written (NaN where no plane has a value).

    Returns
    -------
    None
    """
    run_ranges(_median_over_planes_range, planes.shape[1], planes, flags, out)


@njit(cache=True, nogil=True)
def _median_over_planes_range(claims, planes, flags, out):
    """Items of :func:`median_over_planes`."""
    n_planes, nx = planes.shape[0], planes.shape[2]
    has_flags = flags.shape[1] > 0
    values = np.empty(n_planes)
    start, stop = claim(claims)
    while start < stop:
        for y in range(start, stop):
            for x in range(nx):
                n = 0
                for p in range(n_planes):
                    if has_flags and flags[min(p, flags.shape[0] - 1), y, x] & EXCLUDE:
                        continue
                    v = np.float64(planes[p, y, x])
                    if not np.isfinite(v):
                        continue
                    # Insertion into the sorted prefix: a handful of values.
                    k = n
                    while k > 0 and values[k - 1] > v:
                        values[k] = values[k - 1]
                        k -= 1
                    values[k] = v
                    n += 1
                if n == 0:
                    out[y, x] = np.nan
                elif n % 2 == 1:
                    out[y, x] = values[n // 2]
                else:
                    out[y, x] = 0.5 * (values[n // 2 - 1] + values[n // 2])
        start, stop = claim(claims)


def bin_along_lines(plane, flags, along_rows, factor, out, out_flags):
    """Mean of each run of ``factor`` pixels along the lines (stripes stay whole).

    Parameters
    ----------
    plane : ndarray of float32 or float64
        ``(ny, nx)``.
    flags : ndarray of uint8
        ``(ny, nx)`` or ``(0, 0)``; EXCLUDE keeps a pixel out.
    along_rows : bool
        Lines are rows (bins along x) or columns (bins along y).
    factor : int
        Pixels per bin; the line length is a multiple of it.
    out : ndarray
        ``(ny, nx // factor)`` or ``(ny // factor, nx)``, plane's dtype, written.
    out_flags : ndarray of uint8
        Shaped like ``out``: EXCLUDE where a bin has no usable value.

    Returns
    -------
    None
    """
    run_ranges(
        _bin_along_lines_range, out.shape[0], plane, flags, along_rows, factor, out, out_flags
    )


@njit(cache=True, nogil=True)
def _bin_along_lines_range(claims, plane, flags, along_rows, factor, out, out_flags):
    """Items of :func:`bin_along_lines`."""
    mx = out.shape[1]
    has_flags = flags.shape[0] > 0
    no_flags = np.zeros(0, np.uint8)
    total = np.empty(mx)  # column bins: sums along whole rows
    count = np.empty(mx, np.int64)
    start, stop = claim(claims)
    while start < stop:
        for y in range(start, stop):
            if along_rows and factor == 4:  # the search's bins, written out
                _bin_row_in_fours(
                    plane[y], flags[y] if has_flags else no_flags, out[y], out_flags[y]
                )
            elif along_rows:
                for x in range(mx):
                    s, n = 0.0, 0
                    for k in range(x * factor, (x + 1) * factor):
                        v = np.float64(plane[y, k])
                        if (has_flags and flags[y, k] & EXCLUDE) or not np.isfinite(v):
                            continue
                        s += v
                        n += 1
                    out[y, x] = s / n if n > 0 else np.nan
                    out_flags[y, x] = 0 if n > 0 else EXCLUDE
            else:
                # Each bin's values in the same order as one bin at a time, summed
                # along whole rows with selects: the loops vectorise (3.4x faster).
                # A sum that starts at +0.0 is unchanged by adding +0.0.
                total[:] = 0.0
                count[:] = 0
                for k in range(y * factor, (y + 1) * factor):
                    prow = plane[k]
                    frow = flags[k] if has_flags else no_flags
                    for x in range(mx):
                        v = np.float64(prow[x])
                        ok = v - v == 0.0
                        if has_flags:
                            ok &= (frow[x] & EXCLUDE) == 0
                        total[x] += v if ok else 0.0
                        count[x] += ok
                orow, oflags = out[y], out_flags[y]
                for x in range(mx):
                    n = count[x]
                    orow[x] = total[x] / n if n > 0 else np.nan
                    oflags[x] = 0 if n > 0 else EXCLUDE
        start, stop = claim(claims)


@scalar_helper
def _bin_row_in_fours(row, flags, out, out_flags):
    """:func:`_bin_along_lines_range` on one row in bins of four (``flags`` empty: none).

    Selects, not branches, and the four values written out (a branch per
    pixel and a loop of four per bin took 6x as long); each bin's sum takes
    the same values in the same order (a sum that starts at +0.0 is
    unchanged by adding +0.0).
    """
    has_flags = flags.shape[0] != 0
    for x in range(out.shape[0]):
        s, n = 0.0, 0
        for j in range(4):
            v = np.float64(row[4 * x + j])
            ok = v - v == 0.0
            if has_flags:
                ok &= (flags[4 * x + j] & EXCLUDE) == 0
            s += v if ok else 0.0
            n += ok
        out[x] = s / n if n > 0 else np.nan
        out_flags[x] = 0 if n > 0 else EXCLUDE


def row_magnitudes(values, out):
    """The largest magnitude of each row's values that are not NaN.

    Parameters
    ----------
    values : ndarray of float32 or float64
        ``(ny, nx)``.
    out : ndarray of float64
        ``(ny,)``, written: ``max |v|`` over the row's values that are not
        NaN (infinities included), NaN for a row of NaNs only.

    Returns
    -------
    None
    """
    run_ranges(_row_magnitudes_range, values.shape[0], values, out)


@njit(cache=True, nogil=True)
def _row_magnitudes_range(claims, values, out):
    """Rows of :func:`row_magnitudes`."""
    halves = np.empty(max(values.shape[1] // 2, 1), values.dtype)
    start, stop = claim(claims)
    while start < stop:
        for y in range(start, stop):
            largest = _largest_magnitude(values[y], halves)
            out[y] = largest if largest >= 0.0 else np.nan
        start, stop = claim(claims)


@scalar_helper
def _largest_magnitude(row, halves):
    """``max |v|`` over the values of ``row`` that are not NaN, as float64; -1.0 if none.

    The row folded in halves (each half's maxima with the other's, then the
    half of those...): long elementwise loops in the row's precision, which
    vectorise; a running maximum is a chain of dependent compares that LLVM
    keeps in order without fastmath. The maximum is the same whatever the
    order, and NaN compares false: never kept.
    """
    halves[0] = -1.0
    none = halves[0]  # -1 in the row's precision
    largest = -1.0
    n = row.shape[0] >> 1
    if row.shape[0] & 1:
        v = abs(np.float64(row[row.shape[0] - 1]))
        largest = v if v > largest else largest
    lower, upper = row[:n], row[n : 2 * n]
    for i in range(n):
        a, b = abs(lower[i]), abs(upper[i])
        m = a if a > none else none
        halves[i] = b if b > m else m
    while n > 16:
        if n & 1:
            v = np.float64(halves[n - 1])
            largest = v if v > largest else largest
        n >>= 1
        lower, upper = halves[:n], halves[n : 2 * n]
        for i in range(n):
            lower[i] = upper[i] if upper[i] > lower[i] else lower[i]
    for i in range(n):
        v = np.float64(halves[i])
        largest = v if v > largest else largest
    return largest
