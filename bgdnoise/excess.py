"""How much striping a plane shows, in units of what white noise alone gives.

The stripe excess is the RMS over lines of the line mean on unmasked sky
(around its median), divided by the RMS that white noise of the plane's
dispersion gives for lines of those pixel counts: 1.0 means no striping is
left, 2.0 means twice the white-noise floor. It does not grow with depth or
exposure time, so a thousand corrected files can be sorted by it.

The sky of a line is its usable values within the clip's bounds around each
group's clipped median (``Measured.sky_means``, from the levels' own pass:
a source the mask missed, a cosmic ray do not count). After the correction
the same pixels are used, less what was subtracted from their group: the
correction is constant along a group, so that is the corrected image's line
mean without another pass over it.
"""

from __future__ import annotations

import numpy as np

from . import _nanstats

__all__ = ["stripe_excess"]

# Lines with fewer values are left out.
_MIN_COUNT = 16


def stripe_excess(means: np.ndarray, counts: np.ndarray, sigma: np.ndarray, subtracted=None):
    """Stripe excess of each plane and the RMS it is made of.

    Returns ``(excess, rms)``, each ``(P,)`` float64, NaN where not
    measurable: ``rms`` is the RMS over lines of the sky's line means around
    their median, in data units, ``excess`` that over the white-noise floor.

    Parameters
    ----------
    means, counts : numpy.ndarray
        ``(P, n_lines, n_groups)`` mean and number of each group's sky values
        (``sky_means``, ``sky_counts`` of :class:`bgdnoise.stages.Measured`).
    sigma : numpy.ndarray
        ``(P,)`` white-noise dispersion of a pixel.
    subtracted : numpy.ndarray, optional
        ``(P, n_lines, n_groups)`` what the correction subtracted from each
        group: the excess after it.
    """
    values = means if subtracted is None else means - subtracted
    used = (counts > 0) & np.isfinite(values)
    line_counts = np.where(used, counts, 0).sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        totals = (counts * np.where(used, values, 0.0)).sum(axis=2)
        line_means = totals / line_counts
    ok_sigma = np.isfinite(sigma) & (sigma > 0)
    return _excess_of(line_means, line_counts, sigma, ok_sigma)


def _excess_of(means, counts, sigma, ok_sigma):
    """``(excess, rms)`` from the line means and counts, all planes at once."""
    use = (counts >= _MIN_COUNT) & np.isfinite(means)
    enough = use.sum(axis=1) >= 8
    values = np.where(use & enough[:, None], means, np.nan)
    with np.errstate(all="ignore"):  # planes without lines: NaN
        deviation = values - _nanstats.nanmedian(values, axis=1)[:, None]
        rms = np.sqrt(_nanstats.nanmean(deviation**2, axis=1))
        # Scaled by sigma: no underflow for tiny values, no overflow for huge.
        scaled = deviation / np.where(ok_sigma, sigma, np.nan)[:, None]
        floor = np.sqrt(_nanstats.nanmean(np.where(np.isnan(values), np.nan, 1.0 / counts), axis=1))
        excess = np.sqrt(_nanstats.nanmean(scaled**2, axis=1)) / floor
    rms = np.where(np.isfinite(rms), rms, np.nan)
    excess = np.where(np.isfinite(excess) & ok_sigma, excess, np.nan)
    return excess, rms
