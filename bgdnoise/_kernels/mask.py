"""Source-mask arithmetic on one plane: box means, thresholds, dilation.

Kernels over whole planes are plain nogil loops over a range of rows, run in
threads by :func:`.threads.run_ranges` (they compile in a fraction of the
time of ``parallel=True`` ones); those over the small maps of cells (box
means, marking) run serially.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .flags import EXCLUDE
from .threads import run_ranges

# Rows (or columns) per parallel work item: scratch is allocated once per item.
_CHUNK = 64


def block_sums(values, usable, block, sums, counts):
    """Sums and counts of the usable values in ``block`` x ``block`` cells.

    Parameters
    ----------
    values : ndarray of float64
        ``(ny, nx)``; read only where ``usable``.
    usable : ndarray of uint8
        ``(ny, nx)``, non-zero where a value counts.
    block : int
        Cell size; cells at the far edges may be partial.
    sums, counts : ndarray of float64
        ``(ceil(ny / block), ceil(nx / block))``, written.

    Returns
    -------
    None
    """
    run_ranges(_block_sums_range, sums.shape[0], values, usable, block, sums, counts)


@njit(cache=True, nogil=True)
def _block_sums_range(start, stop, values, usable, block, sums, counts):
    """Items ``[start, stop)`` of :func:`block_sums`."""
    ny, nx = values.shape
    mx = sums.shape[1]
    for cy in range(start, stop):
        for cx in range(mx):
            sums[cy, cx] = 0.0
            counts[cy, cx] = 0.0
        for y in range(cy * block, min(ny, (cy + 1) * block)):
            for x in range(nx):
                if usable[y, x] != 0:
                    sums[cy, x // block] += values[y, x]
                    counts[cy, x // block] += 1.0


@njit(cache=True, nogil=True)
def box_means(sums, counts, half, min_count, mean):
    """Mean over the ``(2 half + 1)**2`` box of cells around every cell.

    Parameters
    ----------
    sums, counts : ndarray of float64
        ``(ny, nx)`` per-cell sums and counts (a pixel is a cell of one).
    half : int
        Half-width of the box in cells; boxes are cut at the edges.
    min_count : float
        Fewest values a box needs; NaN below.
    mean : ndarray of float64
        ``(ny, nx)``, written.

    Returns
    -------
    None
    """
    ny, nx = sums.shape
    row_sum = np.empty((ny, nx))
    row_cnt = np.empty((ny, nx))
    # Along the rows: a running window.
    for y in range(ny):
        s, c = 0.0, 0.0
        for x in range(min(half, nx)):
            s += sums[y, x]
            c += counts[y, x]
        for x in range(nx):
            if x + half < nx:
                s += sums[y, x + half]
                c += counts[y, x + half]
            if x - half - 1 >= 0:
                s -= sums[y, x - half - 1]
                c -= counts[y, x - half - 1]
            row_sum[y, x] = s
            row_cnt[y, x] = c
    # Down the columns, a block of columns at a time so reads follow rows.
    for chunk in range((nx + _CHUNK - 1) // _CHUNK):
        x0, x1 = chunk * _CHUNK, min(nx, (chunk + 1) * _CHUNK)
        acc_s = np.zeros(x1 - x0)
        acc_c = np.zeros(x1 - x0)
        for y in range(min(half, ny)):
            for x in range(x0, x1):
                acc_s[x - x0] += row_sum[y, x]
                acc_c[x - x0] += row_cnt[y, x]
        for y in range(ny):
            add, drop = y + half, y - half - 1
            for x in range(x0, x1):
                if add < ny:
                    acc_s[x - x0] += row_sum[add, x]
                    acc_c[x - x0] += row_cnt[add, x]
                if drop >= 0:
                    acc_s[x - x0] -= row_sum[drop, x]
                    acc_c[x - x0] -= row_cnt[drop, x]
                n = acc_c[x - x0]
                mean[y, x] = acc_s[x - x0] / n if n >= min_count and n > 0.5 else np.nan


@njit(cache=True, nogil=True)
def mark_above(mean, threshold, block, out):
    """Set ``out`` to 1 on every pixel of a cell whose ``mean`` exceeds ``threshold``.

    Parameters
    ----------
    mean : ndarray of float64
        ``(my, mx)`` cell means (NaN: no verdict).
    threshold : float
        Level above which a cell is marked.
    block : int
        Cell size in pixels.
    out : ndarray of uint8
        ``(ny, nx)`` with ``my = ceil(ny / block)``; set where marked, never
        cleared (only marked cells are written).

    Returns
    -------
    None
    """
    ny, nx = out.shape
    my, mx = mean.shape
    for cy in range(my):
        for cx in range(mx):
            if mean[cy, cx] > threshold:
                for y in range(cy * block, min(ny, (cy + 1) * block)):
                    for x in range(cx * block, min(nx, (cx + 1) * block)):
                        out[y, x] = 1


def mark_box3(values, usable, threshold, min_count, out):
    """``out = 1`` where the mean of the usable values of the 3x3 box exceeds ``threshold``.

    Parameters
    ----------
    values : ndarray of float64
        ``(ny, nx)``.
    usable : ndarray of uint8
        ``(ny, nx)``.
    threshold : float
    min_count : int
        Fewest usable values a box needs.
    out : ndarray of uint8
        ``(ny, nx)``; set where marked, never cleared.

    Returns
    -------
    None
    """
    run_ranges(_mark_box3_range, values.shape[0], values, usable, threshold, min_count, out)


@njit(cache=True, nogil=True)
def _mark_box3_range(start, stop, values, usable, threshold, min_count, out):
    """Items ``[start, stop)`` of :func:`mark_box3`."""
    ny, nx = values.shape
    # Sums down each column of the 3 rows, then across 3 columns.
    column_sum = np.empty(nx)
    column_cnt = np.empty(nx)
    for y in range(start, stop):
        for x in range(nx):
            column_sum[x] = 0.0
            column_cnt[x] = 0.0
        for yy in range(max(0, y - 1), min(ny, y + 2)):
            for x in range(nx):
                if usable[yy, x] != 0:
                    column_sum[x] += values[yy, x]
                    column_cnt[x] += 1.0
        for x in range(nx):
            total, n = column_sum[x], column_cnt[x]
            if x > 0:
                total += column_sum[x - 1]
                n += column_cnt[x - 1]
            if x + 1 < nx:
                total += column_sum[x + 1]
                n += column_cnt[x + 1]
            if n >= min_count and total > threshold * n:
                out[y, x] = 1


@njit(cache=True, nogil=True)
def box3_sample(values, usable, step, out):
    """3x3 box means on a grid of every ``step``-th pixel (NaN without values).

    Parameters
    ----------
    values : ndarray of float64
    usable : ndarray of uint8
    step : int
    out : ndarray of float64
        ``(ceil(ny / step), ceil(nx / step))``, written.

    Returns
    -------
    None
    """
    ny, nx = values.shape
    my, mx = out.shape
    for cy in range(my):
        y = cy * step
        for cx in range(mx):
            x = cx * step
            total, n = 0.0, 0
            for yy in range(max(0, y - 1), min(ny, y + 2)):
                for xx in range(max(0, x - 1), min(nx, x + 2)):
                    if usable[yy, xx] != 0:
                        total += values[yy, xx]
                        n += 1
            out[cy, cx] = total / n if n >= 2 else np.nan


def mark_pixels(values, usable, threshold, out):
    """``out = 1`` where a usable value exceeds ``threshold`` (never cleared).

    Parameters
    ----------
    values : ndarray of float64
        ``(ny, nx)``.
    usable : ndarray of uint8
        ``(ny, nx)``.
    threshold : float
    out : ndarray of uint8
        ``(ny, nx)``.

    Returns
    -------
    None
    """
    run_ranges(_mark_pixels_range, values.shape[0], values, usable, threshold, out)


@njit(cache=True, nogil=True)
def _mark_pixels_range(start, stop, values, usable, threshold, out):
    """Items ``[start, stop)`` of :func:`mark_pixels`."""
    nx = values.shape[1]
    for y in range(start, stop):
        for x in range(nx):
            if usable[y, x] != 0 and values[y, x] > threshold:
                out[y, x] = 1


def dilate(marks, radius, out):
    """Square dilation: ``out`` is 1 within ``radius`` pixels (Chebyshev) of a mark.

    Parameters
    ----------
    marks : ndarray of uint8
        ``(ny, nx)``.
    radius : int
        Half-width of the square.
    out : ndarray of uint8
        ``(ny, nx)``, written (may not be ``marks``).

    Returns
    -------
    None
    """
    ny, nx = marks.shape
    along = np.empty((ny, nx), dtype=np.uint8)
    run_ranges(_dilate_rows, ny, marks, radius, along)
    run_ranges(_dilate_columns, -(-nx // _CHUNK), along, radius, out, min_items=1)


@njit(cache=True, nogil=True)
def _dilate_rows(start, stop, marks, radius, along):
    """Rows ``[start, stop)``: 1 within ``radius`` of a mark along the row."""
    nx = marks.shape[1]
    for y in range(start, stop):
        last = -(radius + 1) * 4  # position of the latest mark seen
        for x in range(min(radius, nx)):
            if marks[y, x]:
                last = x
        for x in range(nx):
            ahead = x + radius
            if ahead < nx and marks[y, ahead]:
                last = ahead
            along[y, x] = 1 if last >= x - radius else 0


@njit(cache=True, nogil=True)
def _dilate_columns(start, stop, along, radius, out):
    """Blocks of columns ``[start, stop)``: the same down the columns."""
    ny, nx = along.shape
    for chunk in range(start, stop):
        x0, x1 = chunk * _CHUNK, min(nx, (chunk + 1) * _CHUNK)
        last = np.full(x1 - x0, -(radius + 1) * 4)
        for y in range(min(radius, ny)):
            for x in range(x0, x1):
                if along[y, x]:
                    last[x - x0] = y
        for y in range(ny):
            ahead = y + radius
            for x in range(x0, x1):
                if ahead < ny and along[ahead, x]:
                    last[x - x0] = ahead
                out[y, x] = 1 if last[x - x0] >= y - radius else 0


def residual_plane(values, flags, background, level, usable, out):
    """``out = values - background - level`` and the pixels usable for detection.

    Parameters
    ----------
    values : ndarray of float32 or float64
        ``(ny, nx)`` data minus its stripe model.
    flags : ndarray of uint8
        ``(ny, nx)`` or ``(0, 0)``: EXCLUDE keeps a pixel out.
    background : ndarray
        ``(ny, nx)`` or ``(0, 0)``: the smooth background so far.
    level : float
        The sky pedestal.
    usable : ndarray of uint8
        ``(ny, nx)``, written: 1 where finite and not excluded.
    out : ndarray of float64
        ``(ny, nx)``, written (0 where not usable).

    Returns
    -------
    None
    """
    run_ranges(
        _residual_plane_range, values.shape[0], values, flags, background, level, usable, out
    )


@njit(cache=True, nogil=True)
def _residual_plane_range(start, stop, values, flags, background, level, usable, out):
    """Items ``[start, stop)`` of :func:`residual_plane`."""
    nx = values.shape[1]
    has_flags = flags.shape[0] > 0
    has_bg = background.shape[0] > 0
    for y in range(start, stop):
        for x in range(nx):
            v = np.float64(values[y, x]) - level
            if has_bg:
                v -= background[y, x]
            ok = np.isfinite(v) and not (has_flags and (flags[y, x] & EXCLUDE))
            usable[y, x] = 1 if ok else 0
            out[y, x] = v if ok else 0.0


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
def _median_over_planes_range(start, stop, planes, flags, out):
    """Items ``[start, stop)`` of :func:`median_over_planes`."""
    n_planes, nx = planes.shape[0], planes.shape[2]
    has_flags = flags.shape[1] > 0
    values = np.empty(n_planes)
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
def _bin_along_lines_range(start, stop, plane, flags, along_rows, factor, out, out_flags):
    """Items ``[start, stop)`` of :func:`bin_along_lines`."""
    mx = out.shape[1]
    has_flags = flags.shape[0] > 0
    for y in range(start, stop):
        for x in range(mx):
            total, n = 0.0, 0
            for k in range(factor):
                yy, xx = y, x
                if along_rows:
                    xx = x * factor + k
                else:
                    yy = y * factor + k
                v = np.float64(plane[yy, xx])
                if (has_flags and flags[yy, xx] & EXCLUDE) or not np.isfinite(v):
                    continue
                total += v
                n += 1
            out[y, x] = total / n if n > 0 else np.nan
            out_flags[y, x] = 0 if n > 0 else EXCLUDE
