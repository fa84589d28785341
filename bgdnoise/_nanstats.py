"""NaN-ignoring statistics that do not warn where a slice has no value.

numpy's ``nanmedian`` and ``nanmean`` warn (``RuntimeWarning``) on an all-NaN
slice, and silencing that takes ``warnings.catch_warnings``, which swaps
process-wide state: not safe where corrections run in threads (a threaded
batch, a Dask worker), where it can silence or misroute other threads'
warnings. These give the same values, NaN for a slice without one, and no
warning, not even for the floating-point errors of extreme values (overflow
to inf in a median of two values near the float64 limit: numpy's value, under
``numpy.errstate``, which is thread-safe).
"""

from __future__ import annotations

import numpy as np

__all__ = ["nanmean", "nanmedian"]


def nanmedian(values: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """``numpy.nanmedian`` along ``axis`` (None: all), NaN where no value."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(all="ignore"):
        if axis is None:
            finite = values[~np.isnan(values)]
            return float(np.median(finite)) if finite.size else float("nan")
        # Sorted, NaNs go last: the middle of each slice's values is at
        # (n - 1) // 2 and n // 2. numpy's nanmedian gives the same numbers,
        # but along a short axis it runs a Python call per slice.
        if values.shape[axis] == 0:
            return np.full(np.delete(values.shape, axis), np.nan)
        ordered = np.sort(values, axis=axis)
        count = np.expand_dims(np.count_nonzero(~np.isnan(values), axis=axis), axis)
        last = ordered.shape[axis] - 1
        low = np.take_along_axis(ordered, np.clip((count - 1) // 2, 0, last), axis)
        high = np.take_along_axis(ordered, np.clip(count // 2, 0, last), axis)
        # One middle value is the median itself (no sum to overflow), two are averaged.
        middle = np.where(count % 2 == 1, low, (low + high) / 2)
        return np.squeeze(np.where(count > 0, middle, np.nan), axis=axis)


def nanmean(values: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """``numpy.nanmean`` along ``axis`` (None: all), NaN where no value.

    The same sums as numpy's (NaNs as zeros, divided by the count).
    """
    values = np.asarray(values, dtype=np.float64)
    known = ~np.isnan(values)
    counts = known.sum(axis=axis)
    with np.errstate(all="ignore"):
        totals = np.where(known, values, 0.0).sum(axis=axis)
        means = np.where(counts > 0, totals / np.where(counts > 0, counts, 1), np.nan)
    return float(means) if axis is None else means
