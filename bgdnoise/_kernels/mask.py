"""Source-mask arithmetic on one plane: box means, thresholds, dilation."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .flags import EXCLUDE

# Rows (or columns) per parallel work item: scratch is allocated once per item.
_CHUNK = 64


@njit(parallel=True, cache=True)
def box_means(values, usable, half, mean, count):
    """Mean of the usable values in the ``(2 half + 1)**2`` box around every pixel.

    Parameters
    ----------
    values : ndarray of float64
        ``(ny, nx)``; read only where ``usable``.
    usable : ndarray of uint8
        ``(ny, nx)``, non-zero where a value enters the means.
    half : int
        Half-width of the box; boxes are cut at the plane's edges.
    mean, count : ndarray of float64
        ``(ny, nx)``, written: the mean (NaN where the box has no usable
        value) and the number of usable values.

    Returns
    -------
    None
    """
    ny, nx = values.shape
    row_sum = np.empty((ny, nx))
    row_cnt = np.empty((ny, nx))
    # Along the rows: running sums over each row's window.
    for chunk in prange((ny + _CHUNK - 1) // _CHUNK):
        prefix_sum = np.empty(nx + 1)
        prefix_cnt = np.empty(nx + 1)
        for y in range(chunk * _CHUNK, min(ny, (chunk + 1) * _CHUNK)):
            prefix_sum[0] = 0.0
            prefix_cnt[0] = 0.0
            for x in range(nx):
                use = usable[y, x] != 0
                prefix_sum[x + 1] = prefix_sum[x] + (values[y, x] if use else 0.0)
                prefix_cnt[x + 1] = prefix_cnt[x] + (1.0 if use else 0.0)
            for x in range(nx):
                lo, hi = max(0, x - half), min(nx, x + half + 1)
                row_sum[y, x] = prefix_sum[hi] - prefix_sum[lo]
                row_cnt[y, x] = prefix_cnt[hi] - prefix_cnt[lo]
    # Down the columns, a block of columns at a time so reads follow rows.
    for chunk in prange((nx + _CHUNK - 1) // _CHUNK):
        x0, x1 = chunk * _CHUNK, min(nx, (chunk + 1) * _CHUNK)
        prefix_sum = np.empty((ny + 1, x1 - x0))
        prefix_cnt = np.empty((ny + 1, x1 - x0))
        prefix_sum[0, :] = 0.0
        prefix_cnt[0, :] = 0.0
        for y in range(ny):
            for x in range(x0, x1):
                prefix_sum[y + 1, x - x0] = prefix_sum[y, x - x0] + row_sum[y, x]
                prefix_cnt[y + 1, x - x0] = prefix_cnt[y, x - x0] + row_cnt[y, x]
        for y in range(ny):
            lo, hi = max(0, y - half), min(ny, y + half + 1)
            for x in range(x0, x1):
                n = prefix_cnt[hi, x - x0] - prefix_cnt[lo, x - x0]
                count[y, x] = n
                s = prefix_sum[hi, x - x0] - prefix_sum[lo, x - x0]
                mean[y, x] = s / n if n > 0.5 else np.nan


@njit(parallel=True, cache=True)
def mark_above(mean, count, threshold, min_count, out):
    """``out |= (mean > threshold) & (count >= min_count)``.

    Parameters
    ----------
    mean, count : ndarray of float64
        ``(ny, nx)`` from :func:`box_means`.
    threshold, min_count : float
        Level above which a pixel is marked; fewest usable values a box needs.
    out : ndarray of uint8
        ``(ny, nx)``, set to 1 where marked (never cleared).

    Returns
    -------
    None
    """
    ny, nx = mean.shape
    for y in prange(ny):
        for x in range(nx):
            if count[y, x] >= min_count and mean[y, x] > threshold:
                out[y, x] = 1


@njit(parallel=True, cache=True)
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
    for y in prange(ny):
        last = -(radius + 1) * 4  # position of the latest mark seen
        for x in range(min(radius, nx)):
            if marks[y, x]:
                last = x
        for x in range(nx):
            ahead = x + radius
            if ahead < nx and marks[y, ahead]:
                last = ahead
            along[y, x] = 1 if last >= x - radius else 0
    for chunk in prange((nx + _CHUNK - 1) // _CHUNK):
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


@njit(parallel=True, cache=True)
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
    ny, nx = values.shape
    has_flags = flags.shape[0] > 0
    has_bg = background.shape[0] > 0
    for y in prange(ny):
        for x in range(nx):
            v = np.float64(values[y, x]) - level
            if has_bg:
                v -= background[y, x]
            ok = np.isfinite(v) and not (has_flags and (flags[y, x] & EXCLUDE))
            usable[y, x] = 1 if ok else 0
            out[y, x] = v if ok else 0.0
