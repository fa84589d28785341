"""The common mode stage: each output's level as the line's level plus a shrunk own part.

The outputs of a full frame are read at the same time, so most of a line's
stripe is common to all of them; only a smaller part is each output's own.
A group's measured level (band, parity) is ``c + O + q + e``: the line's
common level ``c`` (the precision-weighted mean of its groups), the group's
constant offset ``O``, its own stripe ``q`` and the measuring error ``e``,
whose variance is known from the white noise and the pixels the group kept.
The level used is ``c + O + w q_measured`` with the Wiener weight
``w = tau^2 / (tau^2 + var(e))``, ``tau^2`` being the variance of the own part
over the lines. A group with many usable pixels keeps its own level; a
group mostly masked by a source takes the line's common level, measured in
the other outputs. See docs/algorithm.rst.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np

__all__ = ["MEDIAN_EFFICIENCY", "share_common_mode"]

# Variance of a median over that of a mean of Gaussian values is pi/2; the
# clipped median sits close to it.
MEDIAN_EFFICIENCY = np.pi / 2
# Lines a group needs to estimate its offset and own variance.
_MIN_LINES = 16
# The MAD of a Gaussian times this is its standard deviation.
_MAD_TO_SIGMA = 1.4826


def share_common_mode(measured, sigma: np.ndarray):
    """``measured`` with each group's level pulled toward its line's common level.

    Parameters
    ----------
    measured : bgdnoise.stages.Measured
        Levels and counts ``(P, n_lines, n_groups)`` and the pixels a group
        needs (groups with fewer are left for the band fallback).
    sigma : numpy.ndarray
        ``(P,)`` white-noise dispersion of a pixel in each plane.

    Returns
    -------
    bgdnoise.stages.Measured
        The same, with new ``raw`` levels; unchanged with one group per
        line or a dispersion that is not a positive finite number.
    """
    raw, counts = measured.raw, measured.counts
    if raw.shape[2] == 1:
        return measured
    ok = (counts >= measured.needed) & np.isfinite(raw)
    error_var = np.full(raw.shape, np.inf)
    for p in range(raw.shape[0]):
        if np.isfinite(sigma[p]) and sigma[p] > 0:
            error_var[p] = MEDIAN_EFFICIENCY * sigma[p] ** 2 / np.maximum(counts[p], 1)
    ok &= np.isfinite(error_var)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        common, common_var = _common_level(raw, ok, error_var)
        own = raw - common[:, :, None]
        own_error_var = np.maximum(error_var - common_var[:, :, None], 0.0)
        ok &= np.isfinite(own)
        offset = _group_offsets(own, ok)
        own -= offset[:, None, :]
        tau2 = _own_variance(own, own_error_var, ok)
        weight = tau2[None, None, :] / (tau2[None, None, :] + own_error_var)
        shared = common[:, :, None] + offset[:, None, :] + weight * own
    ok &= np.isfinite(shared)
    return replace(measured, raw=np.where(ok, shared, raw))


def _common_level(raw, ok, error_var):
    """``(P, n_lines)`` precision-weighted mean of a line's groups, and its variance."""
    precision = np.where(ok, 1.0 / error_var, 0.0)
    total = precision.sum(axis=2)
    common = (precision * np.where(ok, raw, 0.0)).sum(axis=2) / total
    return np.where(total > 0, common, np.nan), 1.0 / total


def _group_offsets(own, ok):
    """``(P, n_groups)`` median over lines of each group's own part (0 if too few)."""
    offset = np.zeros(own.shape[::2])
    for p in range(own.shape[0]):
        for g in range(own.shape[2]):
            usable = ok[p, :, g]
            if usable.sum() >= _MIN_LINES:
                offset[p, g] = np.median(own[p, usable, g])
    return offset


def _own_variance(own, own_error_var, ok):
    """``(n_groups,)`` variance of each group's own part, pooled over the planes.

    The robust spread of the measured own part, less the typical measuring
    error; 0 where it is all error. A group without enough lines gets
    ``inf``: its own level is kept.
    """
    tau2 = np.full(own.shape[2], np.inf)
    for g in range(own.shape[2]):
        usable = ok[:, :, g]
        if usable.sum() < _MIN_LINES:
            continue
        values = own[:, :, g][usable]
        spread = _MAD_TO_SIGMA * np.median(np.abs(values - np.median(values)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            tau2[g] = max(0.0, spread**2 - float(np.median(own_error_var[:, :, g][usable])))
    return tau2
