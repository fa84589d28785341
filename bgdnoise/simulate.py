"""Simulated JWST frames and products with a known truth: ``bgdnoise.simulate``.

Users test their own settings on them; the tests, the benchmarks and
``bgdnoise demo`` use them too. A frame is sky + white noise + sources +
stripes, where the stripes are a per-line offset (the shared 1/f part),
optionally a per-output offset and per-output-line 1/f part, and an
even/odd column offset per output. The truth is returned beside the data, so
a correction is scored against what was injected, never against the tool's
own estimate. :func:`make_product` wraps a frame into a stdatamodels
product (``_rate``, ``_rateints``, ``_cal`` or ``_ramp``) with DQ and
reference pixels. Nothing here is needed to correct data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The realistic simulator (1/f clocked through the readout, ramps fitted to
# rates, scenes that fill the lines) lives in bgdnoise.sim; its entry points
# are part of this module's public face too.
from .sim import SCENES, NoiseModel, Readout, SimulatedRate, make_scene, simulate_rate

__all__ = ["SCENES", "NoiseModel", "Readout", "SimulatedRate", "SyntheticFrame",
           "SyntheticProduct", "make_frame", "make_product", "make_scene", "simulate_rate",
           "stripe_residual_rms"]  # fmt: skip


@dataclass
class SyntheticFrame:
    """A synthetic frame and what was injected into it.

    Attributes
    ----------
    data : numpy.ndarray
        The striped image(s), shape ``lead + (ny, nx)``.
    stripes : numpy.ndarray
        The injected stripe pattern, float64, same shape as ``data``.
    sources : numpy.ndarray
        The injected source flux, float64, shape ``(ny, nx)`` (the same
        sources in every plane).
    source_mask : numpy.ndarray
        True where the source flux exceeds ``mask_level * sigma``.
    sky : float
        The flat sky level.
    sigma : float
        The white-noise standard deviation.
    axis : str
        ``"rows"`` or ``"columns"``: the direction the stripes run.
    """

    data: np.ndarray
    stripes: np.ndarray
    sources: np.ndarray
    source_mask: np.ndarray
    sky: float
    sigma: float
    axis: str


def _sources(shape, fraction, sigma, rng, mask_level):
    """Gaussian blobs of random size and brightness until ``fraction`` is covered."""
    ny, nx = shape
    flux = np.zeros(shape)
    if fraction <= 0:
        return flux, np.zeros(shape, dtype=bool)
    covered = 0.0
    while covered < fraction:
        # Each source covers ~100-1000 pixels: add a few at a time, re-measure.
        batch = max(1, int(ny * nx * (fraction - covered) / 1500))
        for _ in range(batch):
            width = rng.uniform(0.8, 4.0)
            # Bright enough to matter, most of them faint: a power law in peak.
            peak = sigma * 3.0 * (1.0 + rng.pareto(1.2))
            peak = min(peak, sigma * 5e3)
            half = int(np.ceil(width * np.sqrt(2 * np.log(max(peak / (0.02 * sigma), 2.0)))))
            cy, cx = rng.uniform(0, ny), rng.uniform(0, nx)
            y0, y1 = max(0, int(cy) - half), min(ny, int(cy) + half + 1)
            x0, x1 = max(0, int(cx) - half), min(nx, int(cx) + half + 1)
            if y1 <= y0 or x1 <= x0:
                continue
            yy, xx = np.mgrid[y0:y1, x0:x1]
            r2 = (yy - cy) ** 2 + (xx - cx) ** 2
            flux[y0:y1, x0:x1] += peak * np.exp(-0.5 * r2 / width**2)
        covered = np.mean(flux > mask_level * sigma)
    return flux, flux > mask_level * sigma


def make_frame(
    shape: tuple[int, ...] = (2048, 2048),
    axis: str = "rows",
    *,
    sigma: float = 0.01,
    sky: float = 0.25,
    line_rms: float | None = None,
    n_outputs: int = 1,
    output_offset_rms: float = 0.0,
    output_line_rms: float = 0.0,
    odd_even_rms: float = 0.0,
    source_fraction: float = 0.3,
    mask_level: float = 0.1,
    reference_border: int = 0,
    dtype=np.float32,
    seed: int = 0,
) -> SyntheticFrame:
    """Make a striped frame (or a stack of them) with a known truth.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` or ``lead + (ny, nx)``; every plane gets its own noise
        and stripes, the same sources.
    axis : {"rows", "columns"}
        Direction the stripes run.
    sigma : float
        White-noise standard deviation (DN/s).
    sky : float
        Flat sky level.
    line_rms : float, optional
        RMS of the per-line offsets; default ``2 * sigma``.
    n_outputs : int
        Readout outputs: bands of equal width along the line.
    output_offset_rms, output_line_rms : float
        RMS of a constant offset per output and of an extra per-line offset
        per output.
    odd_even_rms : float
        RMS of the even/odd column offset of each output.
    source_fraction : float
        Fraction of pixels covered by sources (flux above ``mask_level *
        sigma``).
    reference_border : int
        Width of a border of reference pixels (0 signal, same stripes), as
        the 4-pixel border of JWST full frames.
    dtype : numpy dtype
        dtype of ``data``.
    seed : int
        Seed of the random generator; equal seeds give equal frames.

    Returns
    -------
    SyntheticFrame
    """
    if axis not in ("rows", "columns"):
        raise ValueError(f"axis must be 'rows' or 'columns', got {axis!r}.")
    rng = np.random.default_rng(seed)
    lead, (ny, nx) = tuple(shape[:-2]), tuple(shape[-2:])
    if line_rms is None:
        line_rms = 2.0 * sigma
    sources, source_mask = _sources((ny, nx), source_fraction, sigma, rng, mask_level)
    n_lines, length = (ny, nx) if axis == "rows" else (nx, ny)
    edges = [b * length // n_outputs for b in range(n_outputs + 1)]
    n_planes = int(np.prod(lead)) if lead else 1
    stripes = np.empty((n_planes, n_lines, length))
    for p in range(n_planes):
        pattern = np.repeat(rng.normal(0.0, line_rms, (n_lines, 1)), length, axis=1)
        for b in range(n_outputs):
            band = slice(edges[b], edges[b + 1])
            pattern[:, band] += rng.normal(0.0, output_offset_rms) if output_offset_rms else 0.0
            if output_line_rms:
                pattern[:, band] += rng.normal(0.0, output_line_rms, (n_lines, 1))
            if odd_even_rms:
                offset = rng.normal(0.0, odd_even_rms)
                positions = np.arange(edges[b], edges[b + 1])
                pattern[:, band] += np.where(positions % 2 == 0, offset, -offset)
        stripes[p] = pattern
    if axis == "columns":
        stripes = stripes.transpose(0, 2, 1)
    stripes = stripes.reshape(lead + (ny, nx))
    noise = rng.normal(0.0, sigma, lead + (ny, nx))
    data = sky + sources + noise + stripes
    if reference_border:
        b = reference_border
        ref = np.zeros((ny, nx), dtype=bool)
        ref[:b, :] = ref[-b:, :] = ref[:, :b] = ref[:, -b:] = True
        # Reference pixels see no light, only the readout noise and stripes.
        data = np.where(ref, noise + stripes, data)
    return SyntheticFrame(
        data=np.ascontiguousarray(data, dtype=dtype),
        stripes=stripes,
        sources=sources,
        source_mask=source_mask,
        sky=sky,
        sigma=sigma,
        axis=axis,
    )


def stripe_residual_rms(
    model: np.ndarray, stripes: np.ndarray, where: np.ndarray | None = None
) -> np.ndarray:
    """RMS of (subtracted model - injected stripes) over each plane.

    The plane mean of the difference is removed first: a correction that
    keeps the sky pedestal is free to be off by a constant. Since both are
    constant along each line (within a band and parity), this is the RMS of
    the per-line level error, weighted by pixels.

    Parameters
    ----------
    model : numpy.ndarray
        What was subtracted, shape ``lead + (ny, nx)``.
    stripes : numpy.ndarray
        What was injected, same shape.
    where : numpy.ndarray of bool, optional
        Pixels to include (plane shape or full shape), e.g. to leave out
        reference pixels that are not corrected.

    Returns
    -------
    numpy.ndarray
        Shape ``lead``: the RMS residual per plane.
    """
    diff = np.asarray(model, dtype=np.float64) - np.asarray(stripes, dtype=np.float64)
    if where is None:
        where = np.ones(diff.shape[-2:], dtype=bool)
    where = np.broadcast_to(where, diff.shape)
    count = where.sum(axis=(-2, -1))
    mean = np.where(where, diff, 0.0).sum(axis=(-2, -1)) / count
    centred = diff - mean[..., None, None]
    return np.sqrt(np.where(where, centred**2, 0.0).sum(axis=(-2, -1)) / count)


# The products built on these frames (a module of their own for size).
from ._synthetic_products import SyntheticProduct, make_product  # noqa: E402

SyntheticProduct.__module__ = make_product.__module__ = __name__  # documented here
