"""Gathering the usable values of a block of lines into per-group segments.

Usable: finite and not exactly zero (no data in a rate file), not flagged
``EXCLUDE``, and still finite after the background is subtracted.  A plane
is passed as ``plane = (dplane, fplane, bplane)``: its data, flags and
background, the last two of shape (0, 0) when absent.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .flags import EXCLUDE


@njit(cache=True, nogil=True)
def _plane_rows(data, flags, background, p):
    """Plane ``p`` of data, flags and background.

    Parameters
    ----------
    data, flags, background : ndarray
        As in the package docstring; flags and background broadcast when
        they have one plane.
    p : int

    Returns
    -------
    tuple of ndarray
        ``(dplane, fplane, bplane)``, each 2D.
    """
    q = np.int64(p)
    return data[q], flags[min(q, flags.shape[0] - 1)], background[min(q, background.shape[0] - 1)]


@njit(cache=True, nogil=True)
def _usable_value(value, fplane, bplane, y, x, has_flags, has_bg):
    """One pixel's value for the statistics, and whether it is usable.

    Parameters
    ----------
    value : float
        ``dplane[y, x]``.
    fplane, bplane : ndarray
        Flags and background of the plane (read only if present).
    y, x : int
    has_flags, has_bg : bool

    Returns
    -------
    v : float64
        The value minus the background.
    ok : bool
    """
    v = np.float64(value)
    ok = (v - v == 0.0) & (v != 0.0)  # finite and not exactly zero
    if has_flags:
        ok &= (fplane[y, x] & EXCLUDE) == 0
    if has_bg:
        v -= np.float64(bplane[y, x])
        ok &= v - v == 0.0
    return v, ok


@njit(cache=True, nogil=True)
def gather_block(plane, first, nl, geometry, gathered):
    """Usable values of lines ``first..first + nl - 1``, by group.

    Parameters
    ----------
    plane : tuple of ndarray
    first, nl : int
        First line of the block and number of lines.
    geometry : tuple
        ``(along_rows, band_edges, odd_even, group_start)``.
    gathered : tuple of ndarray
        ``(seg, cnt)``: ``seg[j, group_start[g]:]`` receives the values of
        group g of line ``first + j``, ``cnt[j, g]`` their number.

    Returns
    -------
    None
    """
    if geometry[0]:
        _gather_rows(plane, first, nl, geometry, gathered)
    else:
        _gather_columns(plane, first, nl, geometry, gathered)


@njit(cache=True, nogil=True)
def _gather_rows(plane, first, nl, geometry, gathered):
    """:func:`gather_block` for lines along rows.

    Parameters
    ----------
    plane, first, nl, geometry, gathered
        As for :func:`gather_block`.

    Returns
    -------
    None
    """
    _, band_edges, odd_even, group_start = geometry
    seg, cnt = gathered
    n_par = 2 if odd_even else 1
    for j in range(nl):
        y = first + j
        for b in range(band_edges.shape[0] - 1):
            x0 = band_edges[b]
            x1 = band_edges[b + 1]
            for par in range(n_par):
                g = b * n_par + par
                xs = x0
                if odd_even and (x0 & 1) != par:
                    xs += 1
                cnt[j, g] = _gather(plane, y, xs, x1, n_par, seg[j, group_start[g] :])


@njit(cache=True, nogil=True)
def _gather(plane, y, x0, x1, step, dst):
    """Copy the usable values of row ``y`` at ``x0:x1:step`` to the front of ``dst``.

    Branch-free compaction: every value is written, the cursor advances only
    for usable ones.

    Parameters
    ----------
    plane : tuple of ndarray
    y, x0, x1, step : int
    dst : ndarray of float64

    Returns
    -------
    int
        Number of usable values.
    """
    dplane, fplane, bplane = plane
    has_flags = fplane.shape[0] > 0
    has_bg = bplane.shape[0] > 0
    drow = dplane[y]
    c = 0
    for x in range(x0, x1, step):
        # _usable_value written out: a call in this loop, even one inlined
        # later, keeps numba's optimizer from unrolling it.
        v = np.float64(drow[x])
        ok = (v - v == 0.0) & (v != 0.0)
        if has_flags:
            ok &= (fplane[y, x] & EXCLUDE) == 0
        if has_bg:
            v -= np.float64(bplane[y, x])
            ok &= v - v == 0.0
        dst[c] = v
        c += ok
    return c


@njit(cache=True, nogil=True)
def _gather_columns(plane, first, nl, geometry, gathered):
    """:func:`gather_block` for lines along columns.

    Walks rows, ``nl`` columns at a time, so reads stay contiguous.

    Parameters
    ----------
    plane, first, nl, geometry, gathered
        As for :func:`gather_block`.

    Returns
    -------
    None
    """
    _, band_edges, odd_even, group_start = geometry
    seg, cnt = gathered
    dplane, fplane, bplane = plane
    has_flags = fplane.shape[0] > 0
    has_bg = bplane.shape[0] > 0
    n_par = 2 if odd_even else 1
    cnt[:, :] = 0
    for b in range(band_edges.shape[0] - 1):
        for y in range(band_edges[b], band_edges[b + 1]):
            g = b * n_par + ((y & 1) if odd_even else 0)
            base = group_start[g]
            drow = dplane[y]
            for j in range(nl):
                x = first + j
                v, ok = _usable_value(drow[x], fplane, bplane, y, x, has_flags, has_bg)
                c = cnt[j, g]
                seg[j, base + c] = v
                cnt[j, g] = c + ok
