"""The level of every group of every line: gather, then estimate, in parallel."""

from __future__ import annotations

import numpy as np
from numba import njit

from ._jit import scalar_helper
from .binned import _binned_clipped_median, binned_scratch
from .gather import COLUMN_ROWS, _plane_rows, gather_block
from .threads import claim, run_ranges


def line_levels(data, flags, background, geometry, clip, full, sky_scale, work, out):
    """Clipped-median level of every group of every line of every plane, and its sky.

    Parameters
    ----------
    data, flags, background : ndarray
        As in the package docstring.
    geometry : tuple
        ``(along_rows, band_edges, odd_even, group_start)``: lines along
        rows (bool) or columns; the readout bands and, when ``odd_even``,
        the parities that split a line into groups; each group's offset in
        the per-line scratch.
    clip : tuple
        ``(sigma_lower, sigma_upper, plane_scale, maxiters)``:
        ``plane_scale[p] > 0`` is a fixed clipping scale for plane p,
        otherwise the standard deviation of the values kept is used;
        ``maxiters < 0`` iterates until nothing changes.
    full : tuple
        ``(group_needed, full_every, numbers, wanted)``: with more than one
        group, the full-line level is computed for every ``full_every``-th
        line (none when 0) and for lines where a group g has fewer than
        ``group_needed[g]`` usable pixels (NaN elsewhere). ``numbers``
        (int64): each line's number in that count when the lines are a
        subset of a plane's (measured again), else empty: its index.
        ``wanted`` (uint8, ``(n_lines, n_groups)``): the level of group g of
        line j is estimated only where ``wanted[j, g]`` is non-zero, NaN
        elsewhere (its count and the full-line level as always); shape
        (0, 0): every group's.
    sky_scale : ndarray of float64
        ``(P,)``: the sky of a group is its usable values within
        ``[level - sigma_lower * s, level + sigma_upper * s]``, ``s =
        sky_scale[p]`` (the clip's bounds around its clipped median); a
        NaN scale skips plane p's sky (means and variances NaN, counts 0),
        an infinite one keeps every value.
    work : tuple of int
        ``(block, n_chunks)``: the blocks of ``block`` lines of all planes
        are cut into ``n_chunks`` contiguous chunks, the items the threads
        claim (:func:`.threads.claim`); one set of scratch per thread.
    out : tuple of ndarray
        ``(levels, counts, full_levels, full_counts, sky_means, sky_counts,
        sky_vars)``, written: ``levels[p, line, g]`` and ``counts[p, line,
        g]`` (usable pixels), with more than one group ``full_levels[p,
        line]`` and ``full_counts[p, line]`` over the whole line (else shape
        (0, 0)), and the mean, number and variance (about that mean) of each
        group's sky values (``sky_vars`` of shape (0, 0, 0): no variances).

    Returns
    -------
    None
    """
    run_ranges(
        _line_levels_range,
        work[1],
        data,
        flags,
        background,
        geometry,
        clip,
        full,
        sky_scale,
        work,
        out,
        min_items=1,
    )


@njit(cache=True, nogil=True)
def _line_levels_range(claims, data, flags, background, geometry, clip, full, sky_scale, work, out):
    """Items of :func:`line_levels`."""
    along_rows, band_edges, odd_even, group_start = geometry
    levels, counts, full_levels, full_counts, sky_means, sky_counts, sky_vars = out
    n_planes, ny, nx = data.shape
    n_lines, length = (ny, nx) if along_rows else (nx, ny)
    n_groups = (band_edges.shape[0] - 1) * (2 if odd_even else 1)
    block, n_chunks = work
    blocks_per_plane = (n_lines + block - 1) // block
    n_items = n_planes * blocks_per_plane
    # This thread's scratch, for every chunk it claims (each block's gather
    # sets its counts and values; nothing carries over from one to the next).
    cnt = np.zeros((block, n_groups), dtype=np.int64)
    gathered = (np.empty((block, length)), cnt)
    rows = np.empty((COLUMN_ROWS, block))  # (the gather of lines along columns)
    lv, flv, fct = np.empty((block, n_groups)), np.empty(block), np.empty(block, np.int64)
    smv, smc = np.empty((block, n_groups)), np.empty((block, n_groups), np.int64)
    ssv = np.empty((block, n_groups))
    want_vars = sky_vars.shape[0] > 0
    scratch = (np.empty(length), binned_scratch(length))
    start, stop = claim(claims)
    while start < stop:
        for chunk in range(start, stop):
            item_start = chunk * n_items // n_chunks
            item_stop = (chunk + 1) * n_items // n_chunks
            if item_stop <= item_start:
                continue
            # Views of a plane are made once per plane: making one counts a
            # reference on the arrays every thread shares.
            plane_now = item_start // blocks_per_plane
            plane = _plane_rows(data, flags, background, plane_now)
            for item in range(item_start, item_stop):
                p = item // blocks_per_plane
                first = (item % blocks_per_plane) * block
                nl = min(block, n_lines - first)
                if p != plane_now:
                    plane_now = p
                    plane = _plane_rows(data, flags, background, p)
                gather_block(plane, first, nl, geometry, gathered, rows)
                plane_clip = (clip[0], clip[1], clip[2][p], clip[3])
                _block_levels(
                    gathered, (first, nl), group_start, plane_clip, full, (lv, flv, fct), scratch
                )
                window = (clip[0], clip[1], sky_scale[p], want_vars)
                _block_sky(gathered, nl, group_start, window, lv, (smv, smc, ssv))
                for j in range(nl):
                    for g in range(n_groups):
                        levels[p, first + j, g] = lv[j, g]
                        counts[p, first + j, g] = cnt[j, g]
                        sky_means[p, first + j, g] = smv[j, g]
                        sky_counts[p, first + j, g] = smc[j, g]
                        if want_vars:
                            sky_vars[p, first + j, g] = ssv[j, g]
                    if n_groups > 1:
                        full_levels[p, first + j] = flv[j]
                        full_counts[p, first + j] = fct[j]
        start, stop = claim(claims)


@scalar_helper
def _block_levels(gathered, where, group_start, clip, full, found, scratch):
    """Levels of the lines of one gathered block.

    Parameters
    ----------
    gathered : tuple of ndarray
        ``(seg, cnt)`` from :func:`.gather.gather_block`.
    where : tuple of int
        ``(first, nl)``: first line and number of lines.
    group_start : ndarray of int64
        Each group's segment start in ``seg``.
    clip : tuple
        ``(sigma_lower, sigma_upper, fixed_scale, maxiters)`` for this plane.
    full : tuple
        As for :func:`line_levels`.
    found : tuple of ndarray
        ``(levels, full_levels, full_counts)`` of shapes (block, n_groups),
        (block,), (block,), written for the block's lines; the full ones
        only with more than one group (full level NaN where not needed).
    scratch : tuple
        ``(work, binned)``: a line-long buffer and the estimator's scratch.

    Returns
    -------
    None
    """
    seg, cnt = gathered
    first, nl = where
    levels, full_levels, full_counts = found
    binned = scratch[1]
    n_groups = cnt.shape[1]
    wanted = full[3]
    every_group = wanted.shape[0] == 0
    for j in range(nl):
        if n_groups > 1:
            full_counts[j] = _total(cnt[j])
            full_levels[j] = np.nan
            if _wants_full_level(cnt[j], full, first + j):
                full_levels[j] = _full_line_level(seg[j], cnt[j], group_start, clip, scratch)
        for g in range(n_groups):
            levels[j, g] = np.nan
            if every_group or wanted[first + j, g] != 0:
                values = seg[j, group_start[g] :]
                levels[j, g] = _binned_clipped_median(values, cnt[j, g], clip, binned)


@scalar_helper
def _block_sky(gathered, nl, group_start, window, levels, found):
    """Mean, number and variance of each group's values within the window around its level.

    Parameters
    ----------
    gathered : tuple of ndarray
        ``(seg, cnt)`` from :func:`.gather.gather_block` (values unchanged by
        the level's estimators).
    nl : int
        Number of lines.
    group_start : ndarray of int64
    window : tuple
        ``(sigma_lower, sigma_upper, scale, with_variance)``; a NaN scale: no
        sky; without variance the variances are NaN (the plain path's
        stripe excess needs only the means).
    levels : ndarray of float64
        ``(block, n_groups)`` the lines' levels.
    found : tuple of ndarray
        ``(means, counts, variances)`` of shape (block, n_groups), written
        (the variance about the mean; NaN without values).

    Returns
    -------
    None
    """
    seg, cnt = gathered
    sigma_lower, sigma_upper, scale, with_variance = window
    means, counts, variances = found
    if np.isnan(scale):  # no sky wanted: no pass over the values
        for j in range(nl):
            for g in range(cnt.shape[1]):
                counts[j, g] = 0
                means[j, g] = np.nan
                variances[j, g] = np.nan
        return
    n_groups = cnt.shape[1]
    in_fours = n_groups - n_groups % 4
    for j in range(nl):
        row = seg[j]
        # Four groups at a time: each sum is a chain of dependent additions,
        # four chains side by side keep the adder busy. Each group's values
        # are still added in their order: the same sums as one at a time.
        for g in range(0, in_fours, 4):
            lv = (levels[j, g], levels[j, g + 1], levels[j, g + 2], levels[j, g + 3])
            sums = _window_sums4(
                row, (group_start[g], group_start[g + 1], group_start[g + 2], group_start[g + 3]),
                (cnt[j, g], cnt[j, g + 1], cnt[j, g + 2], cnt[j, g + 3]), lv,
                (sigma_lower * scale, sigma_upper * scale), with_variance,
            )  # fmt: skip
            for k in range(4):
                total, squares, n = sums[0][k], sums[1][k], sums[2][k]
                _write_sky(found, (j, g + k), lv[k], (total, squares, n), with_variance)
        for g in range(in_fours, n_groups):
            level = levels[j, g]
            window = (level - sigma_lower * scale, level + sigma_upper * scale, level)
            span = (group_start[g], group_start[g] + cnt[j, g])
            # (n not a literal: see _kernels/__init__.py)
            sums = _window_sums(row, span, window, (0.0, 0.0, np.int64(0)))
            _write_sky(found, (j, g), level, sums, with_variance)


@scalar_helper
def _window_sums(row, span, window, sums):
    """Add the values of ``row[span[0]:span[1]]`` within a window to ``sums``, in order.

    Parameters
    ----------
    row : ndarray of float64
        One line's gathered segments.
    span : tuple of int
        ``(first, stop)`` positions in ``row``.
    window : tuple of float
        ``(low, high, level)``: the values kept are those in ``[low, high]``;
        deviations are from ``level`` (no cancellation in their squares).
    sums : tuple
        ``(total, squares, n)`` so far.

    Returns
    -------
    tuple
        ``(total, squares, n)`` with the span's values added.
    """
    low, high, level = window
    total, squares, n = sums
    for t in range(span[0], span[1]):
        v = row[t]
        keep = (low <= v) & (v <= high)
        d = v - level
        total += v if keep else 0.0
        squares += d * d if keep else 0.0
        n += keep
    return total, squares, n


@scalar_helper
def _window_sums4(row, starts, lengths, levels, widths, with_squares):
    """Sums of four groups' values within their windows, in one interleaved pass.

    Parameters
    ----------
    row : ndarray of float64
        One line's gathered segments.
    starts, lengths : tuple of int
        Each group's segment start and number of values.
    levels : tuple of float
        Each group's level.
    widths : tuple of float
        ``(below, above)``: the window is ``[level - below, level + above]``.
    with_squares : bool
        False: the squares of the common length are not summed (the plain
        path's sky wants means only; they were a third of the pass).

    Returns
    -------
    tuple of tuple
        ``(totals, squares, counts)``: per group the sum of the values kept,
        of their squared deviations from the level (not of them all without
        ``with_squares``), and their number; each sum taken in the values'
        order.
    """
    s0, s1, s2, s3 = starts
    l0, l1, l2, l3 = levels
    lo0, lo1, lo2, lo3 = l0 - widths[0], l1 - widths[0], l2 - widths[0], l3 - widths[0]
    hi0, hi1, hi2, hi3 = l0 + widths[1], l1 + widths[1], l2 + widths[1], l3 + widths[1]
    t0 = t1 = t2 = t3 = 0.0
    q0 = q1 = q2 = q3 = 0.0
    n0 = n1 = n2 = n3 = np.int64(0)  # not a literal: see _kernels/__init__.py
    common = min(min(lengths[0], lengths[1]), min(lengths[2], lengths[3]))
    # Views from 0: indices numba knows are not negative (see _kernels/__init__.py).
    r0, r1 = row[s0 : s0 + common], row[s1 : s1 + common]
    r2, r3 = row[s2 : s2 + common], row[s3 : s3 + common]
    # Two loops, one of them empty: a test inside the loop would keep the
    # squares' work in the loop without the variance.
    for t in range(common if with_squares else 0):
        v0, v1, v2, v3 = r0[t], r1[t], r2[t], r3[t]
        k0 = (lo0 <= v0) & (v0 <= hi0)
        k1 = (lo1 <= v1) & (v1 <= hi1)
        k2 = (lo2 <= v2) & (v2 <= hi2)
        k3 = (lo3 <= v3) & (v3 <= hi3)
        d0, d1, d2, d3 = v0 - l0, v1 - l1, v2 - l2, v3 - l3
        t0 += v0 if k0 else 0.0
        t1 += v1 if k1 else 0.0
        t2 += v2 if k2 else 0.0
        t3 += v3 if k3 else 0.0
        q0 += d0 * d0 if k0 else 0.0
        q1 += d1 * d1 if k1 else 0.0
        q2 += d2 * d2 if k2 else 0.0
        q3 += d3 * d3 if k3 else 0.0
        n0 += k0
        n1 += k1
        n2 += k2
        n3 += k3
    for t in range(0 if with_squares else common):  # the same without the squares
        v0, v1, v2, v3 = r0[t], r1[t], r2[t], r3[t]
        k0 = (lo0 <= v0) & (v0 <= hi0)
        k1 = (lo1 <= v1) & (v1 <= hi1)
        k2 = (lo2 <= v2) & (v2 <= hi2)
        k3 = (lo3 <= v3) & (v3 <= hi3)
        t0 += v0 if k0 else 0.0
        t1 += v1 if k1 else 0.0
        t2 += v2 if k2 else 0.0
        t3 += v3 if k3 else 0.0
        n0 += k0
        n1 += k1
        n2 += k2
        n3 += k3
    # Each group's values beyond the common length, in order.
    t0, q0, n0 = _window_sums(row, (s0 + common, s0 + lengths[0]), (lo0, hi0, l0), (t0, q0, n0))
    t1, q1, n1 = _window_sums(row, (s1 + common, s1 + lengths[1]), (lo1, hi1, l1), (t1, q1, n1))
    t2, q2, n2 = _window_sums(row, (s2 + common, s2 + lengths[2]), (lo2, hi2, l2), (t2, q2, n2))
    t3, q3, n3 = _window_sums(row, (s3 + common, s3 + lengths[3]), (lo3, hi3, l3), (t3, q3, n3))
    return (t0, t1, t2, t3), (q0, q1, q2, q3), (n0, n1, n2, n3)


@scalar_helper
def _write_sky(found, where, level, sums, with_variance):
    """Write one group's sky mean, count and (``with_variance``) variance.

    Parameters
    ----------
    found : tuple of ndarray
        ``(means, counts, variances)`` as for :func:`_block_sky`.
    where : tuple of int
        ``(j, g)``.
    level : float
        The group's level (the deviations' origin).
    sums : tuple
        ``(total, squares, n)`` of the values kept.
    with_variance : bool

    Returns
    -------
    None
    """
    means, counts, variances = found
    j, g = where
    total, squares, n = sums
    counts[j, g] = n
    means[j, g] = total / n if n > 0 else np.nan
    offset = means[j, g] - level
    known = n > 0 and with_variance
    variances[j, g] = squares / n - offset * offset if known else np.nan


@scalar_helper
def _total(cnt):
    """Sum of the group counts of one line.

    Parameters
    ----------
    cnt : ndarray of int64

    Returns
    -------
    int
    """
    total = np.int64(0)  # not a literal: see _kernels/__init__.py
    for g in range(cnt.shape[0]):
        total += cnt[g]
    return total


@scalar_helper
def _wants_full_level(cnt, full, line):
    """Whether a line's full level is needed.

    Parameters
    ----------
    cnt : ndarray of int64
        Usable pixels per group of the line.
    full : tuple
        ``(group_needed, full_every, numbers, wanted)``, see :func:`line_levels`.
    line : int
        The line's index in the lines measured.

    Returns
    -------
    bool
        True on every ``full_every``-th line (the sample of each band's
        offset; none when ``full_every`` is 0) and where a group falls back
        to the full level.
    """
    group_needed, full_every, numbers, _ = full
    if numbers.shape[0]:
        line = numbers[line]
    if full_every > 0 and line % full_every == 0:
        return True
    for g in range(cnt.shape[0]):
        if cnt[g] < group_needed[g]:
            return True
    return False


@scalar_helper
def _full_line_level(vals, cnt, group_start, clip, scratch):
    """Level of a whole line from the usable values of all its groups.

    Parameters
    ----------
    vals : ndarray of float64
        The line's gathered segments.
    cnt, group_start : ndarray of int64
        Usable values per group and each group's segment start.
    clip : tuple
        As for :func:`_block_levels`.
    scratch : tuple
        ``(work, binned)``; ``work`` receives the values.

    Returns
    -------
    float
    """
    work, binned = scratch
    total = np.int64(0)  # not a literal: see _kernels/__init__.py
    for g in range(cnt.shape[0]):
        s0 = group_start[g]
        for t in range(cnt[g]):
            work[total] = vals[s0 + t]
            total += 1
    return _binned_clipped_median(work, total, clip, binned)
