"""A smooth background surface fitted jointly with free line levels.

The surface is bilinear on a grid of nodes ``h`` pixels apart (node ``(j, i)``
at line ``j h``, position ``i h`` along the line; node index ``j * n_x + i``).
Every (line, band) has a free level; eliminating it (its least-squares value
is the band mean of data minus surface) leaves normal equations in the nodes
alone, built from per-line sums in one pass over the pixels. Penalties on
second differences keep the surface smooth, and soft pins at sky nodes fix
what the data cannot: a function of the line alone (a stripe). The system is
banded (node rows couple to their neighbours only) and solved by a banded
Cholesky factorisation.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._jit import scalar_helper
from .threads import claim, run_ranges


@scalar_helper
def _cell(t, n_nodes):
    """Node below ``t`` (in node units) and the weight of the one above."""
    j = int(t)
    if j > n_nodes - 2:
        j = n_nodes - 2
    return j, t - j


def line_sums(plane, usable, along_rows, band_edges, grid, sums):
    """Per line: the sums the normal equations need.

    Parameters
    ----------
    plane : ndarray of float64
        ``(ny, nx)`` data.
    usable : ndarray of uint8
        ``(ny, nx)``, non-zero where a pixel enters the fit.
    along_rows : bool
        Lines are rows (else columns).
    band_edges : ndarray of int64
        Band limits along the line.
    grid : tuple
        ``(h, n_x)``: node spacing and nodes along the line.
    sums : tuple of ndarray
        Written, per line: ``diag (n_lines, n_x)`` and ``off (n_lines, n_x)``
        (sums of w_i w_i and w_i w_{i+1}), per band ``weight (n_lines,
        n_bands, n_x)`` and ``data (n_lines, n_bands, n_x)`` (sums of w_i
        and w_i d), ``count`` and ``total (n_lines, n_bands)``.

    Returns
    -------
    None
    """
    if not along_rows:  # blocks of columns, read a row at a time
        n_blocks = -(-plane.shape[1] // _COLUMN_BLOCK)
        run_ranges(_line_sums_columns_range, n_blocks, plane, usable, band_edges, grid, sums,
                   min_items=1)  # fmt: skip
        return
    run_ranges(_line_sums_range, plane.shape[0], plane, usable, band_edges, grid, sums)


# Lines along columns summed side by side: the columns of one cache line of a
# float32 plane.
_COLUMN_BLOCK = 16


@njit(cache=True, nogil=True)
def _line_sums_columns_range(claims, plane, usable, band_edges, grid, sums):
    """Blocks of :data:`_COLUMN_BLOCK` columns of :func:`line_sums` (lines along columns).

    Down a column every pixel is a row, a page, from the next, and each read
    waited for memory (3x the time of lines along rows); here a block of
    columns is read a row at a time (:func:`_column_block_sums`).
    """
    h, n_x = grid
    n_bands = band_edges.shape[0] - 1
    cells = _cell_runs(band_edges[n_bands], h, n_x)
    n_lines = plane.shape[1]
    # This thread's block of columns, a cell's run of rows at a time, laid
    # out as lines (its values and usable marks).
    ends = cells[3]
    longest = ends[0]  # (short rows: a few cache lines, not pages, apart)
    for i in range(1, ends.shape[0]):
        longest = max(longest, ends[i] - ends[i - 1])
    runs = (np.empty((_COLUMN_BLOCK, longest)), np.empty((_COLUMN_BLOCK, longest), np.uint8))
    start, stop = claim(claims)
    while start < stop:
        for b in range(start, stop):
            first = b * _COLUMN_BLOCK
            last = min(first + _COLUMN_BLOCK, n_lines)
            _column_block_sums(plane, usable, band_edges, cells, sums, (first, last), runs)
        start, stop = claim(claims)


@scalar_helper
def _column_block_sums(plane, usable, band_edges, cells, sums, block, runs):
    """The sums of :func:`line_sums` for the columns ``range(*block)``.

    Each cell's run of rows within a band is read a row at a time (the
    block's columns side by side, contiguous) into ``runs``, one line per
    column, and each column's run is then summed as a row's is
    (:func:`_run_sums`): the same sums, bit for bit, as the rows of the
    transposed plane.
    """
    cell, upper, squares, ends = cells
    first, last = block
    nb = last - first
    values, use = runs
    for x in range(first, last):
        _clear_line(sums, x)
    for k in range(band_edges.shape[0] - 1):
        y, band_stop = band_edges[k], band_edges[k + 1]
        while y < band_stop:
            i = cell[y]
            run_stop = min(ends[i], band_stop)
            length = run_stop - y
            for t in range(length):
                row_values, row_use = plane[y + t, first:last], usable[y + t, first:last]
                for j in range(nb):
                    values[j, t] = row_values[j]
                    use[j, t] = row_use[j]
            weights, weight_squares = upper[y:run_stop], squares[y:run_stop]
            for j in range(nb):
                run = _run_sums(values[j, :length], use[j, :length], weights, weight_squares)
                _add_run(sums, first + j, k, i, run)
            y = run_stop


@njit(cache=True, nogil=True)
def _line_sums_range(claims, plane, usable, band_edges, grid, sums):
    """Lines of :func:`line_sums` along rows."""
    h, n_x = grid
    n_bands = band_edges.shape[0] - 1
    cells = _cell_runs(band_edges[n_bands], h, n_x)
    start, stop = claim(claims)
    while start < stop:
        for line in range(start, stop):
            _row_sums(plane[line], usable[line], band_edges, cells, sums, line)
        start, stop = claim(claims)


@scalar_helper
def _row_sums(values, use, band_edges, cells, sums, line):
    """The sums of :func:`line_sums` for one line along a row, a cell's run at a time.

    (The runs are sliced here, in a helper without reference counting: see
    :func:`_interpolate_row`.)
    """
    cell, upper, squares, ends = cells
    _clear_line(sums, line)
    for k in range(band_edges.shape[0] - 1):
        t, band_stop = band_edges[k], band_edges[k + 1]
        while t < band_stop:
            i = cell[t]
            run_stop = min(ends[i], band_stop)
            run = _run_sums(
                values[t:run_stop], use[t:run_stop], upper[t:run_stop], squares[t:run_stop]
            )
            _add_run(sums, line, k, i, run)
            t = run_stop


@scalar_helper
def _clear_line(sums, line):
    """Set every sum of ``line`` (all its bands) to 0 before its runs are added."""
    diag, off, weight, data, count, total = sums
    for i in range(diag.shape[1]):
        diag[line, i] = 0.0
        off[line, i] = 0.0
    for k in range(count.shape[1]):
        for i in range(diag.shape[1]):
            weight[line, k, i] = 0.0
            data[line, k, i] = 0.0
        count[line, k] = 0.0
        total[line, k] = 0.0


@scalar_helper
def _run_sums(values, use, upper, squares):
    """The five sums of one cell's run of pixels: count, and sums of g, g**2, v, g v.

    Four partial sums each, over every fourth pixel: four independent chains
    of additions keep the adder busy where one chain waits for each sum
    (the order of the additions is then not the pixels': the sums differ
    from a sequential sum in their last bits).
    """
    zero = (0.0, 0.0, 0.0, 0.0, 0.0)
    s0, s1, s2, s3 = zero, zero, zero, zero
    n = values.shape[0]
    in_fours = n - n % 4
    for t in range(0, in_fours, 4):
        s0 = _add_pixel(s0, values[t], use[t], upper[t], squares[t])
        s1 = _add_pixel(s1, values[t + 1], use[t + 1], upper[t + 1], squares[t + 1])
        s2 = _add_pixel(s2, values[t + 2], use[t + 2], upper[t + 2], squares[t + 2])
        s3 = _add_pixel(s3, values[t + 3], use[t + 3], upper[t + 3], squares[t + 3])
    for t in range(in_fours, n):
        s0 = _add_pixel(s0, values[t], use[t], upper[t], squares[t])
    return (
        (s0[0] + s1[0]) + (s2[0] + s3[0]), (s0[1] + s1[1]) + (s2[1] + s3[1]),
        (s0[2] + s1[2]) + (s2[2] + s3[2]), (s0[3] + s1[3]) + (s2[3] + s3[3]),
        (s0[4] + s1[4]) + (s2[4] + s3[4]),
    )  # fmt: skip


@scalar_helper
def _add_pixel(run, value, use, g, gg):
    """``run`` (see :func:`_run_sums`) with one pixel added; 0 if not usable (NaN, inf stay out)."""
    ok = use != 0
    v = np.float64(value) if ok else 0.0
    one = 1.0 if ok else 0.0
    return run[0] + one, run[1] + one * g, run[2] + one * gg, run[3] + v, run[4] + g * v


@scalar_helper
def _add_run(sums, line, k, i, run):
    """Add one cell's run sums (``n``, and sums of ``g``, ``g**2``, ``v``, ``g v``) to a line's.

    The node below has weight ``1 - g``, the one above ``g``: the run adds
    ``sum (1 - g)**2 = n - 2 sum g + sum g**2`` to the node below's diagonal,
    ``sum g**2`` to the one above's, ``sum (1 - g) g`` to their coupling, and
    likewise the weights and weighted values (exact for the counts; the
    others to the last bits of float64).
    """
    diag, off, weight, data, count, total = sums
    n, g1, g2, v1, gv = run
    diag[line, i] += n - 2.0 * g1 + g2
    diag[line, i + 1] += g2
    off[line, i] += g1 - g2
    weight[line, k, i] += n - g1
    weight[line, k, i + 1] += g1
    data[line, k, i] += v1 - gv
    data[line, k, i + 1] += gv
    count[line, k] += n
    total[line, k] += v1


@scalar_helper
def _add(matrix, m1, m2, value):
    """Add ``value`` to the symmetric banded ``matrix`` at ``(m1, m2)``, upper half."""
    if m2 >= m1:
        matrix[m2 - m1, m1] += value


def normal_equations(sums, grid, band_nodes, matrix, rhs):
    """Assemble the banded normal matrix and right-hand side over the nodes.

    Parameters
    ----------
    sums : tuple of ndarray
        From :func:`line_sums`.
    grid : tuple
        ``(h, n_y, n_x)``.
    band_nodes : ndarray of int64
        ``(n_bands, 2)``: first and past-last node column each band touches.
    matrix : ndarray of float64
        ``(bandwidth + 1, n_nodes)``, zeroed by the caller: ``matrix[d, m]``
        holds element ``(m, m + d)``.
    rhs : ndarray of float64
        ``(n_nodes,)``, zeroed by the caller.

    Returns
    -------
    None

    Notes
    -----
    The node rows are shared among threads: a line's weights reach the
    matrix columns and right-hand side of two node rows, ``j`` (``a = 0``)
    and ``j + 1`` (``a = 1``), and for each part of the node rows it claims
    a thread adds, line by line, what falls in those rows. Every entry gets
    the same additions in the same order as in one loop over the lines: the
    same bits.
    """
    run_ranges(_normal_equations_range, grid[1], sums, grid, band_nodes, matrix, rhs, min_items=1)


@njit(cache=True, nogil=True)
def _normal_equations_range(claims, sums, grid, band_nodes, matrix, rhs):
    """Node rows of :func:`normal_equations`."""
    diag, off, weight, data, count, total = sums
    h, n_y, n_x = grid
    n_lines, n_bands = count.shape
    start, stop = claim(claims)
    while start < stop:
        # Only the lines whose cell touches node rows start .. stop - 1 (the
        # cells grow with the line): a loop over every line for each part
        # cost more than the part's sums on two threads.
        for line in range(max(0, int((start - 1) * h) - 1), n_lines):
            j, f = _cell(line / h, n_y)
            if j >= stop:
                break
            if j + 1 < start:
                continue
            wy = (1.0 - f, f)
            for a in range(2):
                if not start <= j + a < stop:  # another thread's node row
                    continue
                ra = (j + a) * n_x
                for b in range(a, 2):
                    # (a, b) = (1, 0) would only add below the diagonal, which the
                    # upper band storage skips: nothing to compute.
                    rb = (j + b) * n_x
                    w = wy[a] * wy[b]
                    for i in range(n_x):
                        _add(matrix, ra + i, rb + i, w * diag[line, i])
                        if i + 1 < n_x:
                            _add(matrix, ra + i, rb + i + 1, w * off[line, i])
                            _add(matrix, ra + i + 1, rb + i, w * off[line, i])
                    # The band's free level removes the band mean (rank one).
                    for k in range(n_bands):
                        if count[line, k] == 0.0:
                            continue
                        inv = w / count[line, k]
                        for i in range(band_nodes[k, 0], band_nodes[k, 1]):
                            wi = weight[line, k, i] * inv
                            if wi == 0.0:
                                continue
                            # Within one node row only i2 >= i is stored (upper band).
                            first = i if a == b else band_nodes[k, 0]
                            for i2 in range(first, band_nodes[k, 1]):
                                _add(matrix, ra + i, rb + i2, -wi * weight[line, k, i2])
                for k in range(n_bands):
                    if count[line, k] == 0.0:
                        continue
                    mean = total[line, k] / count[line, k]
                    for i in range(band_nodes[k, 0], band_nodes[k, 1]):
                        rhs[ra + i] += wy[a] * (data[line, k, i] - weight[line, k, i] * mean)
        start, stop = claim(claims)


@njit(cache=True, nogil=True)
def add_row_pins(matrix, on, per_pair):
    """Add ``per_pair[j]`` for every pair of sky nodes of each node row ``j``.

    Parameters
    ----------
    matrix : ndarray of float64
        Banded normal matrix (``matrix[d, k]`` is element ``(k, k + d)``),
        updated.
    on : ndarray of float64
        ``(n_y, n_x)``: 1.0 on sky nodes, else 0.0.
    per_pair : ndarray of float64
        ``(n_y,)``.

    Returns
    -------
    None
    """
    n_y, n_x = on.shape
    for d in range(n_x):
        for j in range(n_y):
            for i in range(n_x - d):
                matrix[d, j * n_x + i] += per_pair[j] * on[j, i] * on[j, i + d]


@njit(cache=True)
def add_penalties(matrix, grid, smooth, pins):
    """Second-difference penalties along both grid axes and the pins.

    Parameters
    ----------
    matrix : ndarray of float64
        Banded normal matrix, updated.
    grid : tuple
        ``(n_y, n_x)``.
    smooth : ndarray of float64
        ``(n_nodes,)`` weight of each squared second difference, by its
        middle node.
    pins : ndarray of float64
        ``(n_nodes,)`` weight pulling each node toward the target the caller
        puts in the right-hand side (plus a tiny ridge).

    Returns
    -------
    None
    """
    n_y, n_x = grid
    coefficients = (1.0, -2.0, 1.0)
    for m in range(n_y * n_x):
        matrix[0, m] += pins[m]
    for j in range(n_y):
        for i in range(n_x):
            m = j * n_x + i
            if 0 < j < n_y - 1:
                for p in range(3):
                    for q in range(3):
                        value = smooth[m] * coefficients[p] * coefficients[q]
                        _add(matrix, m + (p - 1) * n_x, m + (q - 1) * n_x, value)
            if 0 < i < n_x - 1:
                for p in range(3):
                    for q in range(3):
                        value = smooth[m] * coefficients[p] * coefficients[q]
                        _add(matrix, m + p - 1, m + q - 1, value)


@scalar_helper
def _update_trailing(low, column, m, stop, bw):
    """Subtract column ``m``'s outer product from the rows below it, in ``low``.

    ``A[i, j] -= L[i, m] L[j, m]`` for ``m < j <= i < stop``: row ``i``'s
    entries ``j`` are contiguous in ``low`` (``low[i, j - i + bw]``) and
    ``column[j - m]`` holds ``L[j, m]``, so each row is one vectorised
    update.

    Parameters
    ----------
    low : ndarray of float64
        The factor by rows (see :func:`banded_solve`).
    column : ndarray of float64
        ``(bw + 1,)``: ``L[m + t, m]`` at ``t``, for ``0 < t < stop - m``.
    m, stop, bw : int
        Column, past-last row it reaches, bandwidth.

    Returns
    -------
    None
    """
    for i in range(m + 1, stop):
        # Views without reference counting: see _kernels/__init__.py.
        row, factors = low[i, m + 1 - i + bw :], column[1 : i - m + 1]
        lim = column[i - m]
        for t in range(factors.shape[0]):
            row[t] -= lim * factors[t]


@njit(cache=True)
def banded_solve(matrix, rhs):
    """Solve a symmetric positive definite banded system by Cholesky.

    Parameters
    ----------
    matrix : ndarray of float64
        ``(bandwidth + 1, n)``, upper band (``matrix[d, m]`` is ``(m, m + d)``);
        not modified.
    rhs : ndarray of float64
        ``(n,)``.

    Returns
    -------
    ndarray of float64
        The solution.
    """
    bw = matrix.shape[0] - 1
    n = matrix.shape[1]
    # The factor by rows: low[i, bw - d] is L[i, i - d]. A row's entries are
    # then contiguous; in ``matrix``'s layout they lay along a diagonal across
    # all bw + 1 rows (4x the time).
    low = np.zeros((n, bw + 1))
    for d in range(bw + 1):
        for m in range(n - d):
            low[m + d, bw - d] = matrix[d, m]
    # Right-looking: once column m is known, its outer product is taken off
    # the rows below, a contiguous row segment at a time (vectorised). Every
    # entry still loses its terms in the order of k, as in the dot products
    # of the left-looking form (the same bits, in half the time).
    column = np.empty(bw + 1)
    for m in range(n):
        s = low[m, bw]
        d = np.sqrt(s) if s > 0.0 else 1e-150
        low[m, bw] = d
        stop = min(n, m + bw + 1)
        for i in range(m + 1, stop):
            entry = low[i, m - i + bw] / d
            low[i, m - i + bw] = entry
            column[i - m] = entry
        _update_trailing(low, column, m, stop, bw)
    x = rhs.copy()
    for i in range(n):
        s = x[i]
        for k in range(max(0, i - bw), i):
            s -= low[i, k - i + bw] * x[k]
        x[i] = s / low[i, bw]
    for i in range(n - 1, -1, -1):
        s = x[i]
        for k in range(i + 1, min(n, i + bw + 1)):
            s -= low[k, i - k + bw] * x[k]
        x[i] = s / low[i, bw]
    return x


def evaluate(nodes, along_rows, h, out):
    """The bilinear surface at every pixel.

    Parameters
    ----------
    nodes : ndarray of float64
        ``(n_y, n_x)`` node values (lines, positions along the line), at least
        two nodes each way.
    along_rows : bool
        Lines are rows of ``out`` (else columns).
    h : float
        Node spacing.
    out : ndarray of float32 or float64
        ``(ny, nx)``, written.

    Returns
    -------
    None
    """
    run_ranges(_evaluate_range, out.shape[0], nodes, along_rows, h, out)


@njit(cache=True, nogil=True)
def _evaluate_range(claims, nodes, along_rows, h, out):
    """Rows of :func:`evaluate`."""
    n_y, n_x = nodes.shape
    nx = out.shape[1]
    # Along a row of ``out`` the surface interpolates one profile over the
    # nodes of the x axis: the profile once per row, the cells once per range.
    nodes_x, nodes_y = (n_x, n_y) if along_rows else (n_y, n_x)
    cell, weight = _cells_of(nx, h, nodes_x)
    # Cells grow with x: cell i covers the run edges[i]..edges[i + 1], which
    # interpolates between two profile values held in registers (indexing
    # the profile by cell[x] was a scalar gather per pixel).
    edges = np.searchsorted(cell, np.arange(nodes_x))
    profile = np.empty(nodes_x)
    start, stop = claim(claims)
    while start < stop:
        for y in range(start, stop):
            k, f = _cell(y / h, nodes_y)
            for m in range(nodes_x):
                if along_rows:
                    profile[m] = (1.0 - f) * nodes[k, m] + f * nodes[k + 1, m]
                else:
                    profile[m] = (1.0 - f) * nodes[m, k] + f * nodes[m, k + 1]
            _interpolate_row(weight, edges, profile, out[y])
        start, stop = claim(claims)


@scalar_helper
def _interpolate_row(weight, edges, profile, out):
    """One row of :func:`evaluate` from its ``profile``, a cell's run at a time.

    (The runs are sliced here, in a helper without reference counting: in
    the kernel each slice counted references, a quarter of the time.)
    """
    for i in range(edges.shape[0] - 1):
        first, last = edges[i], edges[i + 1]
        _interpolate_run(weight[first:last], profile[i], profile[i + 1], out[first:last])


@scalar_helper
def _interpolate_run(weight, below, above, out):
    """``out = (1 - weight) * below + weight * above`` along one cell's run of pixels."""
    for x in range(weight.shape[0]):
        g = weight[x]
        out[x] = (1.0 - g) * below + g * above


@njit(cache=True, nogil=True)
def _cells_of(n, h, n_nodes):
    """:func:`_cell` of positions ``0 .. n - 1``: ``(cell, weight)`` arrays."""
    cell = np.empty(n, np.int64)
    weight = np.empty(n)
    for t in range(n):
        cell[t], weight[t] = _cell(t / h, n_nodes)
    return cell, weight


@njit(cache=True, nogil=True)
def _cell_runs(n, h, n_nodes):
    """:func:`_cells_of` positions ``0 .. n - 1``, the weights' squares, and each cell's end.

    ``(cell, weight, squares, ends)``: ``ends[i]`` is the first position
    past cell ``i``'s run (the cells grow with the position).
    """
    cell, weight = _cells_of(n, h, n_nodes)
    return cell, weight, weight * weight, _run_starts(cell, n_nodes)[1:]


@njit(cache=True, nogil=True)
def _run_starts(cell, n_cells):
    """``(n_cells + 1,)``: where each cell's run of positions starts, then ``cell.size``.

    ``cell`` is non-decreasing (a cell without positions has an empty run).
    (A loop: numba compiled its ``np.searchsorted(..., side="right")`` again
    in every process, outside its cache: tests/test_warm.py.)
    """
    starts = np.empty(n_cells + 1, np.int64)
    t = 0
    for i in range(n_cells + 1):
        while t < cell.shape[0] and cell[t] < i:
            t += 1
        starts[i] = t
    return starts


def cell_fractions(usable, sources, along_rows, h, grid, out, out_free):
    """Fraction of the pixels nearest each node that are not usable, and not free.

    Parameters
    ----------
    usable : ndarray of uint8
        ``(ny, nx)``.
    sources : ndarray of uint8
        ``(ny, nx)``, non-zero on sources; shape (0, 0): none (and
        ``out_free`` is not written).
    along_rows : bool
        Lines are rows.
    h : float
        Node spacing.
    grid : tuple of int
        ``(n_y, n_x)``: nodes across and along the lines.
    out : ndarray of float64
        ``(n_y, n_x)``, written: the fraction of each node's pixels that are
        not usable (1 for a node with no pixel).
    out_free : ndarray of float64
        ``(n_y, n_x)``, written unless ``sources`` is empty: the fraction
        that are not usable or are on a source.

    Returns
    -------
    None
    """
    if sources.shape[0] and sources.shape != usable.shape:  # (the kernel checks no bounds)
        raise ValueError(f"sources has shape {sources.shape}, usable {usable.shape}")
    cells_y = grid[0] if along_rows else grid[1]  # cells along the image's y axis
    run_ranges(_cell_fractions_range, cells_y, usable, sources, along_rows, float(h), grid,
               out, out_free, min_items=1)  # fmt: skip


@njit(cache=True, nogil=True)
def _cell_fractions_range(claims, usable, sources, along_rows, h, grid, out, out_free):
    """Rows of cells (along the image's y axis) of :func:`cell_fractions`.

    Cell indices grow with the position, so a cell's pixels are a run of
    rows and, in each, a contiguous run of columns, counted by a
    branch-free loop over it. The counts are integers: the fractions do not
    depend on how the rows are shared out.
    """
    ny, nx = usable.shape
    n_y, n_x = grid
    cells_y, cells_x = (n_y, n_x) if along_rows else (n_x, n_y)
    with_sources = sources.shape[0] > 0
    row_start = _run_starts(_nearest_cells(ny, h, cells_y), cells_y)
    run_start = _run_starts(_nearest_cells(nx, h, cells_x), cells_x)
    good = np.empty(cells_x, np.int64)
    free = np.empty(cells_x, np.int64)
    start, stop = claim(claims)
    while start < stop:
        for a in range(start, stop):
            good[:] = 0
            free[:] = 0
            for y in range(row_start[a], row_start[a + 1]):
                on = sources[y] if with_sources else sources.ravel()
                _count_row(usable[y], on, run_start, good, free)
            n_rows = row_start[a + 1] - row_start[a]
            for b in range(cells_x):
                total = n_rows * (run_start[b + 1] - run_start[b])
                _put(out, along_rows, a, b, _fraction(total, good[b]))
                if with_sources:
                    _put(out_free, along_rows, a, b, _fraction(total, free[b]))
        start, stop = claim(claims)


@scalar_helper
def _count_row(use, on, run_start, good, free):
    """Add one row's usable pixels of each cell to ``good``, and those off ``on`` to ``free``.

    ``on``: the row's sources, or empty (``free`` untouched). (The runs are
    sliced here, in a helper without reference counting: see
    :func:`_interpolate_row`.)
    """
    for b in range(good.shape[0]):
        first, last = run_start[b], run_start[b + 1]
        run = use[first:last]  # indexed from 0: vectorises
        n = 0
        for x in range(run.shape[0]):
            n += run[x] != 0
        good[b] += n
        if on.shape[0]:
            sources = on[first:last]
            n = 0
            for x in range(run.shape[0]):
                n += (run[x] != 0) & (sources[x] == 0)
            free[b] += n


@scalar_helper
def _fraction(total, good):
    """Fraction of ``total`` pixels that are not ``good`` (1 for none)."""
    return (total - good) / total if total > 0 else 1.0


@scalar_helper
def _put(out, along_rows, a, b, value):
    """``out[a, b]`` of cell row ``a`` along the image's y axis, column ``b`` (node order)."""
    if along_rows:
        out[a, b] = value
    else:
        out[b, a] = value


@njit(cache=True, nogil=True)
def _nearest_cells(n, h, n_cells):
    """``(n,)`` int64: the node nearest each of ``n`` positions (spacing ``h``)."""
    cell = np.empty(n, np.int64)
    for t in range(n):
        cell[t] = min(n_cells - 1, int(t / h + 0.5))
    return cell
