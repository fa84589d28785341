"""Random test data shared by the test modules."""

import numpy as np


def messy_lines(rng, shape, *, nan_fraction=0.05, outlier_fraction=0.05, ties=False):
    """Gaussian lines with NaNs, infs, zeros, outliers and optional ties."""
    data = rng.normal(5.0, 1.0, shape)
    if ties:
        data = np.round(data * 2.0) / 2.0  # many exactly equal values
    outliers = rng.random(shape) < outlier_fraction
    data[outliers] += rng.normal(0.0, 40.0, outliers.sum())
    data[rng.random(shape) < nan_fraction] = np.nan
    data[rng.random(shape) < 0.01] = np.inf
    data[rng.random(shape) < 0.01] = 0.0
    return data


#: The plain per-line correction (no source search, no background model):
#: what tests of the line estimator itself use.
PLAIN = {"mask_sources": False, "background_method": None}


def airy_pixels(lambda_over_d, cy, cx, n=9, sub=15, obstruction=0.11):
    """A pixel-integrated image of a circular aperture with a central obstruction.

    ``lambda_over_d`` in pixels; centred at ``(cy, cx)`` pixels from the
    middle pixel of an ``n`` x ``n`` stamp; ``sub`` x ``sub`` samples per pixel.
    """
    from scipy.special import j1

    offsets = (np.arange(sub) + 0.5) / sub - 0.5
    grid = (np.arange(n)[:, None] - n // 2 + offsets[None, :]).ravel()
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    u = np.pi * np.hypot(yy - cy, xx - cx) / lambda_over_d
    u = np.where(u == 0, 1e-12, u)
    e = obstruction
    field = (2 * j1(u) / u - e * e * 2 * j1(e * u) / (e * u)) / (1 - e * e)
    return (field**2).reshape(n, sub, n, sub).sum(axis=(1, 3))
