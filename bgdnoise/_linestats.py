"""Line statistics of a correction for :mod:`bgdnoise.plot`: profile and spectrum.

Public through ``bgdnoise.plot`` (:func:`stripe_profile`,
:func:`line_power_spectrum`); plain numpy, no matplotlib.
"""

from __future__ import annotations

import itertools

import numpy as np

from . import _nanstats

__all__ = ["line_power_spectrum", "stripe_profile"]

AXES = ("rows", "columns")


def _lines(plane: np.ndarray, axis: str) -> np.ndarray:
    """The plane as ``(n_lines, line_length)``: a row per line of the correction."""
    if axis not in AXES:
        raise ValueError(f"axis must be 'rows' or 'columns', got {axis!r}.")
    return plane if axis == "rows" else plane.T


def _plane(data, name: str) -> np.ndarray:
    """A 2D plane as an array (the data itself, not a copy), checked."""
    plane = np.asarray(data)
    if plane.ndim != 2:
        raise ValueError(f"{name} must be a 2D plane, got shape {plane.shape}.")
    return plane


def stripe_profile(
    before: np.ndarray, after: np.ndarray, axis: str, n_outputs: int = 1
) -> np.ndarray:
    """The stripe level removed from each line, per readout output.

    The mean of ``before - after`` over each output's band of every line,
    ignoring non-finite pixels. The bands are those of the correction:
    ``n_outputs`` consecutive parts of the line, band ``b`` from
    ``b * length // n_outputs`` to ``(b + 1) * length // n_outputs``.

    Parameters
    ----------
    before, after : numpy.ndarray
        One plane ``(ny, nx)`` before and after the correction.
    axis : {"rows", "columns"}
        Direction the stripes run (one level per row or per column).
    n_outputs : int
        Readout outputs along the line.

    Returns
    -------
    numpy.ndarray
        float64, ``(n_outputs, n_lines)``: the mean removed per band and
        line, NaN where a band of a line has no finite pixel.

    Examples
    --------
    >>> before = np.zeros((3, 4)) + np.array([[1.0], [2.0], [3.0]])
    >>> stripe_profile(before, np.zeros((3, 4)), "rows", n_outputs=2)
    array([[1., 2., 3.],
           [1., 2., 3.]])
    """
    before, after = _plane(before, "before"), _plane(after, "after")
    if before.shape != after.shape:
        raise ValueError(f"before has shape {before.shape} but after has {after.shape}.")
    if isinstance(n_outputs, bool) or not isinstance(n_outputs, (int, np.integer)):
        raise TypeError(f"n_outputs must be a positive integer, got {n_outputs!r}.")
    removed = _lines(before.astype(np.float64) - after.astype(np.float64), axis)
    length = removed.shape[1]
    if not 1 <= n_outputs <= length:
        raise ValueError(f"n_outputs must be in [1, {length}] (the line length), got {n_outputs}.")
    edges = [b * length // n_outputs for b in range(n_outputs + 1)]
    return np.stack([_finite_mean(removed[:, lo:hi]) for lo, hi in itertools.pairwise(edges)])


def _finite_mean(lines: np.ndarray, usable: np.ndarray | None = None) -> np.ndarray:
    """Mean of each row over its usable finite values; NaN where there is none (no warning)."""
    finite = np.isfinite(lines) if usable is None else usable & np.isfinite(lines)
    return _nanstats.nanmean(np.where(finite, lines, np.nan), axis=1)


def line_power_spectrum(
    data: np.ndarray, axis: str, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Power spectrum of the line means along the slow axis.

    Each line's mean over its usable pixels (finite, and not in ``mask``)
    gives a series over the lines; its mean is subtracted (a line with no
    usable pixel counts as that mean) and ``|rfft|**2 / n_lines`` is its
    power. The zero frequency is left out, so the result plots on log axes.

    Parameters
    ----------
    data : numpy.ndarray
        One plane ``(ny, nx)``.
    axis : {"rows", "columns"}
        Direction the stripes run (one level per row or per column).
    mask : numpy.ndarray, optional
        bool plane, True where a pixel is left out (sources).

    Returns
    -------
    frequency : numpy.ndarray
        Cycles per line, from ``1 / n_lines`` to 0.5.
    power : numpy.ndarray
        Power of the line means at each frequency (data units squared).

    Examples
    --------
    >>> y = np.arange(64)
    >>> plane = np.repeat(np.sin(2 * np.pi * 4 * y / 64)[:, None], 8, axis=1)
    >>> frequency, power = line_power_spectrum(plane, "rows")
    >>> float(frequency[np.argmax(power)])
    0.0625
    """
    lines = _lines(_plane(data, "data"), axis).astype(np.float64)
    usable = None
    if mask is not None:
        mask = _plane(mask, "mask")
        if mask.shape != np.shape(data):
            raise ValueError(f"mask has shape {mask.shape} but the plane has {np.shape(data)}.")
        usable = ~_lines(mask.astype(bool), axis)
    means = _finite_mean(lines, usable)
    known = np.isfinite(means)
    series = np.where(known, means - (means[known].mean() if known.any() else 0.0), 0.0)
    power = np.abs(np.fft.rfft(series)) ** 2 / series.size
    frequency = np.fft.rfftfreq(series.size)
    return frequency[1:], power[1:]
