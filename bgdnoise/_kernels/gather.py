"""Gathering the usable values of a block of lines into per-group segments.

Usable: finite and not exactly zero (no data in a rate file), not flagged
``EXCLUDE``, and still finite after the background is subtracted.  A plane
is passed as ``plane = (dplane, fplane, bplane)``: its data, flags and
background, the last two of shape (0, 0) when absent.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._jit import scalar_helper
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


@scalar_helper
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


@scalar_helper
def gather_block(plane, first, nl, geometry, gathered):
    """Usable values of lines ``first..first + nl - 1``, by group.

    Within each group the values keep their order along the line.

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
    along_rows, band_edges, odd_even, group_start = geometry
    seg, cnt = gathered
    for g in range(cnt.shape[1]):
        span = _group_span(band_edges, odd_even, g)
        if along_rows:
            for j in range(nl):
                cnt[j, g] = _gather_row(plane, first + j, span, seg[j, group_start[g] :])
        else:
            _gather_columns(plane, (first, nl), (g, group_start[g], span), gathered)


@scalar_helper
def _group_span(band_edges, odd_even, g):
    """Positions along a line of group ``g``: ``range(start, stop, step)``.

    Group ``g`` is band ``g // 2`` and the positions of parity ``g % 2``
    when ``odd_even``, else band ``g``.

    Parameters
    ----------
    band_edges : ndarray of int64
    odd_even : bool
    g : int

    Returns
    -------
    tuple of int
        ``(start, stop, step)``.
    """
    if not odd_even:
        return band_edges[g], band_edges[g + 1], 1
    b = g >> 1
    start = band_edges[b]
    if (start & 1) != (g & 1):
        start += 1
    return start, band_edges[b + 1], 2


@scalar_helper
def _gather_row(plane, y, span, dst):
    """Copy the usable values of row ``y`` at ``range(*span)`` to the front of ``dst``.

    Contiguous spans go in two passes: every value to its own place in
    ``dst``, NaN for an unusable one, counting the usable ones (a loop of
    independent steps, which LLVM vectorises); then, if any is unusable, the
    NaNs squeezed out in place. (Chunks of 32 values, counted then copied
    whole, were unrolled by LLVM and not vectorised: the copy became a
    scatter, and the gather took half as long again.)
    Other spans (odd or even positions) are compacted value by value: every
    value is written, the cursor advances only for usable ones. Both keep
    the usable values in their order.

    Parameters
    ----------
    plane : tuple of ndarray
    y : int
    span : tuple of int
        ``(start, stop, step)`` along the row.
    dst : ndarray of float64
        At least as long as the span; beyond the usable values its content
        is undefined.

    Returns
    -------
    int
        Number of usable values.
    """
    dplane, fplane, bplane = plane
    has_flags = fplane.shape[0] > 0
    has_bg = bplane.shape[0] > 0
    start, stop, step = span
    drow = dplane[y]
    if step == 1:
        # Slices from 0: numba then knows every index is in order and not
        # negative, and vectorises the loops below.
        vals = drow[start:stop]
        frow = fplane[y][start:stop] if has_flags else fplane.reshape(-1)
        brow = bplane[y][start:stop] if has_bg else drow[0:0]
        n = vals.shape[0]
        out = dst[:n]
        good = 0
        # One loop per case: a test of has_flags or has_bg inside keeps it scalar.
        if has_flags and has_bg:
            for i in range(n):
                v = np.float64(vals[i])
                ok = (v - v == 0.0) & (v != 0.0) & ((frow[i] & EXCLUDE) == 0)
                v -= np.float64(brow[i])
                ok &= v - v == 0.0
                out[i] = v if ok else np.nan
                good += np.int64(ok)
        elif has_flags:
            for i in range(n):
                v = np.float64(vals[i])
                ok = (v - v == 0.0) & (v != 0.0) & ((frow[i] & EXCLUDE) == 0)
                out[i] = v if ok else np.nan
                good += np.int64(ok)
        elif has_bg:
            for i in range(n):
                v = np.float64(vals[i])
                ok = (v - v == 0.0) & (v != 0.0)
                v -= np.float64(brow[i])
                ok &= v - v == 0.0
                out[i] = v if ok else np.nan
                good += np.int64(ok)
        else:
            for i in range(n):
                v = np.float64(vals[i])
                ok = (v - v == 0.0) & (v != 0.0)
                out[i] = v if ok else np.nan
                good += np.int64(ok)
        if good < n:
            # A usable value is never NaN. The cursor never passes i: each
            # value is read before its place can be written.
            c = 0
            for i in range(n):
                v = out[i]
                out[np.uint64(c)] = v  # (unsigned: no code for negative indices)
                c += v == v
        return good
    c = 0
    for x in range(start, stop, step):
        # _usable_value written out: with a call here numba does not unroll this loop.
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


@scalar_helper
def _gather_columns(plane, block, group, gathered):
    """:func:`gather_block` of one group for lines along columns.

    Walks rows, ``nl`` columns at a time, so reads stay contiguous.

    Parameters
    ----------
    plane : tuple of ndarray
    block : tuple of int
        ``(first, nl)``: first column and number of columns.
    group : tuple
        ``(g, base, span)``: the group, its segment start and its rows
        ``range(*span)``.
    gathered : tuple of ndarray
        As for :func:`gather_block`; column g of ``cnt`` is set.

    Returns
    -------
    None
    """
    dplane, fplane, bplane = plane
    first, nl = block
    g, base, span = group
    seg, cnt = gathered
    has_flags = fplane.shape[0] > 0
    has_bg = bplane.shape[0] > 0
    for j in range(nl):
        cnt[j, g] = 0
    for y in range(span[0], span[1], span[2]):
        drow = dplane[y]
        for j in range(nl):
            x = first + j
            v, ok = _usable_value(drow[x], fplane, bplane, y, x, has_flags, has_bg)
            c = cnt[j, g]
            seg[j, base + c] = v
            cnt[j, g] = c + ok
