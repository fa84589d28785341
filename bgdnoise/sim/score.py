"""Score a 1/f correction against the truth of a simulation.

A correction of ``sim.data`` should leave ``scene + white`` plus at most a
constant (the pedestal it keeps). What it leaves besides, ``corrected -
scene - white``, is its error; ``data - scene - white`` (the injected
stripes) is the error of doing nothing. :func:`score` compares the two on
the good pixels (neither reference nor flagged DO_NOT_USE) along the lines
of the readout, and measures how much of the sources the correction took
away. See ``docs/simulate.rst``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .rate import SimulatedRate

__all__ = ["BAND_WIDTH", "Score", "band_edges", "score"]

#: Width of a detector output's band along the line (pixels): the unit of the band residual.
BAND_WIDTH = 512


@dataclass(frozen=True)
class Score:
    """How well a correction removed the simulated stripes.

    Attributes
    ----------
    line : float
        RMS over lines of the line mean of the error (after removing its
        median), divided by the same for the injected stripes: 0 is
        perfect, 1 a correction that did nothing, above 1 a correction that
        added stripes (usually by subtracting part of the scene).
    band : float
        The same per (line, band) mean, bands being the 512-pixel output
        bands along the line (:func:`band_edges`). Catches what varies
        within a line: per-output parts and offsets, 1/f within the line.
    bias : float
        Mean error over the source pixels (``sim.source_mask``) minus that
        over the faint sky (``sim.sky_mask``), in units of ``sim.sigma``:
        negative when the correction subtracted part of the sources.
    seconds : float or None
        Time the correction took per frame (plane), if given.
    """

    line: float
    band: float
    bias: float
    seconds: float | None = None

    def as_dict(self) -> dict:
        """The fields as a plain dict (JSON-ready floats)."""
        return {k: (None if v is None else float(v)) for k, v in asdict(self).items()}


def band_edges(length: int) -> np.ndarray:
    """Edges of the output bands of a line of ``length`` pixels.

    ``length // 512`` bands (at least 1) of equal width: the four outputs of
    a full-frame line, and four bands of 512 pixels on a 2048-pixel line
    read by one output (most of a stripe varies within a line).

    Parameters
    ----------
    length : int
        Pixels along the line.

    Returns
    -------
    numpy.ndarray
        int, ``n_bands + 1`` edges from 0 to ``length``.
    """
    n_bands = max(1, int(length) // BAND_WIDTH)
    return np.linspace(0, int(length), n_bands + 1).round().astype(np.int64)


def _as_lines(array: np.ndarray, axis: str) -> np.ndarray:
    """``(planes, n_lines, length)`` view of a ``lead + (ny, nx)`` array."""
    lines = np.swapaxes(array, -1, -2) if axis == "columns" else array
    return lines.reshape((-1,) + lines.shape[-2:])


def _band_means(values: np.ndarray, use: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Mean of ``values`` over ``use`` per plane, line and band: ``(planes, n_lines, n_bands)``."""
    total = np.add.reduceat(np.where(use, values, 0.0), edges[:-1], axis=-1)
    count = np.add.reduceat(use.astype(np.int64), edges[:-1], axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _rms_about_median(means: np.ndarray) -> float:
    """RMS of the finite means after removing each plane's median."""
    centred = means - np.nanmedian(means, axis=(1, 2), keepdims=True)
    finite = centred[np.isfinite(centred)]
    return float(np.sqrt(np.mean(finite**2))) if finite.size else float("nan")


def _ratio(numerator: float, denominator: float) -> float:
    if not np.isfinite(denominator) or denominator == 0:
        return float("nan")
    return numerator / denominator


def score(sim: SimulatedRate, corrected: np.ndarray, seconds: float | None = None) -> Score:
    """Score a correction of ``sim.data`` against the simulation's truth.

    Parameters
    ----------
    sim : SimulatedRate
        The simulation (2D rate or 3D rateints, lines along rows or
        columns as ``sim.axis`` says).
    corrected : numpy.ndarray
        The corrected data, shape of ``sim.data``. Its sky pedestal may be
        kept or not: a constant per plane does not count.
    seconds : float, optional
        Time per frame, carried into the result.

    Returns
    -------
    Score
        Line and band residual (0 perfect, 1 uncorrected) and source bias
        (sigma), from the pixels that are good (neither reference nor
        DO_NOT_USE) and finite in both ``sim.data`` and ``corrected``;
        planes (integrations) are pooled.

    Raises
    ------
    ValueError
        ``corrected`` does not have the shape of ``sim.data``.
    """
    corrected = np.asarray(corrected)
    if corrected.shape != sim.data.shape:
        raise ValueError(
            f"corrected has shape {corrected.shape}, the simulation's data {sim.data.shape}."
        )
    truth = sim.scene + sim.white.astype(np.float64)
    error = corrected.astype(np.float64) - truth
    injected = sim.data.astype(np.float64) - truth
    use = (sim.good & ~sim.reference) & np.isfinite(error) & np.isfinite(injected)

    lines_error, lines_injected = _as_lines(error, sim.axis), _as_lines(injected, sim.axis)
    lines_use = _as_lines(use, sim.axis)
    whole = np.array([0, lines_error.shape[-1]])
    bands = band_edges(lines_error.shape[-1])
    residual = {}
    for name, edges in (("line", whole), ("band", bands)):
        after = _rms_about_median(_band_means(lines_error, lines_use, edges))
        before = _rms_about_median(_band_means(lines_injected, lines_use, edges))
        residual[name] = _ratio(after, before)

    sources = use & sim.source_mask
    sky = use & sim.sky_mask
    if sources.any() and sky.any():
        bias = (error[sources].mean() - error[sky].mean()) / sim.sigma
    else:
        bias = float("nan")
    return Score(
        line=float(residual["line"]),
        band=float(residual["band"]),
        bias=float(bias),
        seconds=None if seconds is None else float(seconds),
    )
