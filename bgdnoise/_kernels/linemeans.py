"""Means of each group of each line inside a window: sky levels and stripe excess.

The scene stages' levels (the mean of a group's sky values within the clip
window around its clipped median) and the report's stripe excess (the
line means of the sky) are both this one pass.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .flags import EXCLUDE
from .gather import _group_span, _plane_rows
from .threads import run_ranges

# Column lines are summed this many at a time, walking rows, so reads stay contiguous.
_COLUMN_BLOCK = 64


def window_means(data, flags, background, geometry, window, means, counts):
    """Mean of every group's usable values inside a window, on every line.

    Usable as for the levels (:mod:`.gather`): finite, not exactly zero, not
    flagged ``EXCLUDE``, still finite after the background.

    Parameters
    ----------
    data, flags, background : ndarray
        As in the package docstring (flags and background broadcast when
        they have one plane; shape ``(1, 0, 0)`` when absent).
    geometry : tuple
        ``(along_rows, band_edges, odd_even)``: the groups of a line, as for
        :func:`.lines.line_levels`.
    window : tuple of ndarray
        ``(centre, below, above)``: ``centre`` ``(P, n_lines, n_groups)``,
        ``below`` and ``above`` ``(P,)``; values of group g of line l of plane
        p (after the background) outside ``[centre[p, l, g] - below[p],
        centre[p, l, g] + above[p]]`` do not count.
    means : ndarray of float64
        ``(P, n_lines, n_groups)``, written (NaN for a group without values).
    counts : ndarray of int64
        ``(P, n_lines, n_groups)``, written.

    Returns
    -------
    None
    """
    along_rows = geometry[0]
    n_planes, ny, nx = data.shape
    n_lines = ny if along_rows else nx
    block = 1 if along_rows else _COLUMN_BLOCK
    n_items = n_planes * -(-n_lines // block)
    run_ranges(
        _window_means_range, n_items, data, flags, background, geometry, window, block,
        means, counts,
    )  # fmt: skip


@njit(cache=True, nogil=True)
def _window_means_range(
    start, stop, data, flags, background, geometry, window, block, means, counts
):
    """Items (plane, block of lines) ``[start, stop)`` of :func:`window_means`."""
    along_rows, band_edges, odd_even = geometry
    centre, below, above = window
    ny, nx = data.shape[1], data.shape[2]
    n_lines = ny if along_rows else nx
    n_groups = centre.shape[2]
    blocks_per_plane = (n_lines + block - 1) // block
    totals = np.zeros((block, n_groups))
    n = np.zeros((block, n_groups), np.int64)
    lows, highs = np.empty(block), np.empty(block)
    for item in range(start, stop):
        p = item // blocks_per_plane
        first = (item % blocks_per_plane) * block
        nl = min(block, n_lines - first)
        dplane, fplane, bplane = _plane_rows(data, flags, background, p)
        totals[:] = 0.0
        n[:] = 0
        for g in range(n_groups):
            span = _group_span(band_edges, odd_even, g)
            if along_rows:
                _row_sums(dplane, fplane, bplane, first, span, centre[p, first, g] - below[p],
                          centre[p, first, g] + above[p], totals, n, g)  # fmt: skip
            else:
                for j in range(nl):
                    lows[j] = centre[p, first + j, g] - below[p]
                    highs[j] = centre[p, first + j, g] + above[p]
                _column_sums(dplane, fplane, bplane, (first, nl), span, (lows, highs), totals, n, g)
        for j in range(nl):
            for g in range(n_groups):
                counts[p, first + j, g] = n[j, g]
                means[p, first + j, g] = totals[j, g] / n[j, g] if n[j, g] > 0 else np.nan


@njit(cache=True, nogil=True)
def _row_sums(dplane, fplane, bplane, y, span, low, high, totals, n, g):
    """Sum and count of row ``y``'s usable values at ``range(*span)`` within ``[low, high]``.

    Written to ``totals[0, g]`` and ``n[0, g]``.
    """
    has_flags = fplane.shape[0] > 0
    has_bg = bplane.shape[0] > 0
    drow = dplane[y]
    total = 0.0
    count = 0
    for x in range(span[0], span[1], span[2]):
        # The test of .gather._usable_value written out, branch-free, as in
        # .gather._gather_row: with a call or branches here the loop is not vectorised.
        v = np.float64(drow[x])
        keep = (v - v == 0.0) & (v != 0.0)
        if has_flags:
            keep &= (fplane[y, x] & EXCLUDE) == 0
        if has_bg:
            v -= np.float64(bplane[y, x])
        keep &= (v - v == 0.0) & (low <= v) & (v <= high)
        total += v if keep else 0.0
        count += keep
    totals[0, g] = total
    n[0, g] = count


@njit(cache=True, nogil=True)
def _column_sums(dplane, fplane, bplane, block, span, window, totals, n, g):
    """Columns ``first..first + nl - 1`` at rows ``range(*span)``: rows ``j`` of column g.

    Walks rows, ``nl`` columns at a time, so reads stay contiguous; each
    column j keeps its values within ``[lows[j], highs[j]]``.
    """
    first, nl = block
    lows, highs = window
    has_flags = fplane.shape[0] > 0
    has_bg = bplane.shape[0] > 0
    for j in range(nl):
        totals[j, g] = 0.0
        n[j, g] = 0
    for y in range(span[0], span[1], span[2]):
        drow = dplane[y]
        for j in range(nl):
            x = first + j
            v = np.float64(drow[x])
            keep = (v - v == 0.0) & (v != 0.0)
            if has_flags:
                keep &= (fplane[y, x] & EXCLUDE) == 0
            if has_bg:
                v -= np.float64(bplane[y, x])
            keep &= (v - v == 0.0) & (lows[j] <= v) & (v <= highs[j])
            totals[j, g] += v if keep else 0.0
            n[j, g] += keep
