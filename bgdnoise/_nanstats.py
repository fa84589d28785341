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
        empty = np.isnan(values).all(axis=axis)
        filled = np.where(np.expand_dims(empty, axis), 0.0, values)
        return np.where(empty, np.nan, np.nanmedian(filled, axis=axis))


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
