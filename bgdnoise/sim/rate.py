"""``simulate_rate``: a rate (or rateints) product's arrays with their truth."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..dqflags import DO_NOT_USE, REFERENCE_PIXEL
from .noise import stripes_1f, white_sigma
from .readout import NoiseModel, Readout
from .scenes import SCENES, Scene, make_scene

__all__ = ["SimulatedRate", "reference_pixels", "simulate_rate"]

DEAD = 1024
HOT = 2048
#: Full side of a HAWAII-2RG detector and its reference border.
DETECTOR_SIDE, BORDER = 2048, 4


@dataclass
class SimulatedRate:
    """A simulated ``_rate`` (2D) or ``_rateints`` (3D) and everything in it.

    On every pixel, ``data == scene + white + stripes`` up to float32
    rounding, except where bad pixels and (as jwst writes rates, unless
    simulated with ``reference_values="read"``) reference pixels are NaN.

    Attributes
    ----------
    data : numpy.ndarray
        float32 DN/s, ``(ny, nx)`` or ``(nints, ny, nx)``; NaN on bad
        pixels (DO_NOT_USE without REFERENCE_PIXEL) and on the reference
        pixels, as jwst writes them (read noise and stripes there with
        ``reference_values="read"``).
    dq : numpy.ndarray
        uint32, shape of ``data``: REFERENCE_PIXEL | DO_NOT_USE on the
        reference border, DO_NOT_USE | HOT or DEAD on bad pixels.
    err : numpy.ndarray
        float32 ``(ny, nx)``: the white-noise standard deviation per pixel.
    scene : numpy.ndarray
        float64 ``(ny, nx)``: sky + sources (0 on reference pixels, which see no light).
    white : numpy.ndarray
        float32, shape of ``data``: the white noise drawn (read + shot noise).
    stripes : numpy.ndarray
        float32, shape of ``data``: the 1/f stripes, output offsets and
        odd/even terms that a correction should remove.
    sigma : float
        White noise of a sky pixel, DN/s (what the scenes' brightness is scaled to).
    sky : float
        The flat sky level, DN/s.
    source_mask, sky_mask : numpy.ndarray
        ``(ny, nx)`` bool: sources above 1 sigma; faint sky (sources below
        0.02 sigma); both False on reference pixels.
    readout : Readout
        Geometry, timing and ramp used.
    noise : NoiseModel
        Noise amplitudes used.
    scene_name : str
        The scene's name.
    seed : int
        The seed.
    """

    data: np.ndarray
    dq: np.ndarray
    err: np.ndarray
    scene: np.ndarray
    white: np.ndarray
    stripes: np.ndarray
    sigma: float
    sky: float
    source_mask: np.ndarray
    sky_mask: np.ndarray
    readout: Readout
    noise: NoiseModel
    scene_name: str
    seed: int

    @property
    def axis(self) -> str:
        """``"rows"`` or ``"columns"``: pass it to :func:`bgdnoise.correct_array`."""
        return self.readout.axis

    @property
    def n_outputs(self) -> int:
        """Outputs (amplifiers) of the readout."""
        return self.readout.n_outputs

    @property
    def reference(self) -> np.ndarray:
        """``(ny, nx)`` bool: reference pixels."""
        plane = self.dq if self.dq.ndim == 2 else self.dq[0]
        return (plane & np.uint32(REFERENCE_PIXEL)) != 0

    @property
    def good(self) -> np.ndarray:
        """``(ny, nx)`` bool: pixels with data (neither reference nor bad)."""
        plane = self.dq if self.dq.ndim == 2 else self.dq[0]
        return (plane & np.uint32(DO_NOT_USE)) == 0

    def to_hdulist(self, primary=None, sci=None, **keywords):
        """The product as an HDUList; see :func:`~bgdnoise.sim.to_hdulist`."""
        from .products import to_hdulist

        return to_hdulist(self, primary, sci, **keywords)

    def save(self, path, primary=None, sci=None, *, overwrite=False, **keywords) -> Path:
        """Write the product to ``path``; see :func:`~bgdnoise.sim.write_product`."""
        from .products import write_product

        return write_product(self, path, primary, sci, overwrite=overwrite, **keywords)


def reference_pixels(shape: tuple[int, int], border="auto") -> np.ndarray:
    """Where the reference pixels of an image are.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)``.
    border : "auto", int or None
        ``"auto"``: along every axis that spans the whole detector (2048
        pixels), the 4 pixels at both ends: the border of a full frame, the
        4 + 4 reference pixels of every row of a 256x2048 NIRCam grism
        subarray, the 4 + 4 reference columns of a NIRISS SOSS strip. An
        int: that border on all four sides. None or 0: none.

    Returns
    -------
    numpy.ndarray
        bool ``(ny, nx)``.
    """
    ref = np.zeros(shape, bool)
    if border == "auto":
        ends = np.r_[0:BORDER, DETECTOR_SIDE - BORDER : DETECTOR_SIDE]
        if shape[0] == DETECTOR_SIDE:
            ref[ends, :] = True
        if shape[1] == DETECTOR_SIDE:
            ref[:, ends] = True
    elif border:
        b = int(border)
        ref[:b] = ref[-b:] = ref[:, :b] = ref[:, -b:] = True
    return ref


def _data_quality(reference, rng, bad_fraction) -> tuple[np.ndarray, np.ndarray]:
    """DQ plane and bad-pixel mask: reference border and a few hot or dead pixels."""
    dq = np.where(reference, np.uint32(REFERENCE_PIXEL | DO_NOT_USE), np.uint32(0))
    bad = (rng.random(reference.shape) < bad_fraction) & ~reference
    hot = rng.random(reference.shape) < 0.5
    dq[bad & hot] |= np.uint32(DO_NOT_USE | HOT)
    dq[bad & ~hot] |= np.uint32(DO_NOT_USE | DEAD)
    return dq, bad


def _resolve_readout(scene, shape, axis, n_outputs, readout) -> tuple[tuple, Readout]:
    """Shape and readout from the arguments, falling back to the scene's defaults."""
    default_shape, default_axis, default_outputs = (None, "rows", 1)
    if isinstance(scene, str):
        if scene not in SCENES:
            raise ValueError(f"unknown scene {scene!r}; known: {', '.join(SCENES)}.")
        _, default_shape, default_axis, default_outputs = SCENES[scene]
    else:
        default_shape = np.shape(scene)
    shape = tuple(shape or default_shape)
    if readout is None:
        readout = Readout.for_axis(axis or default_axis, n_outputs or default_outputs)
    elif (axis or readout.axis) != readout.axis or (n_outputs or readout.n_outputs) != (
        readout.n_outputs
    ):
        raise ValueError("axis and n_outputs contradict the readout given; give one or the other.")
    readout.line_geometry(shape)  # checks that the outputs divide the line
    return shape, readout


def _integrations(shape, readout, noise, flux, err, seeds):
    """White noise, stripes and data of each integration, float32 ``(nints, ny, nx)``."""
    data = np.empty((len(seeds),) + shape, np.float32)
    white, stripes = np.empty_like(data), np.empty_like(data)
    for i, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)
        stripes[i] = stripes_1f(shape, readout, noise, rng)
        white[i] = rng.standard_normal(shape) * err
        # From the rounded truths, so that data == scene + white + stripes holds.
        data[i] = flux + white[i].astype(np.float64) + stripes[i]
    return data, white, stripes


def simulate_rate(
    scene: str | np.ndarray = "sparse",
    shape: tuple[int, int] | None = None,
    axis: str | None = None,
    n_outputs: int | None = None,
    nints: int | None = None,
    seed: int = 0,
    *,
    readout: Readout | None = None,
    noise: NoiseModel | None = None,
    sky: float = 0.2,
    reference="auto",
    reference_values: Literal["nan", "read"] = "nan",
    bad_fraction: float = 1e-3,
    scene_options: dict | None = None,
) -> SimulatedRate:
    """Simulate a rate or rateints image with 1/f noise clocked through the readout.

    Parameters
    ----------
    scene : str or numpy.ndarray
        A scene of :data:`bgdnoise.sim.SCENES` (``"empty"``, ``"sparse"``,
        ``"crowded"``, ``"galaxy"``, ``"sky_gradient"``,
        ``"sky_gradient_across"``, ``"grism_trace"``, ``"curved_trace"``,
        ``"nebula"``, ``"edge_on_disk"``, ``"galaxy_cluster"``,
        ``"bright_star"``)
        or your own ``(ny, nx)`` image in DN/s, sky included (its median
        is taken as the sky, which sets ``sigma`` and the sky mask).
    shape : tuple of int, optional
        ``(ny, nx)``; default the scene's (2048x2048, 256x2048 for traces).
    axis : {"rows", "columns"}, optional
        Lines along rows (NIRCam) or columns (NIRISS, NIRSpec, FGS);
        default the scene's (columns for ``curved_trace``).
    n_outputs : int, optional
        Outputs; default 4 (1 for ``curved_trace``).
    nints : int, optional
        Integrations: a ``(nints, ny, nx)`` time series of the same scene
        with independent noise. None: one 2D rate.
    seed : int
        Equal seeds give equal products; the scene and each integration
        draw from their own streams, so integration 0 is the same whatever
        ``nints``.
    readout : Readout, optional
        Full control of axes, read directions, outputs and ramp (then
        leave ``axis`` and ``n_outputs`` out).
    noise : NoiseModel, optional
        Noise amplitudes; default NGHXRG's.
    sky : float
        Sky level, DN/s (for a named scene).
    reference : "auto", int or None
        Reference pixels; see :func:`reference_pixels`.
    reference_values : {"nan", "read"}
        What ``data`` holds on the reference pixels. ``"nan"``: NaN, as
        jwst writes a ``_rate``/``_rateints`` (the gain reference file has
        no gain there, so ramp fitting flags them ``DO_NOT_USE`` and leaves
        no slope). ``"read"``: their read noise and stripes, as they are
        in the groups of a ``_ramp`` (or in a rate made from those without
        that flag); ``white`` and ``stripes`` hold them either way.
    bad_fraction : float
        Fraction of pixels flagged bad (NaN in ``data``).
    scene_options : dict, optional
        Keywords of the scene function (see :func:`make_scene`).

    Returns
    -------
    SimulatedRate
    """
    if reference_values not in ("nan", "read"):
        raise ValueError(f"reference_values must be 'nan' or 'read', not {reference_values!r}.")
    shape, readout = _resolve_readout(scene, shape, axis, n_outputs, readout)
    noise = noise or NoiseModel()
    seeds = np.random.SeedSequence(seed).spawn(2 + (nints or 1))
    sigma = float(white_sigma(sky, readout, noise, shape))
    if isinstance(scene, str):
        made = make_scene(
            scene, shape, sigma=sigma, sky=sky, seed=seeds[0], **(scene_options or {})
        )
    else:
        image = np.asarray(scene, dtype=np.float64)
        sky = float(np.median(image))
        made = Scene("user", image - sky, sky, float(white_sigma(sky, readout, noise, shape)))
    reference = reference_pixels(shape, reference)
    dq, bad = _data_quality(reference, np.random.default_rng(seeds[1]), bad_fraction)
    flux = np.where(reference, 0.0, made.image)
    err = white_sigma(flux, readout, noise, shape)
    data, white, stripes = _integrations(shape, readout, noise, flux, err, seeds[2:])
    data[:, bad] = np.nan
    if reference_values == "nan":
        data[:, reference] = np.nan
    if nints is None:
        data, white, stripes = data[0], white[0], stripes[0]
    else:
        dq = np.broadcast_to(dq, data.shape).copy()
    return SimulatedRate(
        data=data, dq=dq, err=err.astype(np.float32), scene=flux, white=white,
        stripes=stripes, sigma=made.sigma, sky=made.sky,
        source_mask=made.source_mask() & ~reference, sky_mask=made.sky_mask() & ~reference,
        readout=readout, noise=noise,
        scene_name=made.name, seed=seed,
    )  # fmt: skip
