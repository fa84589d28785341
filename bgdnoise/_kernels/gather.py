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

#: Rows of a block of column lines read per pass of :func:`_gather_columns`
#: (the rows of its scratch).
COLUMN_ROWS = 64


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
def gather_block(plane, first, nl, geometry, gathered, rows):
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
    rows : ndarray of float64
        Scratch of lines along columns: ``(COLUMN_ROWS, nl)`` or more
        (not read for lines along rows).

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
            _gather_columns(plane, (first, nl), (g, group_start[g], span), gathered, rows)


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
        good = _usable_run(vals, frow, brow, has_flags, has_bg, out)
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
def _usable_run(vals, frow, brow, has_flags, has_bg, out):
    """Each value of a contiguous run, less its background, or NaN where unusable.

    Parameters
    ----------
    vals : ndarray
        The run's data (views from 0: numba then vectorises the loops).
    frow, brow : ndarray
        Its flags and background, read only if ``has_flags`` / ``has_bg``.
    has_flags, has_bg : bool
    out : ndarray of float64
        As long as ``vals``, written.

    Returns
    -------
    int
        Number of usable values.
    """
    n = vals.shape[0]
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
    return good


@scalar_helper
def _gather_columns(plane, block, group, gathered, rows):
    """:func:`gather_block` of one group for lines along columns.

    Walks rows, ``nl`` columns at a time, so reads stay contiguous, in two
    passes per :data:`COLUMN_ROWS` rows: each row's ``nl`` values into a row
    of ``rows`` (a contiguous run: vectorised, NaN where unusable), then
    each line's column of ``rows`` appended to its segment with the NaNs
    squeezed out. (Value by value, with a cursor per line, the gather of a
    full frame's columns took twice as long as the rest of the line levels.)

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
    rows : ndarray of float64
        Scratch, at least one row of ``nl`` (:data:`COLUMN_ROWS` rows
        read per pass at most).

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
    start, stop, step = span
    last = first + nl
    for j in range(nl):
        cnt[j, g] = 0
    y = start
    while y < stop:
        n_rows = 0
        while y < stop and n_rows < rows.shape[0]:
            # Views from 0, see _gather_row.
            frow = fplane[y, first:last] if has_flags else fplane.reshape(-1)
            brow = bplane[y, first:last] if has_bg else dplane[y, 0:0]
            _usable_run(dplane[y, first:last], frow, brow, has_flags, has_bg, rows[n_rows, :nl])
            n_rows += 1
            y += step
        for j in range(nl):
            c = cnt[j, g]
            dst = seg[j, base + c :]
            k = 0
            for r in range(n_rows):
                v = rows[r, j]
                dst[np.uint64(k)] = v  # a usable value is never NaN
                k += v == v
            cnt[j, g] = c + k
