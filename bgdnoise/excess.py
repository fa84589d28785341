"""How much striping a plane shows, in units of what white noise alone gives.

The stripe excess is the RMS over lines of the line mean on unmasked sky
(around its median), divided by the RMS that white noise of the plane's
dispersion gives for lines of those pixel counts: 1.0 means no striping is
left, 2.0 means twice the white-noise floor. It does not grow with depth or
exposure time, so a thousand corrected files can be sorted by it.
"""

from __future__ import annotations

import warnings

import numpy as np

from ._kernels import linemeans
from ._prepare import Prepared

__all__ = ["stripe_excess"]

# Values further than this many sigmas from the sky do not count.
_WINDOW_SIGMAS = 5.0
# Lines with fewer values are left out.
_MIN_COUNT = 16


def stripe_excess(planes: np.ndarray, prepared: Prepared, sky: np.ndarray, sigma: np.ndarray):
    """Stripe excess of each plane and the RMS it is made of.

    Returns ``(excess, rms)``, each ``(P,)`` float64, NaN where not
    measurable: ``rms`` is the RMS over lines of the sky's line means around
    their median, in data units, ``excess`` that over the white-noise floor.

    Parameters
    ----------
    planes : numpy.ndarray
        ``(P, ny, nx)`` values (the data before, or the result after).
    prepared : Prepared
        Flags (sources included) and background of the correction.
    sky, sigma : numpy.ndarray
        ``(P,)`` sky level (after the background) and white-noise dispersion.
    """
    n_planes = planes.shape[0]
    layout = prepared.layout
    means = np.empty((n_planes, layout.n_lines, 1))
    counts = np.empty((n_planes, layout.n_lines, 1), np.int64)
    centre = np.where(np.isfinite(sky), sky, 0.0).astype(np.float64)
    ok_sigma = np.isfinite(sigma) & (sigma > 0)
    with np.errstate(over="ignore"):  # a window beyond the float range is no window
        half_width = np.where(ok_sigma, _WINDOW_SIGMAS * np.where(ok_sigma, sigma, 1.0), np.inf)
    half_width = half_width.astype(np.float64)
    whole_line = np.array([0, layout.length], np.int64)
    linemeans.window_means(
        planes, prepared.flags, prepared.background,
        (layout.along_rows, whole_line, np.bool_(False)),
        (np.repeat(centre, layout.n_lines).reshape(means.shape), half_width, half_width),
        means, counts,
    )  # fmt: skip
    means, counts = means[:, :, 0], counts[:, :, 0]
    return _excess_of(means, counts, sigma, ok_sigma)


def _excess_of(means, counts, sigma, ok_sigma):
    """``(excess, rms)`` from the line means and counts, all planes at once."""
    use = (counts >= _MIN_COUNT) & np.isfinite(means)
    enough = use.sum(axis=1) >= 8
    values = np.where(use & enough[:, None], means, np.nan)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # planes without lines: NaN
        deviation = values - np.nanmedian(values, axis=1)[:, None]
        rms = np.sqrt(np.nanmean(deviation**2, axis=1))
        # Scaled by sigma: no underflow for tiny values, no overflow for huge.
        scaled = deviation / np.where(ok_sigma, sigma, np.nan)[:, None]
        floor = np.sqrt(np.nanmean(np.where(np.isnan(values), np.nan, 1.0 / counts), axis=1))
        excess = np.sqrt(np.nanmean(scaled**2, axis=1)) / floor
    rms = np.where(np.isfinite(rms), rms, np.nan)
    excess = np.where(np.isfinite(excess) & ok_sigma, excess, np.nan)
    return excess, rms
