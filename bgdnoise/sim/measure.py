"""Measure stripes: their spectrum along the readout and how much the outputs share.

These check the simulator against ``QUALITY.md`` (most of the line-mean
stripe is common to the outputs; power per frequency falls as 1/f along the
slow axis) and describe any stripe image, e.g. what a correction left.
"""

from __future__ import annotations

import numpy as np

__all__ = ["band_means", "common_mode_fraction", "line_spectrum", "low_frequency_fraction",
           "spectral_slope"]  # fmt: skip


def band_means(stripes, axis: str, n_outputs: int = 1, where=None) -> np.ndarray:
    """Mean of each output's band of each line.

    Parameters
    ----------
    stripes : numpy.ndarray
        ``lead + (ny, nx)``.
    axis : {"rows", "columns"}
        Direction the lines run.
    n_outputs : int
        Bands of equal width along the line.
    where : numpy.ndarray of bool, optional
        Pixels to use (plane shape); default the finite ones.

    Returns
    -------
    numpy.ndarray
        ``lead + (n_lines, n_outputs)`` float64; NaN for a band with no pixel.
    """
    values = np.asarray(stripes, dtype=np.float64)
    if axis == "columns":
        values = np.swapaxes(values, -1, -2)
        where = None if where is None else np.swapaxes(where, -1, -2)
    use = np.isfinite(values) if where is None else np.broadcast_to(where, values.shape)
    use = use & np.isfinite(values)
    shape = values.shape[:-1] + (n_outputs, values.shape[-1] // n_outputs)
    total = np.where(use, values, 0.0).reshape(shape).sum(axis=-1)
    count = use.reshape(shape).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def line_spectrum(stripes, axis: str, where=None, *, window: bool = True):
    """Power spectrum of the line means along the slow axis.

    Parameters
    ----------
    stripes : numpy.ndarray
        ``(ny, nx)`` or ``(n, ny, nx)`` (spectra averaged over planes).
    axis : {"rows", "columns"}
        Direction the lines run.
    where : numpy.ndarray of bool, optional
        Pixels to use; lines with none are left out (set to the mean).
    window : bool
        Apply a Hann window (less leakage from the lowest frequencies).

    Returns
    -------
    freqs : numpy.ndarray
        Cycles per line, from ``1/n_lines`` to 0.5.
    power : numpy.ndarray
        Mean power per frequency (arbitrary units).
    """
    means = band_means(stripes, axis, 1, where)[..., 0]
    means = means.reshape((-1, means.shape[-1]))
    means = means - np.nanmean(means, axis=-1, keepdims=True)
    means = np.nan_to_num(means)
    taper = np.hanning(means.shape[-1]) if window else np.ones(means.shape[-1])
    power = np.mean(np.abs(np.fft.rfft(means * taper, axis=-1)) ** 2, axis=0)
    freqs = np.fft.rfftfreq(means.shape[-1])
    return freqs[1:], power[1:]


def spectral_slope(freqs, power, fmin: float = 1 / 256, fmax: float = 1 / 4) -> float:
    """Log-log slope of a power spectrum between ``fmin`` and ``fmax``.

    The spectrum is first averaged in bins of equal width in log frequency
    (four per octave), so every octave weighs the same; -1 is 1/f.

    Parameters
    ----------
    freqs, power : numpy.ndarray
        As from :func:`line_spectrum`.
    fmin, fmax : float
        Frequency range (cycles per line).

    Returns
    -------
    float
    """
    keep = (freqs >= fmin) & (freqs <= fmax) & (power > 0)
    logf, logp = np.log2(freqs[keep]), np.log(power[keep])
    bins = np.floor((logf - logf.min()) * 4).astype(int)
    counts = np.bincount(bins)
    filled = counts > 0
    x = np.bincount(bins, logf)[filled] / counts[filled]
    y = np.bincount(bins, logp)[filled] / counts[filled]
    return float(np.polyfit(x * np.log(2.0), y, 1)[0])


def low_frequency_fraction(stripes, axis: str, cutoff: float = 1 / 32, where=None) -> float:
    """Fraction of the line-mean stripe power below ``cutoff`` cycles per line."""
    freqs, power = line_spectrum(stripes, axis, where, window=False)
    return float(power[freqs < cutoff].sum() / power.sum())


def common_mode_fraction(stripes, axis: str, n_outputs: int, where=None) -> tuple[float, float]:
    """How much of the stripe the outputs share.

    From the per-output band means of every line: ``C``, the mean
    covariance between two outputs' band means (the common part), and
    ``V``, the mean variance of a band mean.

    Parameters
    ----------
    stripes : numpy.ndarray
        ``(ny, nx)`` or ``(n, ny, nx)`` (planes pooled).
    axis : {"rows", "columns"}
        Direction the lines run.
    n_outputs : int
        Outputs (at least 2).
    where : numpy.ndarray of bool, optional
        Pixels to use.

    Returns
    -------
    line : float
        Common fraction of the line-mean variance: ``C / (C + (V - C) / n_outputs)``.
    band : float
        Common fraction of a band mean's variance: ``C / V``.
    """
    if n_outputs < 2:
        raise ValueError("the common mode needs at least 2 outputs.")
    means = band_means(stripes, axis, n_outputs, where).reshape((-1, n_outputs))
    means = means[np.isfinite(means).all(axis=1)]
    cov = np.cov(means, rowvar=False)
    variance = np.trace(cov) / n_outputs
    common = (cov.sum() - np.trace(cov)) / (n_outputs * (n_outputs - 1))
    line = common / (common + (variance - common) / n_outputs)
    return float(line), float(common / variance)
