"""Source-mask arithmetic on one plane: box means, thresholds, dilation.

Kernels over whole planes are plain nogil loops over rows, a claimed part at
a time, run in threads by :func:`.threads.run_ranges` (they compile in a
fraction of the time of ``parallel=True`` ones); the box means over the small
maps of cells run serially (their running sums go down whole columns).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._jit import scalar_helper
from .select import _middle_ranks
from .threads import claim, run_ranges


def block_sums(values, usable, block, sums, counts):
    """Sums and counts of the usable values in ``block`` x ``block`` cells.

    Parameters
    ----------
    values : ndarray of float32 or float64
        ``(ny, nx)``; used only where ``usable``.
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
def _block_sums_range(claims, values, usable, block, sums, counts):
    """Items of :func:`block_sums`."""
    ny, nx = values.shape
    mx = sums.shape[1]
    start, stop = claim(claims)
    while start < stop:
        for cy in range(start, stop):
            if block == 4 and nx % 4 == 0 and 4 * cy + 4 <= ny:
                _cells_of_four_rows(values, usable, 4 * cy, sums[cy], counts[cy])
                continue
            for cx in range(mx):
                sums[cy, cx] = 0.0
                counts[cy, cx] = 0.0
            for y in range(cy * block, min(ny, (cy + 1) * block)):
                row, use = values[y], usable[y]
                # Cell by cell (no division per pixel), each cell's values in the
                # same order as a pass along the row.
                for cx in range(mx):
                    total, n = sums[cy, cx], counts[cy, cx]
                    for x in range(cx * block, min(nx, (cx + 1) * block)):
                        # A select, not a branch (a sum that starts at +0.0 is unchanged by +0.0):
                        # masks cut rows into runs the branch predictor misses.
                        keep = use[x] != 0
                        total += row[x] if keep else 0.0
                        n += 1.0 if keep else 0.0
                    sums[cy, cx], counts[cy, cx] = total, n
        start, stop = claim(claims)


@scalar_helper
def _four_more(total, row, use, x):
    """``total`` plus the usable ones of ``row[x:x + 4]``, in order (selects, not branches)."""
    total += np.float64(row[x]) if use[x] != 0 else 0.0
    total += np.float64(row[x + 1]) if use[x + 1] != 0 else 0.0
    total += np.float64(row[x + 2]) if use[x + 2] != 0 else 0.0
    total += np.float64(row[x + 3]) if use[x + 3] != 0 else 0.0
    return total


@scalar_helper
def _cells_of_four_rows(values, usable, y, sums, counts):
    """A whole row of 4x4 cells (the source search's) from rows ``y..y + 3``.

    :func:`_block_sums_range`'s loop written out: each cell's sum kept in a
    register over its 16 values, in the same order (row by row along the
    line); the generic loop takes the last, partial row of cells.
    """
    r0, r1, r2, r3 = values[y], values[y + 1], values[y + 2], values[y + 3]
    u0, u1, u2, u3 = usable[y], usable[y + 1], usable[y + 2], usable[y + 3]
    for cx in range(sums.shape[0]):
        x = 4 * cx
        total = _four_more(0.0, r0, u0, x)
        total = _four_more(total, r1, u1, x)
        total = _four_more(total, r2, u2, x)
        total = _four_more(total, r3, u3, x)
        n = 0
        for j in range(4):
            # (as integers: numpy adds its bools as an or, without numba)
            n += np.int64(u0[x + j] != 0) + np.int64(u1[x + j] != 0)
            n += np.int64(u2[x + j] != 0) + np.int64(u3[x + j] != 0)
        sums[cx] = total
        counts[cx] = np.float64(n)


@njit(cache=True, nogil=True)
def pool_cells(sums, counts, pooled_sums, pooled_counts):
    """Sums and counts on cells twice as large: each 2x2 group of cells added.

    Cells beyond an odd edge count as zero. Each pooled value is ``(a + b) +
    (c + d)``, the cells of its upper row then of its lower one: the order of
    numpy's ``reshape(my, 2, mx, 2).sum(axis=(1, 3))`` on a zero-padded map
    (which the source search used before), so the maps and the thresholds
    drawn from them are unchanged.

    Parameters
    ----------
    sums, counts : ndarray of float64
        ``(my, mx)``.
    pooled_sums, pooled_counts : ndarray of float64
        ``(ceil(my / 2), ceil(mx / 2))``, written.

    Returns
    -------
    None
    """
    my, mx = sums.shape
    for cy in range(pooled_sums.shape[0]):
        y0, y1 = 2 * cy, 2 * cy + 1
        for cx in range(pooled_sums.shape[1]):
            x0, x1 = 2 * cx, 2 * cx + 1
            a, b, c, d = sums[y0, x0], 0.0, 0.0, 0.0
            na, nb, nc, nd = counts[y0, x0], 0.0, 0.0, 0.0
            if x1 < mx:
                b, nb = sums[y0, x1], counts[y0, x1]
            if y1 < my:
                c, nc = sums[y1, x0], counts[y1, x0]
                if x1 < mx:
                    d, nd = sums[y1, x1], counts[y1, x1]
            pooled_sums[cy, cx] = (a + b) + (c + d)
            pooled_counts[cy, cx] = (na + nb) + (nc + nd)


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
    # Running windows along the rows, then down the columns. The row sums are
    # kept for the 2 half + 2 rows the column window reaches only (a ring), not
    # as two planes: fresh plane-sized scratch cost more in page faults than
    # the sums themselves.
    ring = 2 * half + 2
    row_sum = np.empty((ring, nx))
    row_cnt = np.empty((ring, nx))
    acc_s = np.zeros(nx)
    acc_c = np.zeros(nx)
    for y in range(min(half, ny)):
        _row_window(sums[y], counts[y], half, row_sum[y % ring], row_cnt[y % ring])
        for x in range(nx):
            acc_s[x] += row_sum[y % ring, x]
            acc_c[x] += row_cnt[y % ring, x]
    for y in range(ny):
        add, drop = y + half, y - half - 1
        if add < ny:
            _row_window(sums[add], counts[add], half, row_sum[add % ring], row_cnt[add % ring])
            _add_rows(acc_s, acc_c, row_sum[add % ring], row_cnt[add % ring])
        if drop >= 0:
            _subtract_rows(acc_s, acc_c, row_sum[drop % ring], row_cnt[drop % ring])
        out = mean[y]
        for x in range(nx):
            n = acc_c[x]
            out[x] = acc_s[x] / n if n >= min_count and n > 0.5 else np.nan


@scalar_helper
def _row_window(sums, counts, half, row_sum, row_cnt):
    """Sums and counts of the ``2 half + 1`` cells around each cell of one row."""
    nx = sums.shape[0]
    s, c = 0.0, 0.0
    for x in range(min(half, nx)):
        s += sums[x]
        c += counts[x]
    for x in range(nx):
        if x + half < nx:
            s += sums[x + half]
            c += counts[x + half]
        if x - half - 1 >= 0:
            s -= sums[x - half - 1]
            c -= counts[x - half - 1]
        row_sum[x] = s
        row_cnt[x] = c


@scalar_helper
def _add_rows(acc_s, acc_c, row_sum, row_cnt):
    """``acc += row`` for the sums and the counts."""
    for x in range(acc_s.shape[0]):
        acc_s[x] += row_sum[x]
        acc_c[x] += row_cnt[x]


@scalar_helper
def _subtract_rows(acc_s, acc_c, row_sum, row_cnt):
    """``acc -= row`` for the sums and the counts."""
    for x in range(acc_s.shape[0]):
        acc_s[x] -= row_sum[x]
        acc_c[x] -= row_cnt[x]


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
        cleared.

    Returns
    -------
    None
    """
    run_ranges(_mark_above_range, mean.shape[0], mean, threshold, block, out, min_items=8)


@njit(cache=True, nogil=True)
def _mark_above_range(claims, mean, threshold, block, out):
    """Rows of cells of :func:`mark_above` (each writes its own rows of pixels)."""
    spread = np.empty(out.shape[1], np.uint8)  # a row of cells, one value per pixel
    start, stop = claim(claims)
    while start < stop:
        _mark_cell_rows(start, stop, (mean, threshold, block), spread, out)
        start, stop = claim(claims)


@scalar_helper
def _mark_cell_rows(start, stop, cells, spread, out):
    """Rows of cells ``start .. stop - 1`` of :func:`mark_above`.

    Each row of cells is spread to one byte per pixel once, then set on its
    rows of pixels by a select that vectorises: a test and a loop per cell
    took 3x as long. (Sliced here, in a helper without reference counting:
    see :func:`.model._subtract_rows`.)
    """
    mean, threshold, block = cells
    ny, nx = out.shape
    for cy in range(start, stop):
        if _spread_marks(mean[cy], threshold, block, spread) == 0:
            continue
        for y in range(cy * block, min(ny, (cy + 1) * block)):
            orow = out[y]
            for x in range(nx):
                orow[x] = np.uint8(1) if spread[x] != 0 else orow[x]


@scalar_helper
def _spread_marks(mrow, threshold, block, spread):
    """``spread[x] = 1`` where the cell of pixel ``x`` is above ``threshold``, else 0.

    Returns the number of cells marked. Cells of 4 and 8 are written a word
    at a time (the byte repeated in every byte of it: any byte order).
    """
    nx, mx = spread.shape[0], mrow.shape[0]
    marked = np.int64(0)  # not a literal: see _kernels/__init__.py
    if block == 4 and nx == 4 * mx:
        words = spread.view(np.uint32)
        for cx in range(mx):
            above = mrow[cx] > threshold
            words[cx] = np.uint32(0x01010101) if above else np.uint32(0)
            marked += above
    elif block == 8 and nx == 8 * mx:
        words = spread.view(np.uint64)
        for cx in range(mx):
            above = mrow[cx] > threshold
            words[cx] = np.uint64(0x0101010101010101) if above else np.uint64(0)
            marked += above
    else:
        for cx in range(mx):
            above = mrow[cx] > threshold
            for x in range(cx * block, min(nx, (cx + 1) * block)):
                spread[x] = np.uint8(above)
            marked += above
        for x in range(min(nx, mx * block), nx):  # (no cell: never marked)
            spread[x] = 0
    return marked


def drop_spikes(values, usable, limits, along_rows, weights):
    """``weights = 0`` at spikes: bright pixels whose neighbours across the lines are sky.

    A hot pixel or a cosmic ray's hit is one pixel; a star's light, however
    undersampled its image, reaches the pixels beside its core (see
    :func:`bgdnoise.sources.detect`). The neighbours across the lines are
    looked at, not along them: on a plane binned along its lines those are
    4 pixels away, and a star's bin had none of its light there.

    Parameters
    ----------
    values : ndarray of float32 or float64
        ``(ny, nx)``.
    usable : ndarray of uint8
        ``(ny, nx)``: pixels with a value (the only ones looked at).
    limits : tuple of float
        ``(centre, threshold, ratio)``: a usable value above ``threshold``
        whose usable neighbours across the lines (of the 2) stand on average
        within ``ratio`` times its own height above ``centre`` of ``centre``
        is a spike (a neighbour far below the sky is a rough destriping's
        error beside a source, not the sky beside a spike).
    along_rows : bool
        Lines along rows (the neighbours are then the rows above and below).
    weights : ndarray of uint8
        ``(ny, nx)``: set to 0 at the spikes, left alone elsewhere.

    Returns
    -------
    None
    """
    run_ranges(_drop_spikes_range, values.shape[0], values, usable, limits, along_rows, weights)


@njit(cache=True, nogil=True)
def _drop_spikes_range(claims, values, usable, limits, along_rows, weights):
    """Rows of :func:`drop_spikes`."""
    start, stop = claim(claims)
    while start < stop:
        _drop_spike_rows(start, stop, values, usable, limits, along_rows, weights)
        start, stop = claim(claims)


@scalar_helper
def _drop_spike_rows(start, stop, values, usable, limits, along_rows, weights):
    """Rows ``start .. stop - 1`` of :func:`drop_spikes`."""
    centre, threshold, ratio = limits
    nx = values.shape[1]
    # Runs with no value above the threshold are skipped after a count that
    # vectorises; it compares in float32 (a threshold rounded down: it lets
    # through at least every value above the threshold).
    below = np.float32(threshold)
    if np.float64(below) > threshold:
        below = np.nextafter(below, np.float32(-np.inf))
    for y in range(start, stop):
        row = values[y]
        for first in range(0, nx, 64):
            run = row[first : min(first + 64, nx)]
            bright = 0
            for x in range(run.shape[0]):
                bright += run[x] > below
            if bright == 0:
                continue
            for x in range(first, first + run.shape[0]):
                if row[x] > threshold and usable[y, x] != 0:
                    height = np.float64(row[x]) - centre
                    if abs(_across_mean(values, usable, y, x, centre, along_rows)) < ratio * height:
                        weights[y, x] = 0


@scalar_helper
def _across_mean(values, usable, y, x, centre, along_rows):
    """Mean height above ``centre`` of the usable neighbours of ``(y, x)`` across the lines.

    ``inf`` when neither is usable: not a spike for want of neighbours.
    """
    ny, nx = values.shape
    total = 0.0
    count = 0
    for step in (-1, 1):
        yy, xx = (y + step, x) if along_rows else (y, x + step)
        if 0 <= yy < ny and 0 <= xx < nx and usable[yy, xx] != 0:
            total += np.float64(values[yy, xx]) - centre
            count += 1
    return total / count if count else np.inf


def mark_pixels_and_box3(values, usable, thresholds, min_count, out):
    """``out = 1`` where a usable value, or the mean of its 3x3 box's usable values, is high.

    The source search's two finest scales in one pass over the plane.

    Parameters
    ----------
    values : ndarray of float32 or float64
        ``(ny, nx)``.
    usable : ndarray of uint8
        ``(ny, nx)``.
    thresholds : tuple of float
        ``(pixel, box)``: a usable value above ``pixel`` is marked, and so is
        a pixel whose box mean is above ``box`` (``inf``: that scale marks
        nothing).
    min_count : int
        Fewest usable values a box needs.
    out : ndarray of uint8
        ``(ny, nx)``; set where marked, never cleared.

    Returns
    -------
    None
    """
    run_ranges(
        _mark_pixels_and_box3_range, values.shape[0], values, usable, thresholds, min_count, out
    )


@njit(cache=True, nogil=True)
def _mark_pixels_and_box3_range(claims, values, usable, thresholds, min_count, out):
    """Items of :func:`mark_pixels_and_box3`."""
    nx = values.shape[1]
    # This thread's sums and counts down each column of the 3 rows, and the
    # counts of each 3x3 box.
    scratch = (np.empty(nx), np.empty(nx, np.uint8), np.empty(nx, np.uint8))
    start, stop = claim(claims)
    while start < stop:
        _mark_rows(start, stop, (values, usable, out), (thresholds, min_count), scratch)
        start, stop = claim(claims)


@scalar_helper
def _mark_rows(start, stop, planes, settings, scratch):
    """Rows ``start .. stop - 1`` of :func:`mark_pixels_and_box3`.

    (Sliced here, in a helper without reference counting: see
    :func:`.model._subtract_rows`.) Counts are bytes (at most 9), summed in
    their own passes: in the float passes they were float64 converted from
    masks, 8 at a time.
    """
    values, usable, out = planes
    ny, nx = values.shape
    column_sum, column_cnt, box_cnt = scratch
    for y in range(start, stop):
        first, last = max(0, y - 1), min(ny, y + 2)
        if last - first == 3:
            # The three rows in one branch-free pass, each column's sum kept in
            # a register: row by row in memory took 1.5x as long. Adding 0.0 for
            # an unusable value changes no sum (it starts at +0.0, so it never
            # is -0.0): the same bits.
            v0, v1, v2 = values[first], values[first + 1], values[first + 2]
            u0, u1, u2 = usable[first], usable[first + 1], usable[first + 2]
            for x in range(nx):
                s = 0.0
                s += np.float64(v0[x]) if u0[x] != 0 else 0.0
                s += np.float64(v1[x]) if u1[x] != 0 else 0.0
                s += np.float64(v2[x]) if u2[x] != 0 else 0.0
                column_sum[x] = s
            for x in range(nx):
                column_cnt[x] = np.uint8(u0[x] != 0) + np.uint8(u1[x] != 0) + np.uint8(u2[x] != 0)
        else:  # the first and last rows
            for x in range(nx):
                column_sum[x] = 0.0
                column_cnt[x] = 0
            for yy in range(first, last):
                for x in range(nx):
                    if usable[yy, x] != 0:
                        column_sum[x] += values[yy, x]
                        column_cnt[x] += 1
        _mark_row(column_sum, column_cnt, box_cnt, values[y], usable[y], settings, out[y])


@scalar_helper
def _mark_row(column_sum, column_cnt, box_cnt, vrow, urow, settings, orow):
    """Mark one row from its column sums and counts (see :func:`_mark_rows`).

    Each box sums its middle column, then the left one, then the right one
    (as a loop with edge tests did); the interior runs over views shifted by
    one column, without those tests, and vectorises.
    """
    nx = vrow.shape[0]
    if nx < 3:
        for x in range(nx):
            total, n = column_sum[x], np.int64(column_cnt[x])
            if x > 0:
                total += column_sum[x - 1]
                n += column_cnt[x - 1]
            if x + 1 < nx:
                total += column_sum[x + 1]
                n += column_cnt[x + 1]
            if _marked(total, n, urow[x], vrow[x], settings):
                orow[x] = 1
        return
    mid = nx - 2
    left, right, cnt = column_cnt[:mid], column_cnt[2:], column_cnt[1 : nx - 1]
    inner = box_cnt[1 : nx - 1]
    for i in range(mid):
        inner[i] = left[i] + cnt[i] + right[i]
    box_cnt[0] = column_cnt[0] + column_cnt[1]
    box_cnt[nx - 1] = column_cnt[nx - 1] + column_cnt[nx - 2]
    if _marked(column_sum[0] + column_sum[1], box_cnt[0], urow[0], vrow[0], settings):
        orow[0] = 1
    last = nx - 1
    total = column_sum[last] + column_sum[last - 1]
    if _marked(total, box_cnt[last], urow[last], vrow[last], settings):
        orow[last] = 1
    sums, sums_left, sums_right = column_sum[1 : nx - 1], column_sum[:mid], column_sum[2:]
    values, use, marks = vrow[1 : nx - 1], urow[1 : nx - 1], orow[1 : nx - 1]
    for i in range(mid):
        total = sums[i] + sums_left[i] + sums_right[i]
        # A select, not a branch: the store of every pixel vectorises.
        marks[i] = 1 if _marked(total, inner[i], use[i], values[i], settings) else marks[i]


@scalar_helper
def _marked(total, n, use, value, settings):
    """Whether a pixel is marked, from its 3x3 box's sum and count (see :func:`_mark_row`)."""
    (pixel_threshold, box_threshold), min_count = settings
    count = np.float64(n)
    box = (count >= min_count) & (total > box_threshold * count)
    return box | ((use != 0) & (value > pixel_threshold))


def box3_sample(values, usable, step, out):
    """3x3 box means on a grid of every ``step``-th pixel (NaN without values).

    Parameters
    ----------
    values : ndarray of float32 or float64
    usable : ndarray of uint8
    step : int
    out : ndarray of float64
        ``(ceil(ny / step), ceil(nx / step))``, written.

    Returns
    -------
    None
    """
    run_ranges(_box3_sample_range, out.shape[0], values, usable, step, out)


@njit(cache=True, nogil=True)
def _box3_sample_range(claims, values, usable, step, out):
    """Rows of the grid of :func:`box3_sample`."""
    ny, nx = values.shape
    mx = out.shape[1]
    start, stop = claim(claims)
    while start < stop:
        for cy in range(start, stop):
            y = cy * step
            for cx in range(mx):
                x = cx * step
                total, n = 0.0, 0
                for yy in range(max(0, y - 1), min(ny, y + 2)):
                    for xx in range(max(0, x - 1), min(nx, x + 2)):
                        if usable[yy, xx] != 0:
                            total += np.float64(values[yy, xx])  # (float64 without numba too)
                            n += 1
                out[cy, cx] = total / n if n >= 2 else np.nan
        start, stop = claim(claims)


def dilate(marks, radius, out):
    """Square dilation: ``out`` is 1 within ``radius`` pixels (Chebyshev) of a mark.

    Parameters
    ----------
    marks : ndarray of uint8
        ``(ny, nx)``.
    radius : int
        Half-width of the square.
    out : ndarray of uint8
        ``(ny, nx)``, written; may be ``marks`` (read in full by the first
        pass, into a scratch plane, before the second writes ``out``).

    Returns
    -------
    None
    """
    ny, nx = marks.shape
    along = np.empty((ny, nx), dtype=np.uint8)
    run_ranges(_dilate_rows, ny, marks, radius, along)
    run_ranges(_dilate_columns, ny, along, radius, out)


# The dilations OR shifted copies of whole rows: 2 radius + 1 passes that
# vectorise, where a running "last mark seen" per pixel cannot (the mask's
# radius is a few pixels). Each pass writes one direction only: a loop that
# ORs into both ``x`` and ``x + shift`` carries a dependency from one pixel
# to the next and does not vectorise (it took 9x the column pass).


@njit(cache=True, nogil=True)
def _dilate_rows(claims, marks, radius, along):
    """Rows: 1 within ``radius`` of a mark along the row."""
    nx = marks.shape[1]
    reach = min(radius, nx)
    marked = np.empty(nx, dtype=np.uint8)  # the row's marks as 0 / 1
    start, stop = claim(claims)
    while start < stop:
        for y in range(start, stop):
            row = marks[y]
            out_row = along[y]
            for x in range(nx):
                marked[x] = out_row[x] = np.uint8(row[x] != 0)
            for shift in range(1, reach + 1):
                # Views indexed from 0, not x + shift: see _kernels/__init__.py.
                _or_into(out_row[: nx - shift], marked[shift:])
                _or_into(out_row[shift:], marked[: nx - shift])
        start, stop = claim(claims)


@scalar_helper
def _or_into(dst, src):
    """``dst |= src`` elementwise (same length)."""
    for x in range(dst.shape[0]):
        dst[x] |= src[x]


@njit(cache=True, nogil=True)
def _dilate_columns(claims, along, radius, out):
    """Rows of the result: 1 within ``radius`` rows of a mark in ``along``."""
    ny, nx = along.shape
    start, stop = claim(claims)
    while start < stop:
        for y in range(start, stop):
            out_row = out[y]
            for x in range(nx):
                out_row[x] = 0
            for source in range(max(0, y - radius), min(ny, y + radius + 1)):
                _or_into(out_row, along[source])
        start, stop = claim(claims)


@njit(cache=True, nogil=True)
def median_and_mad(values, usable, step, scratch):
    """Median and median absolute deviation of a sample of a map's finite values.

    The sample is every ``step``-th row and column of ``values`` where
    ``usable`` is non-zero (``usable`` of shape (0, 0): everywhere). Both
    medians are numpy's, to the bit: the middle value, or the mean of the two
    middle ones in the values' own precision, and the deviations are taken
    in that precision too (what ``np.median(np.abs(sample - median))`` gives
    on a float32 sample).

    Parameters
    ----------
    values : ndarray of float32 or float64
        ``(ny, nx)``.
    usable : ndarray of uint8
        ``(ny, nx)`` or ``(0, 0)``.
    step : int
        Sampling step along both axes.
    scratch : ndarray
        1D, of ``values``' dtype, at least twice as long as the sample.

    Returns
    -------
    n : int
        Finite usable values sampled.
    median, mad : float
        Their median and the median of their absolute deviations from it
        (0.0 when ``n == 0``).
    """
    ny, nx = values.shape
    masked = usable.shape[0] > 0
    half = scratch.shape[0] // 2
    sample, window = scratch[:half], scratch[half:]
    n = np.int64(0)  # not a literal: see _kernels/__init__.py
    for y in range(0, ny, step):
        row = values[y]
        for x in range(0, nx, step):
            v = row[x]
            if (v - v == 0.0) and (not masked or usable[y, x] != 0):
                sample[n] = v
                n += 1
    if n == 0:
        return n, 0.0, 0.0
    centre = _sample_median(sample, n, window)
    for i in range(n):
        sample[i] = abs(sample[i] - centre)
    return n, float(centre), float(_sample_median(sample, n, window))


@scalar_helper
def _sample_median(buf, n, window):
    """``np.median`` of ``buf[:n]`` (``n >= 1``), in ``buf``'s precision."""
    k = n >> 1
    lower, upper = _middle_ranks(buf, n, k - 1 + (n & 1), k, window)
    # numpy's mean of the middle one or two: their sum (from +0, so never -0)
    # rounded to the dtype, then halved.
    zero = np.float32(0.0)
    if n & 1:
        return upper + zero
    return ((lower + upper) + zero) * np.float32(0.5)


def line_counts(usable, mask, along_rows, total, masked):
    """Per line, the usable pixels and those of them the mask covers.

    Parameters
    ----------
    usable, mask : ndarray of uint8
        ``(ny, nx)``; non-zero where usable, where masked.
    along_rows : bool
        Lines along rows (else columns).
    total, masked : ndarray of int64
        ``(n_lines,)``, written.

    Returns
    -------
    None
    """
    ny, nx = usable.shape
    if along_rows:
        run_ranges(_row_counts_range, ny, usable, mask, total, masked)
    else:
        run_ranges(
            _column_counts_range, -(-nx // _COLUMNS), usable, mask, total, masked, min_items=4
        )


# Columns per work item of the column counts: a run of each row read at once.
_COLUMNS = 64


@njit(cache=True, nogil=True)
def _row_counts_range(claims, usable, mask, total, masked):
    """Rows of :func:`line_counts` along rows."""
    start, stop = claim(claims)
    while start < stop:
        for y in range(start, stop):
            urow, mrow = usable[y], mask[y]
            n = np.int64(0)  # not a literal: see _kernels/__init__.py
            m = np.int64(0)  # not a literal: see _kernels/__init__.py
            for x in range(urow.shape[0]):
                u = urow[x] != 0
                n += u
                m += u & (mrow[x] != 0)
            total[y], masked[y] = n, m
        start, stop = claim(claims)


@njit(cache=True, nogil=True)
def _column_counts_range(claims, usable, mask, total, masked):
    """Blocks of ``_COLUMNS`` columns of :func:`line_counts` along columns."""
    nx = usable.shape[1]
    start, stop = claim(claims)
    while start < stop:
        _count_columns(usable, mask, start * _COLUMNS, min(nx, stop * _COLUMNS), total, masked)
        start, stop = claim(claims)


@scalar_helper
def _count_columns(usable, mask, x0, x1, total, masked):
    """Columns ``x0 .. x1 - 1`` of :func:`_column_counts_range`.

    (Sliced here, in a helper without reference counting: in the kernel the
    four slices of every row took four times as long as the counting.)
    """
    t, m = total[x0:x1], masked[x0:x1]
    for i in range(t.shape[0]):
        t[i] = 0
        m[i] = 0
    for y in range(usable.shape[0]):
        urow, mrow = usable[y, x0:x1], mask[y, x0:x1]
        for i in range(urow.shape[0]):
            u = urow[i] != 0
            t[i] += u
            m[i] += u & (mrow[i] != 0)


def repeat_along_lines(mask, along_rows, factor, out):
    """Each value of a mask binned along its lines repeated ``factor`` times along them.

    Parameters
    ----------
    mask : ndarray of uint8
        ``(ny, nx // factor)`` for lines along rows, ``(ny // factor, nx)``
        along columns.
    along_rows : bool
        Lines along rows (else columns).
    factor : int
        Pixels per bin; the line length must be a multiple of it (not
        checked: :func:`bgdnoise.sources._bin_factor` guarantees it).
    out : ndarray of uint8
        ``(ny, nx)``, written.

    Returns
    -------
    None
    """
    run_ranges(_repeat_range, out.shape[0], mask, along_rows, factor, out)


@njit(cache=True, nogil=True)
def _repeat_range(claims, mask, along_rows, factor, out):
    """Rows of :func:`repeat_along_lines`."""
    start, stop = claim(claims)
    while start < stop:
        for y in range(start, stop):
            orow = out[y]
            if along_rows and factor == 4:
                # One 4-byte store per value: a byte at a time took 30x as long.
                # (The byte repeated in every byte of the word: any byte order.)
                wide = orow.view(np.uint32)
                mrow = mask[y]
                for b in range(mrow.shape[0]):
                    wide[b] = np.uint32(mrow[b]) * np.uint32(0x01010101)
            elif along_rows:
                mrow = mask[y]
                for b in range(mrow.shape[0]):  # (no division per pixel)
                    value = mrow[b]
                    for x in range(b * factor, (b + 1) * factor):
                        orow[x] = value
            else:
                mrow = mask[y // factor]
                for x in range(orow.shape[0]):
                    orow[x] = mrow[x]
        start, stop = claim(claims)


def mark_distance(marks, cap, out):
    """Chebyshev distance of every pixel to the nearest mark, at most ``cap``.

    Built like :func:`dilate` (a pass along the rows, then one across
    them), which stays a pass of ORs: ``out <= radius`` gives the same
    pixels at 1.5-2 times the time.

    Parameters
    ----------
    marks : ndarray of uint8
        ``(ny, nx)``; non-zero on a mark.
    cap : int
        Largest distance written (``cap``: that far or farther, or no mark);
        at most 255.
    out : ndarray of uint8
        ``(ny, nx)``, written: 0 on a mark, ``d`` where the nearest mark is
        ``d`` pixels away along a row, a column or a diagonal (the square
        dilation of radius ``d`` is ``out <= d``).

    Returns
    -------
    None
    """
    ny, nx = marks.shape
    along = np.empty((ny, nx), dtype=np.uint8)
    run_ranges(_distance_rows, ny, marks, cap, along)
    run_ranges(_distance_columns, ny, along, cap, out)


@njit(cache=True, nogil=True)
def _distance_rows(claims, marks, cap, along):
    """Rows: the distance to the nearest mark along the row, at most ``cap``."""
    nx = marks.shape[1]
    reach = min(cap - 1, nx)
    marked = np.empty(nx, dtype=np.uint8)  # the row's marks as 0 / 1
    start, stop = claim(claims)
    while start < stop:
        _distance_along(start, stop, marks, cap, reach, marked, along)
        start, stop = claim(claims)


@scalar_helper
def _distance_along(start, stop, marks, cap, reach, marked, along):
    """Rows ``start .. stop - 1`` of :func:`_distance_rows`.

    (Sliced here, in a helper without reference counting: see
    :func:`.model._subtract_rows`.)
    """
    nx = marks.shape[1]
    for y in range(start, stop):
        row = marks[y]
        out_row = along[y]
        for x in range(nx):
            marked[x] = np.uint8(row[x] != 0)
            out_row[x] = np.uint8(0) if row[x] != 0 else np.uint8(cap)
        # Nearest first is not needed: each shift keeps the smaller distance.
        for shift in range(1, reach + 1):
            _near_into(out_row[: nx - shift], marked[shift:], np.uint8(shift))
            _near_into(out_row[shift:], marked[: nx - shift], np.uint8(shift))


@scalar_helper
def _near_into(dst, src, distance):
    """``dst = min(dst, distance)`` where ``src`` is marked (same length)."""
    for x in range(dst.shape[0]):
        closer = src[x] != 0 and distance < dst[x]
        dst[x] = distance if closer else dst[x]


@njit(cache=True, nogil=True)
def _distance_columns(claims, along, cap, out):
    """Rows of the result: the smallest ``max(|dy|, along[y + dy])``, at most ``cap``."""
    start, stop = claim(claims)
    while start < stop:
        _distance_across(start, stop, along, cap, out)
        start, stop = claim(claims)


@scalar_helper
def _distance_across(start, stop, along, cap, out):
    """Rows ``start .. stop - 1`` of :func:`_distance_columns`.

    (Sliced here, in a helper without reference counting: see
    :func:`.model._subtract_rows`.)
    """
    ny, nx = along.shape
    for y in range(start, stop):
        out_row = out[y]
        for x in range(nx):
            out_row[x] = along[y, x]
        for dy in range(1, cap):
            step = np.uint8(dy)
            if y - dy >= 0:
                _nearer_row(out_row, along[y - dy], step)
            if y + dy < ny:
                _nearer_row(out_row, along[y + dy], step)


@scalar_helper
def _nearer_row(dst, src, step):
    """``dst = min(dst, max(step, src))`` elementwise: a row ``step`` rows away."""
    for x in range(dst.shape[0]):
        via = src[x] if src[x] > step else step
        dst[x] = via if via < dst[x] else dst[x]


def ring_sums(values, usable, distance, along_rows, band_edges, centre, sums, counts):
    """Per line and band, the usable values at each distance from the marks.

    Parameters
    ----------
    values : ndarray of float32 or float64
        ``(ny, nx)``; read where ``usable``.
    usable : ndarray of uint8
        ``(ny, nx)``, non-zero where a value counts.
    distance : ndarray of uint8
        ``(ny, nx)``: :func:`mark_distance`'s, at most ``cap``.
    along_rows : bool
        Lines along rows (else columns).
    band_edges : ndarray of int64
        Edges of the bands along the line, from 0 to its length.
    centre : float
        Subtracted from every value summed.
    sums, counts : ndarray of float64
        ``(n_lines, n_bands, cap + 1)``, written: the sum of ``value -
        centre`` and the number of the usable pixels at distance ``d`` in
        ``[..., d]``; at ``cap`` (that far or farther) the number only, the
        sum 0.

    Returns
    -------
    None
    """
    lines = (values, usable, distance, band_edges, centre)
    if along_rows:
        run_ranges(_ring_rows_range, sums.shape[0], lines, sums, counts)
    else:
        run_ranges(_ring_columns_range, -(-sums.shape[0] // _COLUMNS), lines, sums, counts,
                   min_items=4)  # fmt: skip


@njit(cache=True, nogil=True)
def _ring_rows_range(claims, lines, sums, counts):
    """Rows of :func:`ring_sums` along rows."""
    cap = sums.shape[2] - 1
    # This thread's running sums of the distances below cap.
    total, number = np.empty(cap), np.empty(cap)
    start, stop = claim(claims)
    while start < stop:
        _ring_rows(start, stop, lines, sums, counts, total, number)
        start, stop = claim(claims)


@scalar_helper
def _ring_rows(start, stop, lines, sums, counts, total, number):
    """Rows ``start .. stop - 1`` of :func:`ring_sums` along rows.

    (Sliced here, in a helper without reference counting: see
    :func:`.model._subtract_rows`.)
    """
    values, usable, distance, band_edges, centre = lines
    n_bands = sums.shape[1]
    for y in range(start, stop):
        for b in range(n_bands):
            row = values[y, band_edges[b] : band_edges[b + 1]]
            use = usable[y, band_edges[b] : band_edges[b + 1]]
            far = distance[y, band_edges[b] : band_edges[b + 1]]
            _near_sums(row, use, far, centre, total, number)
            _store_rings(total, number, _usable_count(use), sums[y, b], counts[y, b])


@scalar_helper
def _near_sums(row, use, far, centre, total, number):
    """Sums and counts of the usable values of one run at each distance below ``cap``."""
    cap = total.shape[0]
    for d in range(cap):
        total[d] = 0.0
        number[d] = 0.0
    # A branch: most pixels of a field lie farther than cap from any mark, and
    # adding each into its distance's sum stores to memory on every pixel.
    for x in range(row.shape[0]):
        d = far[x]
        if d < cap and use[x] != 0:
            total[d] += np.float64(row[x]) - centre  # (in float64 also without numba)
            number[d] += 1.0


@scalar_helper
def _usable_count(use):
    """Non-zero values of a uint8 run (a count that vectorises)."""
    n = np.int64(0)  # not a literal: see _kernels/__init__.py
    for x in range(use.shape[0]):
        n += use[x] != 0
    return n


@scalar_helper
def _store_rings(total, number, usable_count, sums, counts):
    """One line band's results: the near distances, then the rest (counted, not summed)."""
    cap = total.shape[0]
    near = 0.0
    for d in range(cap):
        sums[d] = total[d]
        counts[d] = number[d]
        near += number[d]
    sums[cap] = 0.0
    counts[cap] = usable_count - near


@njit(cache=True, nogil=True)
def _ring_columns_range(claims, lines, sums, counts):
    """Blocks of ``_COLUMNS`` columns of :func:`ring_sums` along columns."""
    cap = sums.shape[2] - 1
    # This thread's running sums, one row per column of the block (each column's
    # distances contiguous, as _store_rings reads them).
    total, number = np.empty((_COLUMNS, cap)), np.empty((_COLUMNS, cap))
    found = np.empty(_COLUMNS, np.int64)
    start, stop = claim(claims)
    while start < stop:
        _ring_column_blocks(start, stop, lines, sums, counts, (total, number, found))
        start, stop = claim(claims)


@scalar_helper
def _ring_column_blocks(start, stop, lines, sums, counts, scratch):
    """Blocks ``start .. stop - 1`` of :func:`_ring_columns_range`.

    (Sliced here, in a helper without reference counting: see
    :func:`.model._subtract_rows`.)
    """
    values, usable, distance, band_edges, centre = lines
    total, number, found = scratch
    n_lines, n_bands, cap = sums.shape[0], sums.shape[1], sums.shape[2] - 1
    for block in range(start, stop):
        x0, x1 = block * _COLUMNS, min(n_lines, (block + 1) * _COLUMNS)
        width = x1 - x0
        for b in range(n_bands):
            for i in range(width):
                found[i] = 0
                for d in range(cap):
                    total[i, d] = 0.0
                    number[i, d] = 0.0
            for y in range(band_edges[b], band_edges[b + 1]):
                row, use, far = values[y, x0:x1], usable[y, x0:x1], distance[y, x0:x1]
                for i in range(width):
                    found[i] += use[i] != 0
                    d = far[i]
                    if d < cap and use[i] != 0:
                        total[i, d] += np.float64(row[i]) - centre
                        number[i, d] += 1.0
            for i in range(width):
                _store_rings(total[i], number[i], found[i], sums[x0 + i, b], counts[x0 + i, b])
