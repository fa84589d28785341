"""Source masks from the image itself.

Sources are found on the residual of a rough destriping at more than one
scale: single pixels and 3x3 boxes for stars and PSF wings, boxes of 9, 33
and 65 pixels for low-surface-brightness emission that no single pixel
shows. Each scale's threshold is a number of robust standard deviations of
that scale's own map (white noise and what striping is left both average
down with the box, and the map measures what remains), so no noise model
has to be assumed. Detections are dilated and the rough destriping is
redone without them, a few times. See docs/algorithm.rst.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from . import _kernels
from ._kernels import mask as _mask_kernels
from ._prepare import Prepared, prepare

__all__ = ["DETECTION_SCALES", "PIXEL_SCALES", "detect", "source_mask"]

#: (box half-width, threshold in robust sigmas of the box-mean map): pixel,
#: 3x3, 9x9, 33x33 and 65x65 boxes.
DETECTION_SCALES = ((0, 4.0), (1, 3.0), (4, 3.0), (16, 3.0), (32, 3.0))
#: The compact scales alone: what is left once a background follows the rest.
PIXEL_SCALES = DETECTION_SCALES[:2]
# Dilation of every detection (pixels), and rounds of mask-then-destripe.
_GROW = 2
_ROUNDS = 3
# Every n-th pixel of a map along each axis estimates its spread.
_SPREAD_STEP = 7


def _spread(mean: np.ndarray, count: np.ndarray, min_count: float) -> tuple[float, float]:
    """Median and robust standard deviation (1.4826 MAD) of a box-mean map."""
    sample_mean = mean[::_SPREAD_STEP, ::_SPREAD_STEP]
    ok = (count[::_SPREAD_STEP, ::_SPREAD_STEP] >= min_count) & np.isfinite(sample_mean)
    sample = sample_mean[ok]
    if sample.size < 16:
        return 0.0, np.inf
    centre = float(np.median(sample))
    return centre, 1.4826 * float(np.median(np.abs(sample - centre)))


def detect(residual: np.ndarray, usable: np.ndarray, masked: np.ndarray, scales, grow: int):
    """Pixels above threshold at any scale, dilated: uint8 ``(ny, nx)``.

    Parameters
    ----------
    residual : numpy.ndarray
        float64 ``(ny, nx)``: the image minus stripes, sky and background.
    usable : numpy.ndarray
        uint8: pixels with a value.
    masked : numpy.ndarray
        uint8: pixels already masked; boxes larger than 3x3 leave them out,
        so a bright source does not spread to the box size.
    scales : sequence of (int, float)
        Box half-widths and thresholds, as :data:`DETECTION_SCALES`.
    grow : int
        Dilation radius.
    """
    ny, nx = residual.shape
    marks = np.zeros((ny, nx), np.uint8)
    mean, count = np.empty((ny, nx)), np.empty((ny, nx))
    unmasked = usable & (masked == 0).view(np.uint8)
    for half, n_sigma in scales:
        size = (2 * half + 1) ** 2
        _mask_kernels.box_means(residual, usable if half <= 1 else unmasked, half, mean, count)
        centre, spread = _spread(mean, count, 0.5 * size)
        _mask_kernels.mark_above(mean, count, centre + n_sigma * spread, 0.2 * size, marks)
    if grow <= 0:
        return marks
    grown = np.empty_like(marks)
    _mask_kernels.dilate(marks, grow, grown)
    return grown


def residual_of(
    prepared: Prepared, options, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Destripe one plane without the ``mask``ed pixels: ``(residual, usable)``.

    The stripes are the plain per-line levels (the stages of the plain
    correction) measured with ``mask`` (uint8, plane-shaped) left out; the
    residual has the sky pedestal removed, and ``usable`` marks every pixel
    with a value (masked ones included: they are still looked at).
    """
    from . import stages  # the stages call this module: import at use

    masked = prepared if mask is None else with_mask(prepared, mask)
    measured = stages.measure(masked, options)
    resolved = stages.resolve(masked, measured, options)
    corrected, _ = stages.apply(masked, resolved)
    plane = corrected.reshape(prepared.planes.shape)[0]
    ny, nx = plane.shape
    flags = prepared.flags[0] if prepared.flags.shape[1] else np.zeros((0, 0), np.uint8)
    usable = np.empty((ny, nx), np.uint8)
    residual = np.empty((ny, nx))
    _mask_kernels.residual_plane(plane, flags, np.zeros((0, 0)), 0.0, usable, residual)
    free = usable if mask is None else usable & (mask == 0).view(np.uint8)
    residual -= _sky_level(residual, free)
    return residual, usable


def _sky_level(residual: np.ndarray, usable: np.ndarray) -> float:
    """Median of the usable residual (every other pixel along both axes)."""
    values = residual[::2, ::2][usable[::2, ::2] != 0]
    return float(np.median(values)) if values.size else 0.0


def with_mask(prepared: Prepared, mask: np.ndarray) -> Prepared:
    """``prepared`` with ``mask`` (uint8, plane-shaped) added to its EXCLUDE flags."""
    flags = prepared.flags
    ny, nx = prepared.planes.shape[1:]
    if flags.shape[1] == 0:
        flags = np.zeros((1, ny, nx), np.uint8)
    flags = flags | (mask[None] * _kernels.EXCLUDE).astype(np.uint8)
    return replace(prepared, flags=flags)


def extended_mask(prepared: Prepared, options, rounds: int = _ROUNDS) -> np.ndarray:
    """Sources at every scale, found on a plane destriped without them.

    ``prepared`` holds one plane. Returns uint8 ``(ny, nx)``.
    """
    ny, nx = prepared.planes.shape[1:]
    mask = np.zeros((ny, nx), np.uint8)
    for _ in range(rounds):
        residual, usable = residual_of(prepared, options, mask)
        mask |= detect(residual, usable, mask, DETECTION_SCALES, _GROW)
    return mask


def source_mask(data, axis: str, *, dq=None, n_outputs: int | str = 1, **kwargs) -> np.ndarray:
    """Find the sources of an image: a boolean mask of its shape.

    The mask :func:`bgdnoise.correct_array` builds with ``mask_sources=True``
    before measuring the stripes (with ``background_method=None``). For a
    cube, one mask from the median over its planes.

    Parameters
    ----------
    data : numpy.ndarray
        ``(ny, nx)`` image or a cube of planes of the same scene.
    axis : {"rows", "columns"}
        Direction the stripes run.
    dq : numpy.ndarray, optional
        DQ array; flagged pixels are left out of the statistics (and are not
        part of the returned mask).
    n_outputs : int or "auto"
        Readout outputs of the rough destriping.
    **kwargs
        Other correction options (e.g. ``mask`` for pixels to leave out).

    Returns
    -------
    numpy.ndarray
        bool, one plane ``(ny, nx)``: True on sources.
    """
    from .options import CorrectionOptions
    from .scene import reference_plane

    options = CorrectionOptions.from_kwargs(n_outputs=n_outputs, **kwargs)
    prepared = prepare(data, axis, options, dq=dq)
    return extended_mask(reference_plane(prepared), options).astype(bool)
