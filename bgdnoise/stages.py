"""The correction as a short pipeline of stages over a chunk of planes.

``prepare`` (``_prepare.py``: dtype, byte order, usable-pixel flags, layout)
-> ``scene`` (``scene.py``: source mask and background, found once for the
chunk; with them, ``read_segments`` splits a one-output line into read-time
groups) -> ``measure`` (clipped level per line, band and parity, and each
group's sky: the mean within the clip, from the same pass) -> common mode
(``outputs.py``, with the scene stages: the sky means as levels, the line's
common level and each band's own part Wiener-filtered) -> ``resolve`` (band
fallbacks, plane pedestal, empty lines from reference pixels) -> steady
lines (with the scene stages: a line measured on few pixels weighed against
its neighbours) -> sky
across the lines (with the model background: a sky gradient across the lines
kept out of the line model where the stripes' spectrum cannot explain it)
-> ``apply``
(subtract, keep the pedestal) -> stripe excess (``excess.py``, from the sky
means). Each stage is a function with one
job; :func:`correct_planes` runs them and returns the corrected planes with a
:class:`~bgdnoise.report.CorrectionReport`. See docs/architecture.rst.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numba
import numpy as np

from . import _kernels, _nanstats, _scratch
from ._prepare import Prepared, check_out, make_layout, prepare
from .background import sky_across_lines
from .excess import stripe_excess
from .options import CorrectionOptions
from .outputs import MEAN_EFFICIENCY, MEDIAN_EFFICIENCY, share_common_mode, steady_noisy_lines
from .reference import anchor_to_reference, is_reference
from .report import make_report
from .scene import model_scene, with_scene

__all__ = [
    "Measured",
    "Resolved",
    "apply",
    "correct_planes",
    "keep_sky_across",
    "measure",
    "resolve",
    "steady_lines",
    "with_sky_levels",
]

# One pixel pair in this many is sampled for the global dispersion (about
# half are kept): on a full frame a sigma to ~0.3% for about a millisecond;
# on any plane the same cost per pixel, and at least _MIN_DISPERSION_PAIRS
# pairs (a sigma to ~2%, which moves a 3-sigma clip by less than the noise).
_DISPERSION_STEP = 31
_MIN_DISPERSION_PAIRS = 1 << 12
# Column lines are gathered this many at a time so reads follow rows. Each
# row of a plane is a page or more from the next, where the prefetchers stop:
# every row's read waits for memory, and a wider block reads more per wait
# (16 -> 32 took a 2048x2048 frame's column levels from 23.6 to 17.9 ms; 64
# was no faster, its 1 MB of scratch per thread no longer in cache).
_COLUMN_BLOCK = 32
# The fields of a measure that depend on a group's level: a measure again of
# some groups of a line keeps them from the previous measure for the other
# groups (it counts the usable pixels of every group). And "every group".
_ESTIMATED = ("raw", "sky_means", "sky_counts", "sky_vars")
_NO_GROUPS = np.zeros((0, 0), np.uint8)
# Every n-th line's full level is measured to learn each band's offset from
# it (the same share of the work on any plane), on at least _MIN_OFFSET_LINES.
_OFFSET_LINE_STEP = 8
_MIN_OFFSET_LINES = 8
# With the scene stages, a line read by one output is measured in read-time
# segments of this many pixels (see read_segments).
_SEGMENT = 256
# Below these magnitudes of the subtracted model no finite value of the
# output dtype can overflow (half an ulp of the dtype's maximum, halved).
_SAFE_MODEL = {np.dtype(np.float32): 2.0**102, np.dtype(np.float64): 2.0**969}


@dataclass
class Measured:
    """The output of :func:`measure`, per plane ``(P, n_lines, n_groups)``.

    Attributes
    ----------
    raw : numpy.ndarray
        Clipped median of each group, NaN where it had no usable pixel
        (after :func:`with_sky_levels`, the sky means).
    counts : numpy.ndarray
        Usable pixels per group.
    full, full_counts : numpy.ndarray
        ``(P, n_lines)`` full-line level and count (on the lines where it was
        needed; the group's own when there is one group).
    needed : numpy.ndarray
        Usable pixels a group needs to keep its own level.
    scale : numpy.ndarray
        ``(P,)`` clipping dispersion, NaN where each line's own is used.
    sigma : numpy.ndarray or None
        ``(P,)`` the planes' white-noise dispersion (the clip's with
        ``scale="global"``); measured with the sky.
    sky_means, sky_counts : numpy.ndarray or None
        Mean and number of each group's sky values: its usable values within
        the clip's bounds (``sigma_lower``, ``sigma_upper`` times ``sigma``)
        around its clipped median; all of them on a plane without a
        dispersion. The scene stages' levels (:func:`with_sky_levels`) and
        the stripe excess of every correction.
    sky_vars : numpy.ndarray or None
        Variance (population, about their mean) of each group's (band,
        parity or read-time segment) sky values: how noisy each group is,
        for the common mode's weights. None unless measured with
        ``sky=True, sky_variance=True``.
    sampled : bool
        Whether ``full`` holds the sample of full-line levels (every
        ``full_every``-th line); False after ``measure(few_fallbacks=True)``
        found it not needed.
    """

    raw: np.ndarray
    counts: np.ndarray
    full: np.ndarray
    full_counts: np.ndarray
    needed: np.ndarray
    scale: np.ndarray
    sigma: np.ndarray | None = None
    sky_means: np.ndarray | None = None
    sky_counts: np.ndarray | None = None
    sky_vars: np.ndarray | None = None
    sampled: bool = True


@dataclass
class Resolved:
    """The output of :func:`resolve`.

    Attributes
    ----------
    levels : numpy.ndarray
        ``(P, n_lines, n_groups)`` level used for each group.
    fallback : numpy.ndarray
        Groups that took the band fallback.
    plane_level : numpy.ndarray
        ``(P,)`` median level of each plane, NaN for an empty plane.
    line_model : numpy.ndarray
        ``(P, n_lines, n_groups)`` what is subtracted from each group.
    empty_lines, reference_lines : numpy.ndarray
        ``(P,)`` lines with no usable pixel, and those corrected from their
        reference pixels.
    """

    levels: np.ndarray
    fallback: np.ndarray
    plane_level: np.ndarray
    line_model: np.ndarray
    empty_lines: np.ndarray
    reference_lines: np.ndarray


def _n_chunks(n_items: int) -> int:
    # The chunks of blocks the line kernel's threads claim: as many as
    # threads.run_ranges makes parts of other kernels' items.
    return max(1, min(n_items, _kernels.threads.PARTS_PER_THREAD * numba.get_num_threads()))


def needed_counts(group_sizes: np.ndarray, min_fraction: float) -> np.ndarray:
    """Usable pixels a group needs to keep its own level."""
    return np.maximum(1, np.ceil(min_fraction * group_sizes - 1e-9)).astype(np.int64)


def plane_dispersion(prepared: Prepared, options: CorrectionOptions) -> np.ndarray:
    """Each plane's white-noise dispersion (``scale="global"``), else NaN."""
    planes, layout = prepared.planes, prepared.layout
    plane_scale = np.full(planes.shape[0], np.nan)
    if options.scale == "global":
        pairs_per_line = max(layout.length - 2, 1)
        ny = planes.shape[1]
        total = (layout.n_lines if layout.along_rows else ny) * pairs_per_line
        step = max(1, min(_DISPERSION_STEP, total // _MIN_DISPERSION_PAIRS))
        _kernels.plane_dispersion(
            planes, prepared.flags, prepared.background, layout.along_rows, step, plane_scale
        )
        # Kernel: NaN -> line std; also for a dispersion that overflowed.
        plane_scale[~((plane_scale > 0) & (plane_scale < np.inf))] = np.nan
    return plane_scale


def measure(
    prepared: Prepared,
    options: CorrectionOptions,
    all_lines: bool = False,
    plane_scale=None,
    sky: bool = False,
    sky_variance: bool = False,
    again: tuple | None = None,
    few_fallbacks: bool = False,
) -> Measured:
    """The clipped median of every group of every line: the kernel stage.

    ``all_lines`` measures the full-line level on every line (for
    :func:`~bgdnoise.measure_levels`), not only where a band falls back and
    on a sample of lines. ``plane_scale``: the planes' dispersion when the
    caller already has it (:func:`plane_dispersion` of the same planes).
    ``sky``: also each group's sky (mean and count within the clip's bounds
    around its level, from the values the kernel gathered: no extra pass);
    ``sky_variance``: and its variance (the common mode's weights).
    ``again``: ``(previous, lines)`` or ``(previous, lines, groups)``: measure
    only ``lines`` (sorted indices) and take every other line's values from
    ``previous``, a :class:`Measured` of the same planes and options in which
    only those lines' pixels or flags have changed since (the source search's
    later rounds, where a round's new detections touch only part of the
    lines); ``groups`` (bool, ``(lines.size, n_groups)``), if given, marks
    the groups of those lines that changed: only their levels are estimated,
    the others' taken from ``previous`` too. The result is the same as
    measuring every line; every line is measured when the clip's dispersion
    or the sky's (both from the whole plane) differ from ``previous``'s, and
    with ``all_lines`` (``previous`` must come from a measure without it or
    ``few_fallbacks``: its sample of full-line levels is taken as measured).
    ``few_fallbacks``: the caller expects no band of a line with values to
    fall back (most planes, with the source mask or without: the mask is
    lifted from lines it would empty): the sample of full-line levels that
    gives each band's offset is then measured only if one does, in a second
    kernel call on the sampled lines; the same values either way.
    """
    n_lines = prepared.layout.n_lines
    if again is not None:
        again = _again_with_groups(again, prepared.layout.group_sizes.size)
    full_every = 1 if all_lines else max(1, min(_OFFSET_LINE_STEP, n_lines // _MIN_OFFSET_LINES))
    if plane_scale is None:
        plane_scale = plane_dispersion(prepared, options)
    sigma = _white_sigma(prepared, plane_scale, options) if sky else None
    same = again is not None and _same_kind(again[0], plane_scale, sigma, sky and sky_variance)
    if all_lines or not same:
        again = None  # the other lines' values may not be what this measure gives
    if again is None and few_fallbacks and not all_lines:
        measured = _measure_lines(prepared, options, plane_scale, sigma, sky_variance, 0)
        if not _offsets_needed(measured):
            return dataclasses.replace(measured, sampled=False)
        # The sample was not measured: measure it now and put it in.
        lines = np.arange(0, n_lines, full_every)
        part = _measure_lines(
            _line_subset(prepared, lines), options, plane_scale, None, False, 1, numbers=lines
        )
        measured.full[:, lines] = part.full
        return measured
    if again is None:
        return _measure_lines(prepared, options, plane_scale, sigma, sky_variance, full_every)
    previous, lines, groups = again
    if not previous.sampled:  # its unchanged lines would lack the sample
        raise ValueError("measure(again=...) needs a previous measure with its sample")
    n_groups = prepared.layout.group_sizes.size
    part = _measure_lines(
        _line_subset(prepared, lines), options, plane_scale, sigma, sky_variance, full_every,
        numbers=lines, groups=groups,
    )  # fmt: skip
    merged = {}
    for field in dataclasses.fields(Measured):
        old, new = getattr(previous, field.name), getattr(part, field.name)
        if field.name in ("needed", "scale", "sigma", "sampled") or new is None:
            merged[field.name] = new
        else:
            values = old.copy()
            if values.shape[1] == n_lines:  # else (0, 0): not measured with one group
                if groups is not None and field.name in _ESTIMATED:
                    new = np.where(groups, new, values[:, lines])
                values[:, lines] = new
            merged[field.name] = values
    if n_groups == 1:  # the full level is the one group's (as merged)
        merged["full"] = merged["raw"][:, :, 0].copy()
    return Measured(**merged)


def _again_with_groups(again: tuple, n_groups: int) -> tuple:
    """:func:`measure`'s ``again`` as ``(previous, lines, groups)``, checked (groups or None)."""
    previous, lines, groups = (*again, None) if len(again) == 2 else again
    lines = np.asarray(lines, dtype=np.int64)
    if groups is not None and np.shape(groups) != (lines.size, n_groups):
        raise ValueError(
            f"measure(again=...): groups of shape {np.shape(groups)}, expected "
            f"{(lines.size, n_groups)} (the lines measured again by their groups)"
        )
    return previous, lines, groups


def _offsets_needed(measured: Measured) -> bool:
    """Whether a group falls back in a line with values: :func:`_fallback` then uses offsets.

    Decided on the measured levels: the later stages never turn a finite
    level into a non-finite one (the sky levels and the common mode replace
    a group's level only where both are finite), so no more groups fall back
    in :func:`resolve` than here.
    """
    if measured.raw.shape[2] == 1:
        return False
    return bool((~_own_level_kept(measured) & (measured.full_counts[:, :, None] > 0)).any())


def _own_level_kept(measured: Measured) -> np.ndarray:
    """Groups with enough usable pixels for a level of their own (else they fall back)."""
    return (measured.counts >= measured.needed) & np.isfinite(measured.raw)


def _same_kind(previous: Measured, plane_scale: np.ndarray, sigma, with_vars: bool) -> bool:
    """Whether ``previous`` holds what a measure with these dispersions would (:func:`measure`)."""
    if not np.array_equal(previous.scale, plane_scale, equal_nan=True):
        return False
    if (previous.sky_vars is not None) != with_vars:
        return False
    if sigma is None or previous.sigma is None:
        return sigma is None and previous.sigma is None
    return np.array_equal(previous.sigma, sigma, equal_nan=True)


def _line_subset(prepared: Prepared, lines: np.ndarray) -> Prepared:
    """``prepared`` with only the given lines (a copy), for :func:`measure`'s ``again``."""
    along_rows = prepared.layout.along_rows
    # (np.take's mode="clip" below neither wraps nor raises: the lines must be there)
    assert lines.size == 0 or 0 <= lines.min() <= lines.max() < prepared.layout.n_lines

    def take(planes: np.ndarray) -> np.ndarray:
        if not planes.shape[1]:  # (P, 0, 0): no flags or background
            return planes
        shape = list(planes.shape)
        shape[1 if along_rows else 2] = lines.size
        out = _scratch.empty(shape, planes.dtype)
        return np.take(planes, lines, axis=1 if along_rows else 2, out=out, mode="clip")

    planes = take(prepared.planes)
    return dataclasses.replace(
        prepared, work=planes, planes=planes, flags=take(prepared.flags),
        background=take(prepared.background), dq=None,
        layout=dataclasses.replace(prepared.layout, n_lines=lines.size),
    )  # fmt: skip


def _measure_lines(
    prepared: Prepared, options: CorrectionOptions, plane_scale: np.ndarray, sigma, sky_variance,
    full_every: int, numbers: np.ndarray | None = None, groups: np.ndarray | None = None,
) -> Measured:  # fmt: skip
    """:func:`measure`'s kernel call; ``sigma`` None: no sky; ``numbers``: the lines' numbers.

    ``groups`` (bool, lines by groups): estimate only those groups' levels.
    """
    planes, layout = prepared.planes, prepared.layout
    n_planes, n_lines, n_groups = planes.shape[0], layout.n_lines, layout.group_sizes.size
    raw = np.empty((n_planes, n_lines, n_groups))
    counts = np.empty((n_planes, n_lines, n_groups), dtype=np.int64)
    full = np.empty((n_planes, n_lines) if n_groups > 1 else (0, 0))
    full_counts = np.empty((n_planes, n_lines) if n_groups > 1 else (0, 0), dtype=np.int64)
    block = 1 if layout.along_rows else _COLUMN_BLOCK
    n_items = n_planes * -(-n_lines // block)
    needed = needed_counts(layout.group_sizes, float(options.min_fraction))
    lower, upper = _clip_sigmas(options)
    maxiters = -1 if options.maxiters is None else options.maxiters
    sky = sigma is not None
    sky_scale = np.full(n_planes, np.nan)  # NaN: no sky
    if sky:
        # A plane without a dispersion has no window: all its values.
        sky_scale = np.where(np.isfinite(sigma) & (sigma > 0), sigma, np.inf)
    sky_means = np.empty((n_planes, n_lines, n_groups))
    sky_counts = np.empty((n_planes, n_lines, n_groups), dtype=np.int64)
    want_vars = sky and sky_variance
    sky_vars = np.empty((n_planes, n_lines, n_groups) if want_vars else (0, 0, 0))
    _kernels.line_levels(
        planes, prepared.flags, prepared.background,
        (layout.along_rows, layout.band_edges, layout.odd_even, layout.group_start),
        (lower, upper, plane_scale, int(maxiters)),
        (
            needed, full_every, np.empty(0, np.int64) if numbers is None else numbers,
            _NO_GROUPS if groups is None else np.ascontiguousarray(groups, dtype=np.uint8),
        ),
        sky_scale.astype(np.float64),
        (block, _n_chunks(n_items)),
        (raw, counts, full, full_counts, sky_means, sky_counts, sky_vars),
    )  # fmt: skip
    if n_groups == 1:
        full = raw[:, :, 0].copy()
        full_counts = counts[:, :, 0]
    if not sky:
        sky_means = sky_counts = None
    if not want_vars:
        sky_vars = None
    return Measured(
        raw, counts, full, full_counts, needed, plane_scale, sigma, sky_means, sky_counts,
        sky_vars,
    )  # fmt: skip


def _fallback(measured: Measured) -> tuple[np.ndarray, np.ndarray]:
    """Groups with too few usable pixels: line level + the group's offset."""
    raw, full = measured.raw, measured.full
    if raw.shape[2] == 1:
        return raw.copy(), np.zeros(raw.shape, dtype=bool)
    ok = _own_level_kept(measured)
    if not (~ok & np.isfinite(full)[:, :, None]).any():
        # Only bands of lines without a finite full level fall back: an offset
        # would change none of them (see below), so none is measured.
        return np.where(ok, raw, full[:, :, None]), ~ok
    # Offsets from the lines whose full level was computed (all, or a sample).
    with np.errstate(over="ignore", invalid="ignore"):
        diff = np.where(ok, raw - full[:, :, None], np.nan)
        offset = _nanstats.nanmedian(diff, axis=1)  # (P, n_groups); NaN: all-NaN group
        offset = np.where(np.isfinite(offset), offset, 0.0)
        shifted = full[:, :, None] + offset[:, None, :]
    # Levels at the ends of the float64 range: no offset rather than inf.
    shifted = np.where(np.isfinite(shifted), shifted, full[:, :, None])
    return np.where(ok, raw, shifted), ~ok


def median_finite(values: np.ndarray) -> float:
    """``np.median`` of finite values, without overflow for huge ones."""
    with np.errstate(over="ignore", invalid="ignore"):
        med = np.median(values)
    if not np.isfinite(med):  # the mean of the two middle values overflowed
        k = values.size // 2
        part = np.partition(values, [k - 1, k])
        med = 0.5 * part[k - 1] + 0.5 * part[k]
    return float(med)


def plane_levels(levels: np.ndarray) -> np.ndarray:
    """Median of each plane's finite levels; NaN for a plane without any."""
    finite = np.isfinite(levels)
    # One call for all of a cube's planes, not one per plane (the same values).
    if levels.size and finite.all():
        with np.errstate(over="ignore", invalid="ignore"):
            plane_level = np.median(levels.reshape(levels.shape[0], -1), axis=1)
        if np.isfinite(plane_level).all():
            return plane_level
    plane_level = np.full(levels.shape[0], np.nan)
    for p in range(levels.shape[0]):
        if finite[p].any():
            plane_level[p] = median_finite(levels[p][finite[p]])
    return plane_level


def _reference_pixel_levels(prepared: Prepared, lines_by_plane: dict) -> dict:
    """Median of the reference pixels of the given lines, minus their pedestal."""
    ref = {}
    dq_planes = prepared.dq
    for p, lines in lines_by_plane.items():
        d = dq_planes[p if dq_planes.shape[0] > 1 else 0]
        is_ref = is_reference(d)
        plane = prepared.planes[p]
        if prepared.axis == "columns":
            plane, is_ref = plane.T, is_ref.T
        # The pedestal of the reference pixels: median over all their lines.
        vals_all = np.where(is_ref & np.isfinite(plane), plane, np.nan)
        per_line = _nanstats.nanmedian(vals_all, axis=1)
        pedestal = _nanstats.nanmedian(per_line)
        ref[p] = {i: per_line[i] - pedestal for i in lines if np.isfinite(per_line[i])}
    return ref


def _empty_lines(prepared: Prepared, levels: np.ndarray) -> np.ndarray:
    """``(P, n_lines)`` lines with no level, full-frame reference borders excepted."""
    empty = ~np.isfinite(levels).all(axis=2)
    if empty.any() and prepared.flags.shape[1] > 0:
        # Lines made only of reference pixels are never corrected: not news.
        # Only the empty lines are looked at (a full frame's 8 reference rows,
        # not its 4 million flags).
        lines = np.flatnonzero(empty.any(axis=0))
        along_rows = prepared.axis == "rows"
        flags = prepared.flags[:, lines, :] if along_rows else prepared.flags[:, :, lines]
        all_ref = ((flags & _kernels.PRESERVE) != 0).all(axis=2 if along_rows else 1)
        empty[:, lines] &= ~all_ref
    return empty


def _fill_from_reference(prepared, empty, line_model, pedestal, keep_level) -> np.ndarray:
    """Empty lines take their reference pixels' level; ``(P,)`` lines so corrected."""
    n_ref = np.zeros(empty.shape[0], dtype=np.int64)
    if not empty.any() or prepared.dq is None:
        return n_ref
    lines_by_plane = {p: np.flatnonzero(empty[p]) for p in np.flatnonzero(empty.any(axis=1))}
    ref = _reference_pixel_levels(prepared, lines_by_plane)
    for p, lines in lines_by_plane.items():
        for i in lines:
            value = ref.get(p, {}).get(i)
            if value is not None:  # else stays 0: no correction
                with np.errstate(over="ignore"):
                    line_model[p, i, :] = value + (0.0 if keep_level else pedestal[p])
                n_ref[p] += 1
    return n_ref


def resolve(prepared: Prepared, measured: Measured, options: CorrectionOptions) -> Resolved:
    """Fallbacks, the plane pedestal and the line model to subtract."""
    levels, fallback = _fallback(measured)
    plane_level = plane_levels(levels)
    n_planes = levels.shape[0]
    if not np.isfinite(plane_level).any():
        none = np.zeros(n_planes, dtype=np.int64)
        return Resolved(levels, fallback, plane_level, np.zeros(levels.shape), none, none)
    pedestal = np.where(np.isfinite(plane_level), plane_level, 0.0)
    with np.errstate(over="ignore", invalid="ignore"):
        keep = options.keep_level
        line_model = levels - pedestal[:, None, None] if keep else levels.copy()
    empty = _empty_lines(prepared, levels)
    line_model[~np.isfinite(levels).all(axis=2)] = 0.0  # refined where reference pixels help
    n_ref = _fill_from_reference(prepared, empty, line_model, pedestal, options.keep_level)
    n_empty = empty.sum(axis=1).astype(np.int64)
    return Resolved(levels, fallback, plane_level, line_model, n_empty, n_ref)


def _line_means(resolved: Resolved) -> tuple[np.ndarray, np.ndarray]:
    """``(finite, means)``, each ``(P, n_lines)``: the lines with a level in every
    group, and the line model's mean over the groups there (NaN elsewhere)."""
    finite = np.isfinite(resolved.levels).all(axis=2)
    with np.errstate(invalid="ignore", over="ignore"):
        means = np.where(finite, resolved.line_model.mean(axis=2), np.nan)
    return finite, means


def steady_lines(resolved: Resolved, measured: Measured) -> Resolved:
    """Lines measured on few pixels weighed against their neighbours (with the scene stages).

    Each line's level (its model's mean over the groups) has a white error
    of variance ``sigma**2 / n``, ``n`` the pixels it was measured on (its
    groups' usable counts, the source mask left out), times pi/2 where every
    group fell back to the line's clipped median: a line whose mask leaves it
    fewer than a quarter of the typical line's pixels is moved to
    :func:`bgdnoise.outputs.steady_noisy_lines`' compromise with its
    neighbours, every group of it (its levels and model) by the same amount;
    the other lines are unchanged.

    Parameters
    ----------
    resolved : Resolved
        The resolved levels and line model.
    measured : Measured
        The measure they come from (its counts and ``sigma``).

    Returns
    -------
    Resolved
        With the noisy lines moved (the same object when no line moved).
    """
    if measured.sigma is None:
        return resolved
    shift = np.zeros(resolved.levels.shape[:2])
    finite, means = _line_means(resolved)
    pixels = measured.counts.sum(axis=2)
    efficiency = np.where(resolved.fallback.all(axis=2), MEDIAN_EFFICIENCY, MEAN_EFFICIENCY)
    for p in range(finite.shape[0]):
        sigma = float(measured.sigma[p])
        valid = finite[p] & (pixels[p] > 0)
        if not (np.isfinite(sigma) and sigma > 0):
            continue
        level = np.where(valid, means[p], np.nan)
        with np.errstate(divide="ignore", over="ignore"):
            error_var = np.where(valid, efficiency[p] * sigma**2 / pixels[p], np.inf)
        valid &= np.isfinite(level) & (error_var > 0) & np.isfinite(error_var)
        steady = steady_noisy_lines(level, error_var, valid)
        # Only where valid: a line mean that overflowed (levels near the float64
        # maximum) is inf in both, and inf - inf would warn.
        np.subtract(steady, level, out=shift[p], where=valid)
    if not shift.any():
        return resolved
    return dataclasses.replace(
        resolved,
        levels=resolved.levels + shift[:, :, None],
        line_model=resolved.line_model + shift[:, :, None],
    )


def keep_sky_across(resolved: Resolved) -> tuple[Resolved, np.ndarray | None]:
    """The sky's shape across the lines taken out of the line model.

    The pattern tested is the line model's mean over the readout groups,
    each plane's about its median over the lines (so a plane's pedestal,
    subtracted or not, and lines without a level in some planes make no
    step), averaged over the planes: a cube's planes share one scene, as
    they share the source mask and the surface (integrations, or group
    differences; not a ramp's accumulating groups).
    :func:`bgdnoise.background.sky_across_lines` finds the part of it that
    is sky, which every plane then no longer subtracts.

    Parameters
    ----------
    resolved : Resolved
        The resolved levels and line model.

    Returns
    -------
    resolved : Resolved
        With the sky left out of ``line_model`` on the lines with a level in
        every group (unchanged when no sky is kept).
    sky : numpy.ndarray or None
        float64 ``(n_lines,)``: the sky's shape across the lines, or None.
    """
    finite, model = _line_means(resolved)
    with np.errstate(invalid="ignore", over="ignore"):
        model = model - _nanstats.nanmedian(model, axis=1)[:, None]
    planes_with_level = np.isfinite(model).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        total = np.where(np.isfinite(model), model, 0.0).sum(axis=0)
        pattern = np.where(planes_with_level > 0, total / planes_with_level, np.nan)
    sky = sky_across_lines(pattern)
    if sky is None:
        return resolved, None
    line_model = resolved.line_model - np.where(finite, sky[None, :], 0.0)[:, :, None]
    return dataclasses.replace(resolved, line_model=line_model), sky


def with_reference(
    prepared: Prepared, resolved: Resolved, all_stripes: Resolved, options: CorrectionOptions
) -> tuple[Resolved, Resolved, np.ndarray]:
    """The line models moved by what the side reference pixels see.

    :func:`bgdnoise.reference.anchor_to_reference` measures, on the side
    reference pixels, what the line model (the sky kept across the lines
    left out) misses at its slowest modes. The shift is stripe: it moves
    every line pattern taken for stripes alike, and the sky kept stays what
    it was.

    Parameters
    ----------
    prepared : Prepared
        The planes, their DQ and layout (read-time segments included).
    resolved : Resolved
        The line model subtracted (after :func:`keep_sky_across`).
    all_stripes : Resolved
        Every line pattern taken for stripes (``resolved`` itself when no
        sky was kept).
    options : CorrectionOptions
        ``n_outputs``: the readout outputs the reference pixels belong to.

    Returns
    -------
    resolved, all_stripes : Resolved
        Moved (the same objects when nothing moved; one object when they
        were one).
    rms : numpy.ndarray
        float64 ``(P,)``: the shift's RMS per plane (0 where none).
    """
    outputs = make_layout(prepared.planes.shape, prepared.axis, options).band_edges
    shift = anchor_to_reference(prepared, resolved.levels, resolved.line_model, outputs)
    if shift is None:
        return resolved, all_stripes, np.zeros(resolved.levels.shape[0])
    rms = np.sqrt(np.mean(shift**2, axis=(1, 2)))

    def moved(r: Resolved) -> Resolved:
        return dataclasses.replace(r, levels=r.levels + shift, line_model=r.line_model + shift)

    anchored = moved(resolved)
    # (the same object when no sky was kept: the excess tells the two apart so)
    return anchored, anchored if all_stripes is resolved else moved(all_stripes), rms


def _check_model(line_model: np.ndarray, levels: np.ndarray, return_model: bool) -> float:
    """Largest magnitude of the stripe model; ValueError if it overflowed
    float64, or float32 when the model is returned."""
    if not np.isfinite(line_model).all():
        raise ValueError(
            "float64 line levels overflow: a line's level minus the plane level "
            f"(levels from {np.nanmin(levels):.3g} to {np.nanmax(levels):.3g}) is beyond "
            "the float64 range (1.8e308); mask or DQ-flag the pixels with values near it."
        )
    model_max = float(np.abs(line_model).max(initial=0.0))
    if return_model and model_max > float(np.finfo(np.float32).max):
        with np.errstate(over="ignore"):
            too_big = np.isinf(line_model.astype(np.float32)).any()
        if too_big:
            raise ValueError(
                f"float32 stripe model overflows: the model reaches {model_max:.3g}, beyond "
                "the float32 range (3.4e38) of the returned model; mask or DQ-flag the pixels "
                "with such values, or call measure_levels for the float64 levels."
            )
    return model_max


def _check_overflow(result: np.ndarray, work: np.ndarray, model_max: float) -> None:
    """ValueError if data minus model overflowed where the data was finite."""
    bad = ~np.isfinite(result) & np.isfinite(work)
    if not bad.any():
        return
    info = np.finfo(work.dtype)
    where = tuple(int(i) for i in np.argwhere(bad)[0])
    hint = "" if work.dtype == np.float64 else ", or pass float64 data"
    raise ValueError(
        f"{work.dtype} output overflows: subtracting the stripe model (up to "
        f"{model_max:.3g}) from {int(bad.sum())} pixel(s) near the {work.dtype} maximum "
        f"({float(info.max):.3g}) gives values beyond it (first at index {where}); "
        f"mask or DQ-flag those pixels{hint}."
    )


def apply(prepared: Prepared, resolved: Resolved, *, out=None, return_model=False, usable=None):
    """Subtract the line model: ``(result, model or None)``.

    Near the dtype's maximum, data minus model can overflow: then the result
    is computed into a fresh array (never into ``out``) and checked before
    anything is kept. ``usable`` (C-contiguous uint8 of the planes' shape
    ``(P, ny, nx)``): written 1 where the result is finite and the pixel not
    flagged EXCLUDE in ``prepared``, else 0, and the result set to 0 there
    (the source search's residual).
    """
    work, layout = prepared.work, prepared.layout
    if usable is not None and not (
        usable.shape == prepared.planes.shape
        and usable.dtype == np.uint8
        and usable.flags.c_contiguous
    ):
        raise ValueError(
            f"usable must be a C-contiguous uint8 array of shape {prepared.planes.shape}, "
            f"not {usable.dtype} {usable.shape}"
        )
    line_model = np.ascontiguousarray(resolved.line_model)
    model_max = _check_model(line_model, resolved.levels, return_model)
    may_overflow = model_max >= _SAFE_MODEL[prepared.out_dtype]
    target = out if out is not None and out.flags.c_contiguous and not may_overflow else None
    result = np.empty(work.shape, dtype=prepared.out_dtype) if target is None else target
    planes_shape = (-1,) + work.shape[-2:]
    model = np.empty(work.shape, np.float32) if return_model else np.zeros((1, 0, 0), np.float32)
    # (After an overflow check, the usable pixels are marked in a pass of their own.)
    marked = usable is not None and not may_overflow
    _kernels.subtract_levels(
        prepared.planes, prepared.flags, layout.along_rows, layout.band_edges, layout.odd_even,
        line_model, result.reshape(planes_shape),
        model.reshape(planes_shape) if return_model else model, bool(return_model),
        *((usable,) if marked else ()),
    )  # fmt: skip
    if may_overflow:
        _check_overflow(result, work, model_max)
    if out is not None and target is None:
        out[...] = result
        result = out
    if usable is not None and not marked:  # (rare: values near the float range)
        planes = result.reshape(prepared.planes.shape)
        ok = np.isfinite(planes)
        if prepared.flags.shape[1]:
            ok &= (prepared.flags & _kernels.EXCLUDE) == 0
        planes[~ok] = 0.0
        usable[...] = ok
    return result, (model if return_model else None)


def read_segments(prepared: Prepared, options: CorrectionOptions) -> Prepared:
    """``prepared`` with each line of a one-output plane split into read-time segments.

    A line read by one output takes a few tens of milliseconds, over which
    the 1/f noise moves: on a subarray most of the stripe's variance is
    within the line, which one level per line cannot follow. Each segment of
    :data:`_SEGMENT` pixels (``length // (length // _SEGMENT)``: up to twice
    that) is then a group of its own: its level is measured
    where it has sky, and the common mode stage shares the line's level with
    it (its own part Wiener-filtered) and lets a segment a trace covers fall
    back to the line's level. Planes read by several outputs, or with lines
    shorter than two segments, are returned unchanged.
    """
    layout = prepared.layout
    n_segments = layout.length // _SEGMENT
    if layout.band_edges.size != 2 or n_segments < 2:
        return prepared
    segmented = make_layout(
        prepared.planes.shape, prepared.axis, dataclasses.replace(options, n_outputs=n_segments)
    )
    return dataclasses.replace(prepared, layout=segmented)


def with_sky_levels(measured: Measured) -> Measured:
    """``measured`` with each group's level the mean of its sky (the scene stages).

    Once the sources are masked, a group's usable values are sky plus white
    noise, whose mean has pi/2 less variance than its median; taking the
    values within the clip around the clipped median keeps the median's
    robustness to what the mask missed. Groups without such values, and
    planes without a dispersion (no clip window), keep the median.
    """
    if measured.sky_means is None:
        raise ValueError("with_sky_levels needs the sky: measure(..., sky=True)")
    means, counts, sigma = measured.sky_means, measured.sky_counts, measured.sigma
    windowed = (np.isfinite(sigma) & (sigma > 0))[:, None, None]
    keep = windowed & (counts > 0) & np.isfinite(means)
    return dataclasses.replace(measured, raw=np.where(keep, means, measured.raw))


def _clip_sigmas(options: CorrectionOptions) -> tuple[float, float]:
    """The clip's lower and upper bounds, in sigmas."""
    lower = options.sigma if options.sigma_lower is None else options.sigma_lower
    upper = options.sigma if options.sigma_upper is None else options.sigma_upper
    return float(lower), float(upper)


def _white_sigma(prepared: Prepared, plane_scale: np.ndarray, options: CorrectionOptions):
    """Each plane's white-noise dispersion: the clip's, or measured for the sky and report."""
    if np.isfinite(plane_scale).all():
        return plane_scale
    return plane_dispersion(prepared, dataclasses.replace(options, scale="global"))


def correct_planes(
    data, axis: str, options: CorrectionOptions, *, dq=None, background=None, out=None,
    return_model: bool = False,
):  # fmt: skip
    """Run every stage on a chunk of planes: ``(corrected, model, report)``.

    The entry point of ``correct_array`` and of the file layer; a chunked
    reader feeds it chunks of planes. Parameters are those of
    :func:`bgdnoise.correct_array`.
    """
    with _scratch.correction():  # its work arrays' memory is kept for the next
        return _correct_planes(
            data, axis, options, dq=dq, background=background, out=out, return_model=return_model
        )


def _correct_planes(data, axis, options, *, dq, background, out, return_model):
    """:func:`correct_planes` itself."""
    clock = {"start": time.perf_counter()}

    def lap(name):
        now = time.perf_counter()
        clock[name] = now - clock.pop("last", clock["start"])
        clock["last"] = now

    prepared = prepare(data, axis, options, dq=dq, background=background)
    if out is not None:
        check_out(out, data, prepared.work.shape, prepared.out_dtype)
    lap("prepare")
    scene = model_scene(prepared, options)
    has_scene = scene.mask is not None or scene.surface is not None
    prepared = with_scene(prepared, scene)
    segmented = False
    if has_scene:
        lines_read_at_once = prepared.layout
        prepared = read_segments(prepared, options)
        segmented = prepared.layout is not lines_read_at_once
    lap("scene")
    measured = measure(prepared, options, sky=True, sky_variance=has_scene, few_fallbacks=True)
    lap("measure")
    sigma, means, counts = measured.sigma, measured.sky_means, measured.sky_counts
    if has_scene:
        measured = share_common_mode(
            with_sky_levels(measured), sigma, MEAN_EFFICIENCY, covered=not segmented,
            bands=prepared.layout.band_edges.size - 1,
        )  # fmt: skip
    resolved = resolve(prepared, measured, options)
    lap("resolve")
    if has_scene:
        resolved = steady_lines(resolved, measured)
    surface, all_stripes = scene.surface, resolved  # every line pattern taken for stripes
    if surface is not None and options.keep_sky_across:
        resolved, sky = keep_sky_across(all_stripes)
        if sky is not None:
            surface = dataclasses.replace(surface, across=sky)
        lap("sky")
    reference_rms = None
    if has_scene:
        reference_rms = np.zeros(resolved.levels.shape[0])
        if options.use_reference_pixels:
            resolved, all_stripes, reference_rms = with_reference(
                prepared, resolved, all_stripes, options
            )
            lap("reference")
    result, model = apply(prepared, resolved, out=out, return_model=return_model)
    lap("apply")
    if resolved is not all_stripes:  # the excess is of the stripes, not of the sky kept
        means = means - (all_stripes.line_model - resolved.line_model)
    before, rms_before = stripe_excess(means, counts, sigma)
    after, rms_after = stripe_excess(means, counts, sigma, resolved.line_model)
    lap("excess")
    clock.pop("last")
    clock.pop("start")
    extra = {
        "stripe_excess_before": before, "stripe_excess_after": after,
        "line_rms_before": rms_before, "line_rms_after": rms_after,
        "background_method": scene.method, "source_mask": scene.mask,
        "surface": surface, "reference_rms": reference_rms, "mask_growth": scene.mask_growth,
    }  # fmt: skip
    return result, model, make_report(prepared, measured, resolved, clock, extra)
