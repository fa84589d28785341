"""Means of each group of each line inside a window: sky levels and stripe excess.

The scene stages' levels (the mean of a group's sky values within the clip
window around its clipped median) and the report's stripe excess (the
line means of the sky) are both this one pass.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .gather import _group_span, _plane_rows, _usable_value
from .threads import run_ranges

# Column lines are summed this many at a time, walking rows, so reads stay contiguous.
_COLUMN_BLOCK = 16


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
    for item in range(start, stop):
        p = item // blocks_per_plane
        first = (item % blocks_per_plane) * block
        nl = min(block, n_lines - first)
        dplane, fplane, bplane = _plane_rows(data, flags, background, p)
        has_flags = fplane.shape[0] > 0
        has_bg = bplane.shape[0] > 0
        totals[:] = 0.0
        n[:] = 0
        for g in range(n_groups):
            span = _group_span(band_edges, odd_even, g)
            if along_rows:
                low = centre[p, first, g] - below[p]
                high = centre[p, first, g] + above[p]
                drow = dplane[first]
                for x in range(span[0], span[1], span[2]):
                    v, ok = _usable_value(drow[x], fplane, bplane, first, x, has_flags, has_bg)
                    if ok and low <= v <= high:
                        totals[0, g] += v
                        n[0, g] += 1
            else:
                for y in range(span[0], span[1], span[2]):
                    drow = dplane[y]
                    for j in range(nl):
                        x = first + j
                        v, ok = _usable_value(drow[x], fplane, bplane, y, x, has_flags, has_bg)
                        if ok and centre[p, x, g] - below[p] <= v <= centre[p, x, g] + above[p]:
                            totals[j, g] += v
                            n[j, g] += 1
        for j in range(nl):
            for g in range(n_groups):
                counts[p, first + j, g] = n[j, g]
                means[p, first + j, g] = totals[j, g] / n[j, g] if n[j, g] > 0 else np.nan
