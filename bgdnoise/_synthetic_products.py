"""Synthetic stdatamodels products on the frames of :mod:`bgdnoise.simulate`.

Public through ``bgdnoise.simulate`` (:func:`make_product`,
:class:`SyntheticProduct`); see its docstring.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .dqflags import DO_NOT_USE, REFERENCE_PIXEL, SATURATED
from .instruments import DETECTORS
from .simulate import make_frame

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
