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
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .dqflags import DO_NOT_USE, REFERENCE_PIXEL, SATURATED
from .instruments import DETECTORS

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


_EXP_TYPES = {
    "NIRCAM": "NRC_IMAGE",
    "NIRISS": "NIS_IMAGE",
    "NIRSPEC": "NRS_FIXEDSLIT",
    "FGS": "FGS_IMAGE",
    "MIRI": "MIR_IMAGE",
}
# A valid (schema) SUBARRAY name per instrument for non-full-frame shapes.
_SUBARRAYS = {
    "NIRCAM": "SUB640",
    "NIRISS": "SUB256",
    "NIRSPEC": "SUB512",
    "FGS": "SUB128CNTR",
    "MIRI": "SUB256",
}


@dataclass
class SyntheticProduct:
    """A synthetic product and its truth.

    Attributes
    ----------
    model : stdatamodels DataModel
        ImageModel (``_rate``), CubeModel (``_rateints``) or RampModel.
    stripes : numpy.ndarray
        Injected stripes, shape of a rate plane stack (for a ramp: of the
        per-group increments, ``(nints, ngroups - 1, ny, nx)``).
    rate : numpy.ndarray
        For a ramp: the true slope (sky + sources) per pixel, DN/group.
    axis : str
        The direction the injected stripes run.
    reference : numpy.ndarray
        True at reference pixels.
    """

    model: object
    stripes: np.ndarray
    rate: np.ndarray | None
    axis: str
    reference: np.ndarray

    def save(self, path: str | Path) -> Path:
        """Write the model to ``path`` (FITS) and return it."""
        path = Path(path)
        self.model.save(str(path))
        return path


def _reference_mask(shape, subarray):
    ref = np.zeros(shape, dtype=bool)
    if subarray == "FULL":
        ref[:4, :] = ref[-4:, :] = ref[:, :4] = ref[:, -4:] = True
    return ref


class _Layout(NamedTuple):
    """A product's instrument, detector axes, SUBARRAY, outputs and stripe direction."""

    instrument: str
    fast: int
    slow: int
    subarray: str
    n_outputs: int
    axis: str


def _layout(detector, shape, subarray, n_outputs):
    """The :class:`_Layout` of a product, defaults filled in."""
    instrument, fast, slow = DETECTORS[detector]
    if subarray is None:
        subarray = "FULL" if shape in ((2048, 2048), (1024, 1032)) else _SUBARRAYS[instrument]
    if n_outputs is None:
        n_outputs = 4 if subarray == "FULL" else 1
    axis = "rows" if abs(fast) == 1 else "columns"
    if instrument == "MIRI":
        axis, n_outputs = "columns", 1
    return _Layout(instrument, fast, slow, subarray, n_outputs, axis)


def _pixel_dq(reference, rng):
    """DQ of a plane: reference pixels, and 0.1% dead pixels (DO_NOT_USE)."""
    dq = np.where(reference, np.uint32(REFERENCE_PIXEL | DO_NOT_USE), np.uint32(0))
    dead = rng.random(reference.shape) < 0.001
    dq[dead] |= DO_NOT_USE
    return dq, dead


def _ramp_model(frame, reference, dq, rng, counts):
    """A RampModel whose group differences are the frame's planes.

    ``counts`` is ``(nints, ngroups)``. Returns the model and the true rate
    (sky + sources, 0 at reference pixels) per pixel.
    """
    from stdatamodels.jwst import datamodels

    nints, ngroups = counts
    increments = np.where(reference, frame.data - frame.sky - frame.sources, frame.data)
    rate_truth = np.where(reference, 0.0, frame.sky + frame.sources)
    first = rng.normal(0.0, frame.sigma, (nints, 1) + reference.shape)
    data = np.concatenate([first, first + np.cumsum(increments, axis=1)], axis=1)
    model = datamodels.RampModel(data=data.astype(np.float32))
    groupdq = np.zeros(data.shape, np.uint8)
    # The brightest pixels saturate after the second group.
    bright = rate_truth > np.quantile(rate_truth, 0.999)
    groupdq[:, 2:, bright] = SATURATED
    model.groupdq = groupdq
    model.pixeldq = dq
    model.meta.exposure.ngroups = ngroups
    model.meta.exposure.nints = nints
    return model, rate_truth


def _rate_model(kind, frame, reference, dq, dead):
    """An ImageModel (``rate``, ``cal``) or CubeModel (``rateints``) of the frame.

    Reference pixels are 0, dead pixels NaN; ``err`` is the frame's sigma.
    """
    from stdatamodels.jwst import datamodels

    data = np.where(reference, 0.0, frame.data).astype(np.float32)
    data[np.broadcast_to(dead, data.shape)] = np.nan
    if kind == "rateints":
        model = datamodels.CubeModel(data=data)
        model.dq = np.broadcast_to(dq, data.shape).copy()
    else:
        model = datamodels.ImageModel(data=data)
        model.dq = dq
    model.err = np.full(data.shape, frame.sigma, np.float32)
    if kind == "cal":
        model.meta.cal_step.flat_field = "COMPLETE"
    return model


def _set_meta(model, detector, layout, exp_type, write_axes):
    """Instrument, exposure, subarray and observation keywords of a product."""
    meta = model.meta
    meta.instrument.name = layout.instrument
    meta.instrument.detector = detector
    meta.exposure.type = exp_type or _EXP_TYPES[layout.instrument]
    meta.exposure.noutputs = layout.n_outputs
    meta.subarray.name = layout.subarray
    meta.subarray.xstart, meta.subarray.ystart = 1, 1
    ny, nx = model.data.shape[-2:]
    meta.subarray.xsize, meta.subarray.ysize = nx, ny
    if write_axes:
        meta.subarray.fastaxis, meta.subarray.slowaxis = layout.fast, layout.slow
    meta.observation.date = "2026-01-01"
    meta.observation.time = "00:00:00"


def make_product(
    detector: str = "NRCA1",
    kind: str = "rate",
    shape: tuple[int, int] = (2048, 2048),
    *,
    subarray: str | None = None,
    n_outputs: int | None = None,
    nints: int = 2,
    ngroups: int = 5,
    exp_type: str | None = None,
    sigma: float = 0.01,
    source_fraction: float = 0.2,
    write_axes: bool = True,
    seed: int = 0,
):
    """Build a synthetic striped product for one detector.

    Parameters
    ----------
    detector : str
        A detector name of :data:`bgdnoise.instruments.DETECTORS`.
    kind : {"rate", "rateints", "cal", "ramp"}
        ImageModel, CubeModel, ImageModel marked flat-fielded, RampModel.
    shape : tuple of int
        ``(ny, nx)`` of a plane.
    subarray : str, optional
        SUBARRAY keyword; default FULL for a full frame, else a subarray of the instrument.
    n_outputs : int, optional
        NOUTPUTS keyword and the number of injected output bands; default
        4 for FULL, else 1.
    nints, ngroups : int
        Integrations (rateints, ramp) and groups (ramp).
    exp_type : str, optional
        EXP_TYPE; default the instrument's imaging type.
    sigma : float
        White noise (DN/s for rates, DN per group difference for ramps).
    source_fraction : float
        Fraction of pixels covered by sources.
    write_axes : bool
        Write FASTAXIS/SLOWAXIS (False tests the detector-table fallback).
    seed : int
        Random seed.

    Returns
    -------
    SyntheticProduct
    """
    ny, nx = shape
    layout = _layout(detector, shape, subarray, n_outputs)
    n_outputs, axis = layout.n_outputs, layout.axis
    lead = {"rate": (), "cal": (), "rateints": (nints,), "ramp": (nints, ngroups - 1)}[kind]
    frame = make_frame(
        lead + (ny, nx), axis, sigma=sigma, n_outputs=n_outputs,
        output_offset_rms=2 * sigma if n_outputs > 1 else 0.0,
        source_fraction=source_fraction, seed=seed, dtype=np.float64,
    )  # fmt: skip
    reference = _reference_mask((ny, nx), layout.subarray)
    rng = np.random.default_rng(seed + 1)
    dq, dead = _pixel_dq(reference, rng)
    if kind == "ramp":
        model, rate_truth = _ramp_model(frame, reference, dq, rng, (nints, ngroups))
        stripes = frame.stripes
    else:
        model, rate_truth = _rate_model(kind, frame, reference, dq, dead), None
        stripes = np.where(reference, 0.0, frame.stripes)
    _set_meta(model, detector, layout, exp_type, write_axes)
    return SyntheticProduct(model, stripes, rate_truth, axis, reference)
