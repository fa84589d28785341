"""Reference implementations and the registry that pairs them with ours.

Tests check each bgdnoise function against every reference marked exact;
benchmarks time each of them on the same data. The references use only
numpy and astropy, nothing of bgdnoise's kernels.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bgdnoise import measure_levels

__all__ = [
    "REGISTRY",
    "Comparison",
    "astropy_line_levels",
    "numpy_line_medians",
    "unusable",
]


def unusable(data: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Pixels that enter no statistic: non-finite, exactly zero, or masked."""
    data = np.asarray(data)
    bad = ~np.isfinite(data) | (data == 0)
    if mask is not None:
        bad = bad | np.broadcast_to(mask, data.shape)
    return bad


def _line_axis(axis: str) -> int:
    return -1 if axis == "rows" else -2


def astropy_line_levels(
    data: np.ndarray,
    axis: str,
    *,
    mask: np.ndarray | None = None,
    sigma: float = 3.0,
    sigma_lower: float | None = None,
    sigma_upper: float | None = None,
    maxiters: int | None = 10,
) -> np.ndarray:
    """Per-line ``astropy.stats.sigma_clip`` (median/std) then masked median.

    Computed in float64. Returns ``lead + (n_lines,)`` with NaN for lines
    without a usable pixel.
    """
    from astropy.stats import sigma_clip

    values = np.asarray(data, dtype=np.float64)
    bad = unusable(values, mask)
    masked = np.ma.MaskedArray(np.where(bad, 0.0, values), mask=bad)
    line_axis = _line_axis(axis)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clipped = sigma_clip(
            masked,
            sigma=sigma,
            sigma_lower=sigma_lower,
            sigma_upper=sigma_upper,
            maxiters=maxiters,
            cenfunc="median",
            stdfunc="std",
            axis=line_axis,
        )
        levels = np.ma.median(clipped, axis=line_axis)
    return np.ma.filled(np.ma.asarray(levels, dtype=np.float64), np.nan)


def numpy_line_medians(data: np.ndarray, axis: str, *, mask: np.ndarray | None = None):
    """Plain per-line median of the usable pixels (no clipping), float64."""
    values = np.asarray(data, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN lines
        return np.nanmedian(np.where(unusable(values, mask), np.nan, values), axis=_line_axis(axis))


def _bgdnoise_clipped(data, axis, **kwargs):
    return measure_levels(data, axis, scale="line", **kwargs).raw[..., 0]


def _bgdnoise_plain(data, axis, *, mask=None):
    return measure_levels(data, axis, scale="line", maxiters=0, mask=mask).raw[..., 0]


@dataclass(frozen=True)
class Comparison:
    """One bgdnoise function and the references it must agree with.

    Attributes
    ----------
    ours : callable
        ``ours(data, axis, **kwargs)`` -> per-line levels.
    exact : dict of str to callable
        References that must give the same levels (to 1e-6 relative).
    timing_only : dict of str to callable
        Baselines timed next to ``ours`` in the benchmarks, not compared.
    """

    ours: Callable
    exact: dict[str, Callable]
    timing_only: dict[str, Callable] = field(default_factory=dict)


def _numpy_median_no_mask(data, axis, **kwargs):
    # The baseline users know: one np.median over the line axis, no masking.
    return np.median(data, axis=_line_axis(axis))


REGISTRY: dict[str, Comparison] = {
    "clipped_line_median": Comparison(
        ours=_bgdnoise_clipped,
        exact={"astropy": astropy_line_levels},
        timing_only={"np.median": _numpy_median_no_mask},
    ),
    "line_median": Comparison(
        ours=_bgdnoise_plain,
        exact={"numpy": numpy_line_medians},
        timing_only={"np.median": _numpy_median_no_mask},
    ),
}
