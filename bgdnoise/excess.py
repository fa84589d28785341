"""How much striping a plane shows, in units of what white noise alone gives.

The stripe excess is the RMS over lines of the line mean on unmasked sky
(around its median), divided by the RMS that white noise of the plane's
dispersion gives for lines of those pixel counts: 1.0 means no striping is
left, 2.0 means twice the white-noise floor. It does not grow with depth or
exposure time, so a thousand corrected files can be sorted by it.
"""

from __future__ import annotations

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
    n_lines = prepared.layout.n_lines
    means = np.empty((n_planes, n_lines))
    counts = np.empty((n_planes, n_lines), np.int64)
    centre = np.where(np.isfinite(sky), sky, 0.0)
    ok_sigma = np.isfinite(sigma) & (sigma > 0)
    with np.errstate(over="ignore"):  # a window beyond the float range is no window
        half_width = np.where(ok_sigma, _WINDOW_SIGMAS * np.where(ok_sigma, sigma, 1.0), np.inf)
    linemeans.sky_line_means(
        planes, prepared.flags, prepared.background, prepared.layout.along_rows,
        (centre.astype(np.float64), half_width.astype(np.float64)), means, counts,
    )  # fmt: skip
    excess = np.full(n_planes, np.nan)
    rms = np.full(n_planes, np.nan)
    for p in range(n_planes):
        use = (counts[p] >= _MIN_COUNT) & np.isfinite(means[p])
        if use.sum() < 8:
            continue
        with np.errstate(over="ignore", invalid="ignore"):
            spread = np.sqrt(np.mean((means[p, use] - np.median(means[p, use])) ** 2))
        rms[p] = float(spread) if np.isfinite(spread) else np.nan
        if not ok_sigma[p]:
            continue
        with np.errstate(under="ignore", over="ignore", invalid="ignore"):
            deviation = means[p, use] - np.median(means[p, use])
            # Scaled by sigma: no underflow for tiny values, no overflow for huge.
            scaled = deviation / sigma[p]
            floor = np.sqrt(np.mean(1.0 / counts[p, use]))
            ratio = np.sqrt(np.mean(scaled**2)) / floor
        excess[p] = float(ratio) if np.isfinite(ratio) else np.nan
    return excess, rms
