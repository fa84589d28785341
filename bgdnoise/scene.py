"""The scene stages: a source mask and a background, between prepare and measure.

``model_scene`` looks at one plane (the plane itself, or for a cube of
integrations of one scene the median over them, so the scene is found once
and shared): the source mask at every scale (:mod:`bgdnoise.sources`), then,
with ``background_method="model"``, the smooth background fitted with the
line levels (:mod:`bgdnoise.background`) and the compact sources found again
on what it leaves. ``with_scene`` hands both to the measuring stage as
flags and background. See docs/algorithm.rst.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from . import _kernels, _scratch
from ._kernels import mask as _mask_kernels
from ._kernels import planes as _planes
from ._prepare import Prepared
from .background import Surface, fit_background
from .options import CorrectionOptions
from .sources import (
    COMPACT_SCALES,
    detect,
    extended_search,
    grow_marks,
    residual_of,
    spread_mask,
    with_mask,
)

__all__ = ["SceneModel", "model_scene", "reference_plane", "with_scene"]

# Largest dilation of the compact sources found on the model background's
# residual: a PSF of ~2 pixels FWHM (NIRCam, NIRISS, FGS) has wings falling as
# r^-3 to r^-4, so around the faintest detection (4 sigma) they stay above
# ~0.1 sigma out to about 3 pixels. That faint light, summed over the many
# faint stars of a crowded field, biases every line's level; 3 instead of 2
# took the benchmark's crowded field from 0.35 / 0.47 to 0.35 / 0.46 and
# 0.36 / 0.38 to 0.28 / 0.35 and 0.33 / 0.46 to 0.31 / 0.42 (seeds +0, +100,
# +200). Each ring is masked only where its light pays for the pixels it
# takes (sources.grow_marks): a sparse field's few stars take 1 or 2.
_GROW = 3
# Planes with values beyond this, or a noise below that, are corrected by the
# plain path alone (the sums and squares of the scene stages would overflow or
# underflow; no detector gives such numbers).
_LARGEST_VALUE = 1e30
_SMALLEST_SIGMA = 1e-100
# A line the source mask leaves with fewer usable pixels is not masked.
_MIN_LINE_PIXELS = 16
# Planes of a cube whose median stands for its scene.
_MEDIAN_PLANES = 9
# No flags, for the kernels.
_NO_FLAGS = np.zeros((0, 0), np.uint8)


@dataclass
class SceneModel:
    """What the scene stages found, shared by every plane.

    Attributes
    ----------
    mask : numpy.ndarray or None
        bool ``(ny, nx)``: sources kept out of the statistics.
    surface : Surface or None
        The smooth background relative to the sky.
    method : str or None
        The background method used.
    mask_growth : int or None
        Pixels the compact sources' mask was grown by
        (:func:`bgdnoise.sources.grow_marks`); None where none were sought.
    """

    mask: np.ndarray | None
    surface: Surface | None
    method: str | None
    mask_growth: int | None = None


def reference_plane(prepared: Prepared) -> Prepared:
    """One plane standing for the scene: the plane, or the median of a cube's planes.

    Pixels excluded in a plane do not enter its median; a pixel excluded in
    every plane stays excluded.
    """
    planes, flags = prepared.planes, prepared.flags
    if planes.shape[0] == 1:
        plane, plane_flags = planes[0], flags
    else:
        # A sample of evenly spread planes: their median averages the stripes
        # down well enough for finding the scene, at a bounded cost.
        take = np.unique(np.linspace(0, planes.shape[0] - 1, _MEDIAN_PLANES).round().astype(int))
        sample_flags = flags if flags.shape[0] == 1 else np.ascontiguousarray(flags[take])
        plane = np.empty(planes.shape[1:])
        _planes.median_over_planes(np.ascontiguousarray(planes[take]), sample_flags, plane)
        plane_flags = np.where(np.isnan(plane), _kernels.EXCLUDE, 0).astype(np.uint8)[None]
        plane = plane.astype(planes.dtype)
        if flags.shape[1]:
            plane_flags |= flags[:1] & _kernels.PRESERVE
    plane = np.ascontiguousarray(plane)
    background = prepared.background[:1]
    return replace(
        prepared, work=plane, planes=plane[None], flags=plane_flags, background=background,
        dq=None if prepared.dq is None else prepared.dq[:1],
    )  # fmt: skip


def _sigma(prepared: Prepared, options: CorrectionOptions) -> float:
    from .stages import plane_dispersion

    return float(plane_dispersion(prepared, replace(options, scale="global"))[0])


def _one_plane_sigma(
    prepared: Prepared, options: CorrectionOptions, sigma: float, marks: np.ndarray
) -> float:
    """White noise of one of ``prepared``'s planes: ``sigma`` (the reference plane's) for one
    plane; for a cube, its first plane's (the median of several is less noisy). Only
    :func:`.sources.grow_marks` needs it, and only with ``marks``: without, ``sigma``."""
    if prepared.planes.shape[0] == 1 or not marks.any():
        return sigma
    flags = prepared.flags[:1] if prepared.flags.shape[0] > 1 else prepared.flags
    first = replace(
        prepared, planes=prepared.planes[:1], flags=flags, background=prepared.background[:1]
    )
    return _sigma(first, options)


def model_scene(prepared: Prepared, options: CorrectionOptions) -> SceneModel:
    """The source mask and background of the scene ``prepared`` holds."""
    method = options.background_method
    if not options.mask_sources and method != "model":
        return SceneModel(None, None, method)
    plane = reference_plane(prepared)
    sigma = _sigma(plane, options)
    if not _ordinary(plane, sigma):
        return SceneModel(None, None, None)
    extended = None  # no search: nothing found (no plane of zeros held)
    if options.mask_sources:
        wanted = method == "model"  # the residual the compact sources are sought in
        extended, residual, usable = extended_search(
            plane, options, with_residual=wanted, spread=False
        )  # (the binned mask: spread to every pixel once the residual is let go)
        if not wanted:
            return SceneModel(_keep_lines(plane, spread_mask(extended, plane)), None, method)
    else:
        # The 'model' background alone: the line levels use every pixel, but a
        # least-squares surface fitted through the stars bent around them over
        # whole cells, and the levels under it took that for stripes (a sparse
        # field: 2.7 to 4.5 times the injected line striping, against 0.09 for
        # the plain path). Its fit keeps the compact sources of the plain
        # destriping out.
        residual, usable, _ = residual_of(plane, options)
    # The compact sources on what the destriping left (the extended mask's, or plain).
    compact = detect(residual, usable, None, COMPACT_SCALES, 0, plane.layout.along_rows)
    compact, growth = grow_marks(
        compact, residual, usable, plane.layout, _GROW, sigma=sigma,
        cost_sigma=_one_plane_sigma(prepared, options, sigma, compact),
    )  # fmt: skip
    del residual  # a whole plane: not held through the surface fit
    if extended is not None:
        extended = spread_mask(extended, plane)
    values = plane.planes[0]  # read only where usable (no copy of the plane)
    if plane.background.shape[1]:
        values = values - plane.background[0]
        usable = _usable(plane, values)
    # else the residual's usable pixels are these: the finite values not
    # excluded (a finite line model, and no value near the float range, see
    # _ordinary, leave a finite value finite).
    fit_usable = usable if compact is None else _scratch.unmasked(usable, compact)
    surface = fit_background(
        values, fit_usable, plane.layout, spacing=options.background_box_size,
        sigma=sigma, extended=extended,
    )  # fmt: skip
    if surface is None:  # nothing to anchor a surface to: the mask alone
        return SceneModel(
            _keep_lines(plane, extended) if options.mask_sources else None, None, None, growth
        )
    # (the same pixels as the plane's own usable ones unless a background was given)
    plane_usable = None if plane.background.shape[1] else usable
    mask = _keep_lines(plane, compact, plane_usable) if options.mask_sources else None
    return SceneModel(mask, surface, method, growth)


def _keep_lines(plane: Prepared, mask: np.ndarray, usable: np.ndarray | None = None) -> np.ndarray:
    """The source mask as bool, lifted from lines it would leave (almost) empty.

    A line the mask empties would fall back to its reference pixels, or be
    left uncorrected on a subarray without them: its clipped median over
    all its pixels is better than either. ``usable``: :func:`_usable` of the
    plane's values, if already at hand.
    """
    usable = _usable(plane, plane.planes[0]) if usable is None else usable
    kept = mask.astype(bool)
    before = np.empty(plane.layout.n_lines, np.int64)
    masked = np.empty(plane.layout.n_lines, np.int64)
    _mask_kernels.line_counts(usable, kept.view(np.uint8), plane.layout.along_rows, before, masked)
    after = before - masked
    emptied = after < np.minimum(_MIN_LINE_PIXELS, before)
    if emptied.any():
        if plane.layout.along_rows:
            kept[emptied, :] = False
        else:
            kept[:, emptied] = False
    return kept


def _ordinary(plane: Prepared, sigma: float) -> bool:
    """Whether the scene stages can work on this plane.

    They need a white-noise dispersion and values far from the float range:
    on a plane of values near 1e38 or 1e308 (garbage a user forgot to flag)
    their sums would overflow, and the plain per-line correction, which
    handles such values exactly, is used alone.
    """
    if not (np.isfinite(sigma) and sigma > _SMALLEST_SIGMA):
        return False
    values = plane.planes[0]
    rows = np.empty(values.shape[0])
    _planes.row_magnitudes(values, rows)
    # fmax skips the NaN of rows without values, without nanmax's warning
    # (NaN when every row is such).
    largest = float(np.fmax.reduce(rows)) if rows.size else np.nan
    return bool(np.isfinite(largest) and largest < _LARGEST_VALUE)


def _usable(plane: Prepared, values: np.ndarray) -> np.ndarray:
    """uint8: the pixels of one plane with a finite value that are not excluded."""
    usable = _scratch.empty(values.shape, np.uint8)
    flags = plane.flags[0] if plane.flags.shape[1] else _NO_FLAGS
    _kernels.finite_unexcluded(np.ascontiguousarray(values), flags, usable)
    return usable


def with_scene(prepared: Prepared, scene: SceneModel) -> Prepared:
    """``prepared`` with the scene's mask in its flags and background added to its own."""
    if scene.mask is not None:
        prepared = with_mask(prepared, scene.mask.view(np.uint8))
    if scene.surface is not None:
        # Evaluated here, for the correction only (the report keeps the nodes).
        background = scene.surface.evaluate()[None].astype(prepared.planes.dtype, copy=False)
        if prepared.background.shape[1]:
            background = background + prepared.background
        prepared = replace(prepared, background=np.ascontiguousarray(background))
    return prepared
