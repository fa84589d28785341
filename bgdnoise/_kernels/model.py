"""Applying the stripe model: subtract each group's level along its line."""

from __future__ import annotations

import numpy as np
from numba import njit

from ._jit import scalar_helper
from .flags import EXCLUDE, PRESERVE
from .threads import claim, run_ranges

# No usable map wanted (subtract_levels).
_NO_USABLE = np.zeros((1, 0, 0), np.uint8)


def subtract_levels(
    data, flags, along_rows, band_edges, odd_even, line_model, out, model, write_model,
    usable=_NO_USABLE,
):  # fmt: skip
    """``out = data - line_model`` broadcast along lines; optionally the model.

    Parameters
    ----------
    data : ndarray
        (P, Ny, Nx) float32 or float64.
    flags : ndarray of uint8
        As in the package docstring; pixels flagged ``PRESERVE`` are copied
        unchanged (model 0).
    along_rows : bool
        Lines along rows (else columns).
    band_edges : ndarray of int64
        Readout band edges along the line.
    odd_even : bool
        Groups split by the parity of the position along the line.
    line_model : ndarray of float64
        (P, n_lines, n_groups): the value to subtract from group g of a line.
    out : ndarray
        Like ``data``, written; may be ``data`` itself.
    model : ndarray
        Like ``data``; receives the subtracted value when ``write_model``.
    write_model : bool
    usable : ndarray of uint8, optional
        Like ``data``: written 1 where the result is finite and the pixel
        not flagged ``EXCLUDE``, else 0, and ``out`` set to 0 there (the
        residual the source search thresholds, made in the same pass).

    Returns
    -------
    None
    """
    run_ranges(
        _subtract_levels_range,
        data.shape[0] * data.shape[1],
        data,
        flags,
        along_rows,
        band_edges,
        odd_even,
        line_model,
        out,
        model,
        write_model,
        usable,
        min_items=16,
    )


@njit(cache=True, nogil=True)
def _subtract_levels_range(
    claims, data, flags, along_rows, band_edges, odd_even, line_model, out, model, write_model,
    usable,
):  # fmt: skip
    """Items of :func:`subtract_levels`."""
    # Rows standing in for the model and usable rows not wanted, and the flags
    # when there are none.
    empty = (np.empty(0, dtype=flags.dtype), np.empty(0, dtype=model.dtype),
             np.empty(0, dtype=usable.dtype))  # fmt: skip
    settings = (along_rows, band_edges, odd_even, write_model)
    planes = (data, flags, line_model, out, model, usable)
    # Lines along columns: each group's levels along a row, for the plane held.
    by_group = np.empty((0, 0) if along_rows else (line_model.shape[2], data.shape[2]))
    held = np.full(1, -1, np.int64)
    start, stop = claim(claims)
    while start < stop:
        _subtract_rows(start, stop, planes, settings, empty, (by_group, held))
        start, stop = claim(claims)


@scalar_helper
def _subtract_rows(start, stop, planes, settings, empty, columns):
    """Rows ``start .. stop - 1`` (over all planes) of :func:`subtract_levels`.

    The rows and bands are sliced here, in a helper without reference
    counting: in the kernel, every slice counted references on its array
    (atomic operations), which took longer than the subtraction on bands of
    128 values. ``columns = (by_group, held)``: for lines along columns,
    each group's level at each position of a row, of plane ``held[0]``
    (filled here when another plane's rows come).
    """
    data, flags, line_model, out, model, usable = planes
    along_rows, band_edges, odd_even, write_model = settings
    no_flags, no_model, no_usable = empty
    ny, nx = data.shape[1], data.shape[2]
    n_bands = band_edges.shape[0] - 1
    n_par = 2 if odd_even else 1
    has_flags = flags.shape[1] > 0
    with_usable = usable.shape[1] > 0
    for row in range(start, stop):
        p = row // ny
        y = row % ny
        q = np.int64(p)
        drow = data[q, y]
        orow = out[q, y]
        frow = flags[min(q, flags.shape[0] - 1), y] if has_flags else no_flags
        mrow = model[q, y] if write_model else no_model
        urow = usable[q, y] if with_usable else no_usable
        # Each pixel is read before it is written: ``out`` may be ``data``.
        if along_rows:
            lm = line_model[q, y]
            for b in range(n_bands):
                first, last = band_edges[b], band_edges[b + 1]
                # Levels of the band's even and odd positions (the same
                # without odd/even); ``first & 1``: the parity of view index 0.
                even, odd = lm[b * n_par], lm[b * n_par + n_par - 1]
                flag_row = frow[first:last] if has_flags else no_flags
                _subtract_band(drow[first:last], flag_row, even, odd, first & 1, orow[first:last])
                if write_model:
                    _band_model(flag_row, even, odd, first & 1, mrow[first:last])
                if with_usable:
                    _mark_usable(orow[first:last], flag_row, urow[first:last])
        else:
            by_group, held = columns
            if held[0] != p:  # the levels laid along the row once per plane
                for g in range(by_group.shape[0]):
                    for x in range(nx):
                        by_group[g, x] = line_model[q, x, g]
                held[0] = p
            b = 0
            while y >= band_edges[b + 1]:
                b += 1
            levels = by_group[b * n_par + ((y & 1) if odd_even else 0)]
            _subtract_row(drow, frow, levels, orow)
            if write_model:
                _row_model(frow, levels, mrow)
            if with_usable:
                _mark_usable(orow, frow, urow)


# The band helpers take views that start at 0 (see _kernels/__init__.py: the
# rows took several times as long with an offset index).


@scalar_helper
def _subtract_band(values, flags, even, odd, parity, out):
    """``out = values - level`` along one band of a row (level 0 where ``PRESERVE``).

    ``level`` is ``even`` at even positions of the row, ``odd`` at odd ones;
    ``parity`` is that of the view's first position. ``flags`` empty: none.
    """
    if flags.shape[0] == 0:
        for x in range(values.shape[0]):
            out[x] = values[x] - (odd if (x + parity) & 1 else even)
        return
    for x in range(values.shape[0]):
        level = odd if (x + parity) & 1 else even
        out[x] = values[x] - (0.0 if flags[x] & PRESERVE else level)


@scalar_helper
def _subtract_row(values, flags, levels, out):
    """``out = values - levels`` along a row (0 where ``PRESERVE``); ``flags`` empty: none."""
    if flags.shape[0] == 0:
        for x in range(values.shape[0]):
            out[x] = values[x] - levels[x]
        return
    for x in range(values.shape[0]):
        out[x] = values[x] - (0.0 if flags[x] & PRESERVE else levels[x])


@scalar_helper
def _row_model(flags, levels, model):
    """The level :func:`_subtract_row` subtracted at each position."""
    for x in range(model.shape[0]):
        model[x] = 0.0 if flags.shape[0] != 0 and flags[x] & PRESERVE else levels[x]


@scalar_helper
def _mark_usable(values, flags, usable):
    """``usable`` = finite and not ``EXCLUDE``d; ``values`` set to 0 where not.

    ``flags`` empty: none. (The pass after a band is subtracted, while it is
    in cache: a pass over the plane afterwards read it all from memory again.)
    """
    for x in range(values.shape[0]):
        v = values[x]
        ok = v - v == 0.0
        if flags.shape[0] != 0:
            ok &= (flags[x] & EXCLUDE) == 0
        usable[x] = np.uint8(ok)
        values[x] = v if ok else 0.0


@scalar_helper
def _band_model(flags, even, odd, parity, model):
    """The level :func:`_subtract_band` subtracted at each position."""
    for x in range(model.shape[0]):
        level = odd if (x + parity) & 1 else even
        if flags.shape[0] != 0 and flags[x] & PRESERVE:
            level = 0.0
        model[x] = level
