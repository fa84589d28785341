"""Line means of the sky: what the stripe excess of a report is built from."""

from __future__ import annotations

import numpy as np
from numba import njit

from .flags import EXCLUDE
from .threads import run_ranges


def sky_line_means(data, flags, background, along_rows, window, means, counts):
    """Mean of every line's usable values inside a window around the sky.

    Parameters
    ----------
    data, flags, background : ndarray
        As in the package docstring (flags and background broadcast when
        they have one plane; shape ``(1, 0, 0)`` when absent).
    along_rows : bool
        Lines are rows (else columns).
    window : tuple of ndarray
        ``(centre, half_width)``, each ``(P,)``: values of plane p outside
        ``centre[p] +- half_width[p]`` (after the background) do not count
        (a source the mask missed, a cosmic ray).
    means : ndarray of float64
        ``(P, n_lines)``, written (NaN for a line without values).
    counts : ndarray of int64
        ``(P, n_lines)``, written.

    Returns
    -------
    None
    """
    n_planes, ny, nx = data.shape
    n_lines = ny if along_rows else nx
    run_ranges(
        _sky_line_means_range, n_planes * n_lines, data, flags, background, along_rows,
        window, means, counts,
    )  # fmt: skip


@njit(cache=True, nogil=True)
def _sky_line_means_range(start, stop, data, flags, background, along_rows, window, means, counts):
    """Items (plane, line) ``[start, stop)`` of :func:`sky_line_means`."""
    centre, half_width = window
    ny, nx = data.shape[1], data.shape[2]
    n_lines = ny if along_rows else nx
    has_flags = flags.shape[1] > 0
    has_bg = background.shape[1] > 0
    for item in range(start, stop):
        p, line = item // n_lines, item % n_lines
        pf = min(p, flags.shape[0] - 1)
        pb = min(p, background.shape[0] - 1)
        low, high = centre[p] - half_width[p], centre[p] + half_width[p]
        total, n = 0.0, 0
        length = nx if along_rows else ny
        for pos in range(length):
            y, x = (line, pos) if along_rows else (pos, line)
            if has_flags and flags[pf, y, x] & EXCLUDE:
                continue
            v = np.float64(data[p, y, x])
            if has_bg:
                v -= background[pb, y, x]
            if low <= v <= high:
                total += v
                n += 1
        counts[p, line] = n
        means[p, line] = total / n if n > 0 else np.nan
