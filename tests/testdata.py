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
