"""Public array API: validate, convert, dispatch to the kernels.

``measure_levels`` is the line-level estimator (per line, per readout band,
optionally per column parity); ``correct_array`` subtracts what it measured.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass
from typing import Literal

import numba
import numpy as np

from . import _kernels
from .dqflags import DEFAULT_DQ_FLAGS, DO_NOT_USE, MSA_FAILED_OPEN, NON_SCIENCE, REFERENCE_PIXEL

__all__ = [
    "DEFAULT_DQ_FLAGS",
    "DO_NOT_USE",
    "MSA_FAILED_OPEN",
    "NON_SCIENCE",
    "REFERENCE_PIXEL",
    "LineLevels",
    "correct_array",
    "measure_levels",
]


_AXES = ("rows", "columns")
_SCALES = ("global", "line")
# Pixel pairs sampled for the global dispersion (about half are kept): a
# sigma to ~0.3%, for about a millisecond per plane.
_DISPERSION_SAMPLES = 1 << 17
# Column lines are gathered this many at a time so reads follow rows.
_COLUMN_BLOCK = 16
# Lines whose full level is measured to learn each band's offset from it.
_OFFSET_SAMPLE_LINES = 256
# DQ arrays are uint32: dq_flags must fit.
_DQ_MAX = 2**32 - 1
# Below these magnitudes of the subtracted model no finite value of the
# output dtype can overflow (half an ulp of the dtype's maximum, halved).
_SAFE_MODEL = {np.dtype(np.float32): 2.0**102, np.dtype(np.float64): 2.0**969}


@dataclass
class LineLevels:
    """What :func:`measure_levels` measured.

    Arrays have the leading (plane) shape of the data, ``lead``, then the
    line index, then the group index where there is one.

    Attributes
    ----------
    axis : str
        ``"rows"`` or ``"columns"``: the direction the stripes run.
    band_edges : numpy.ndarray
        Positions along the line where the readout bands start and end.
    odd_even : bool
        Whether each band has separate levels for even and odd positions.
    raw : numpy.ndarray
        ``lead + (n_lines, n_groups)`` float64: the clipped median of each
        group, NaN where it had no usable pixel.
    counts : numpy.ndarray
        ``lead + (n_lines, n_groups)`` int64: usable pixels per group.
    group_sizes : numpy.ndarray
        ``(n_groups,)`` pixels per group on one line.
    line : numpy.ndarray
        ``lead + (n_lines,)`` float64: the clipped median over the whole
        line (equal to ``raw[..., 0]`` when there is one group).
    levels : numpy.ndarray
        ``lead + (n_lines, n_groups)`` float64: the level used for each
        group: ``raw``, or, for a group with fewer than ``min_fraction`` of
        its pixels usable, the line's level plus that group's median offset
        from the line level in the plane; NaN for a line with no usable pixel.
    fallback : numpy.ndarray
        ``lead + (n_lines, n_groups)`` bool: groups that took the fallback.
    plane_level : numpy.ndarray
        ``lead`` float64: median of each plane's finite ``levels`` (the sky
        pedestal kept when ``keep_level``), NaN for an all-masked plane.
    scale : numpy.ndarray
        ``lead`` float64: the fixed clipping dispersion of each plane
        (``scale="global"``), NaN where the line's standard deviation was
        used.
    n_empty : int
        Number of lines with no usable pixel.
    """

    axis: str
    band_edges: np.ndarray
    odd_even: bool
    raw: np.ndarray
    counts: np.ndarray
    group_sizes: np.ndarray
    line: np.ndarray
    levels: np.ndarray
    fallback: np.ndarray
    plane_level: np.ndarray
    scale: np.ndarray
    n_empty: int


# --------------------------------------------------------------------------
# Validation and conversion helpers
# --------------------------------------------------------------------------
def _split_masked(data):
    """The values of ``data`` and, for a MaskedArray, its mask (else None)."""
    if not isinstance(data, np.ma.MaskedArray):
        return data, None
    own = np.ma.getmaskarray(data)
    return np.ma.getdata(data), (own if own.any() else None)


def _check_out(out, values: np.ndarray, shape, out_dtype) -> None:
    """``out`` must be a writable array of the result's shape and dtype that
    is either ``data`` itself or shares no memory with it."""
    if not isinstance(out, np.ndarray):
        raise TypeError("out must be a numpy array.")
    if out.shape != shape:
        raise ValueError(f"out has shape {out.shape}; it must match data {shape}.")
    if out.dtype != out_dtype:
        raise TypeError(f"out has dtype {out.dtype}; it must be {out_dtype} (native order).")
    if not out.flags.writeable:
        raise ValueError("out is read-only; pass a writable array.")
    if not isinstance(values, np.ndarray) or not np.may_share_memory(out, values):
        return
    same = (
        out.dtype == values.dtype
        and out.strides == values.strides
        and out.__array_interface__["data"][0] == values.__array_interface__["data"][0]
    )
    if same:
        return  # in place: every pixel is read before it is written
    try:
        overlap = np.shares_memory(out, values, max_work=100_000)
    except np.exceptions.TooHardError:
        overlap = True
    if overlap:
        raise ValueError(
            "out overlaps data without being the same array (a shifted or "
            "differently strided view of its memory): the result would be "
            "written over pixels not yet read. Pass data itself for an "
            "in-place correction, or an array of its own."
        )


def _check_dq_flags(dq_flags) -> int:
    if isinstance(dq_flags, (int, np.integer)) and 0 <= dq_flags <= _DQ_MAX:
        return int(dq_flags)
    raise ValueError(
        f"dq_flags must be a non-negative integer bit mask of the uint32 DQ "
        f"bits (0 to 2**32 - 1), got {dq_flags!r}."
    )


def _median(values: np.ndarray) -> float:
    """``np.median`` of finite values, without overflow for huge ones."""
    with np.errstate(over="ignore", invalid="ignore"):
        med = np.median(values)
    if not np.isfinite(med):  # the mean of the two middle values overflowed
        k = values.size // 2
        part = np.partition(values, [k - 1, k])
        med = 0.5 * part[k - 1] + 0.5 * part[k]
    return float(med)


def _as_float_data(data) -> tuple[np.ndarray, np.dtype]:
    """Native-endian float view or copy of ``data`` and the output dtype."""
    if not isinstance(data, np.ndarray):
        data = np.asarray(data)
    kind = data.dtype.kind
    if kind == "f" and data.dtype.itemsize in (4, 8):
        out_dtype = np.dtype(np.float32 if data.dtype.itemsize == 4 else np.float64)
    elif kind in "iu":
        out_dtype = np.dtype(np.float32)
    else:
        raise TypeError(
            f"data has dtype {data.dtype}; bgdnoise accepts float32, float64 "
            "(either byte order) or integer arrays. Convert it, e.g. "
            "data.astype(np.float32)."
        )
    if data.ndim not in (2, 3, 4):
        raise ValueError(
            f"data has {data.ndim} dimension(s) with shape {data.shape}; expected "
            "2D (ny, nx), 3D (nints, ny, nx) or 4D (nints, ngroups, ny, nx)."
        )
    if data.shape[-1] == 0 or data.shape[-2] == 0:
        raise ValueError(f"data has an empty plane (shape {data.shape}).")
    work = np.ascontiguousarray(data, dtype=out_dtype)  # swaps byte order once
    return work, out_dtype


def _planes(array: np.ndarray) -> np.ndarray:
    """(P, ny, nx) C-contiguous view (or copy) of a 2D/3D/4D array."""
    return np.ascontiguousarray(array).reshape((-1,) + array.shape[-2:])


def _match_shape(name: str, arr, data_shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(arr)
    plane = data_shape[-2:]
    if arr.shape == plane:
        return arr.reshape((1,) + plane)
    if arr.shape == data_shape:
        return arr.reshape((-1,) + plane)
    raise ValueError(
        f"{name} has shape {arr.shape}; it must have the shape of one plane "
        f"{plane} or of the data {data_shape}."
    )


def _build_flags(mask, dq, dq_flags: int, data_shape, data_mask=None) -> np.ndarray:
    """uint8 flags (Pf, ny, nx): EXCLUDE from statistics, PRESERVE values.

    ``data_mask`` (data shape), a MaskedArray's own mask, is OR-ed with ``mask``.
    """
    if mask is None and data_mask is None and dq is None:
        return np.zeros((1, 0, 0), dtype=np.uint8)  # stand-in: no flags
    m = np.zeros((1, 0, 0), np.uint8)  # stand-ins for an absent mask / DQ
    d = np.zeros((1, 0, 0), np.uint32)
    if mask is not None:
        m = _match_shape("mask", mask, data_shape)
        if m.dtype.kind not in "biu":
            raise TypeError(f"mask has dtype {m.dtype}; pass a boolean array.")
        m = np.ascontiguousarray(m.view(np.uint8) if m.dtype == bool else (m != 0).view(np.uint8))
    if data_mask is not None:
        own = data_mask.reshape((-1,) + tuple(data_shape[-2:]))
        m = (own | (m != 0)).view(np.uint8) if m.shape[1] > 0 else own.view(np.uint8)
        m = np.ascontiguousarray(m)
    if dq is not None:
        d = _match_shape("dq", dq, data_shape)
        if d.dtype.kind not in "iu":
            raise TypeError(f"dq has dtype {d.dtype}; pass the integer DQ array.")
        if not d.dtype.isnative or d.dtype.itemsize > 4 or d.dtype.kind == "i":
            d = d.astype(np.uint32)  # one kernel signature per DQ width at most
        d = np.ascontiguousarray(d)
    # The kernel broadcasts a plane-shaped mask or DQ over the planes.
    out = np.empty((max(m.shape[0], d.shape[0]), *data_shape[-2:]), dtype=np.uint8)
    preserve = REFERENCE_PIXEL if dq is not None else 0
    _kernels.build_flags(m, d, np.uint64(dq_flags), np.uint64(preserve), out)
    return out


def _check_sigma(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a positive number, got {value!r}.")
    value = float(value)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}.")
    return value


def _band_edges(length: int, n_outputs) -> np.ndarray:
    if isinstance(n_outputs, bool) or not isinstance(n_outputs, (int, np.integer)):
        raise TypeError(f"n_outputs must be an integer (1 or 4 for JWST), got {n_outputs!r}.")
    n_outputs = int(n_outputs)
    if n_outputs < 1:
        raise ValueError(f"n_outputs must be >= 1, got {n_outputs}.")
    if n_outputs > length:
        raise ValueError(
            f"n_outputs={n_outputs} is larger than the line length {length}; "
            "use n_outputs=1 for small subarrays."
        )
    return np.array([b * length // n_outputs for b in range(n_outputs + 1)], dtype=np.int64)


def _group_layout(band_edges: np.ndarray, odd_even: bool) -> tuple[np.ndarray, np.ndarray]:
    """Pixels per group on one line, and each group's segment start."""
    sizes = []
    for a, b in itertools.pairwise(band_edges):
        if odd_even:
            n_even = (b - a + (1 - a % 2)) // 2
            sizes += [n_even, (b - a) - n_even]
        else:
            sizes.append(b - a)
    sizes = np.array(sizes, dtype=np.int64)
    start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return sizes, start


def _n_chunks(n_items: int) -> int:
    # A few chunks per thread keep both cores busy when the machine is shared.
    return max(1, min(n_items, 4 * numba.get_num_threads()))


# --------------------------------------------------------------------------
# The estimator
# --------------------------------------------------------------------------
def measure_levels(
    data: np.ndarray,
    axis: Literal["rows", "columns"],
    *,
    mask: np.ndarray | None = None,
    dq: np.ndarray | None = None,
    background: np.ndarray | None = None,
    sigma: float = 3.0,
    sigma_lower: float | None = None,
    sigma_upper: float | None = None,
    maxiters: int | None = 10,
    scale: Literal["global", "line"] = "global",
    n_outputs: int = 1,
    odd_even: bool = False,
    min_fraction: float = 0.2,
    dq_flags: int = DEFAULT_DQ_FLAGS,
) -> LineLevels:
    """Measure the stripe level of every line (and band) of every plane.

    Parameters are those of :func:`correct_array`; ``background`` (a plane
    or an array of the data's shape) is subtracted from the values before
    any statistic and is not part of the levels.

    Returns
    -------
    LineLevels
        The raw and final levels, usable counts, fallbacks and plane levels.
    """
    values, data_mask = _split_masked(data)
    work, _ = _as_float_data(values)
    return _measure(
        work,
        axis,
        mask=mask,
        data_mask=data_mask,
        dq=dq,
        background=background,
        sigma=sigma,
        sigma_lower=sigma_lower,
        sigma_upper=sigma_upper,
        maxiters=maxiters,
        scale=scale,
        n_outputs=n_outputs,
        odd_even=odd_even,
        min_fraction=min_fraction,
        dq_flags=dq_flags,
        all_lines=True,
    )[0]


def _measure(
    work,
    axis,
    *,
    mask,
    dq,
    background,
    data_mask=None,
    sigma,
    sigma_lower,
    sigma_upper,
    maxiters,
    scale,
    n_outputs,
    odd_even,
    min_fraction,
    dq_flags,
    all_lines=False,
):
    if axis not in _AXES:
        raise ValueError(
            f"axis must be 'rows' (one level per row, NIRCam) or 'columns' "
            f"(one level per column, NIRISS/NIRSpec/FGS/MIRI), got {axis!r}."
        )
    if scale not in _SCALES:
        raise ValueError(f"scale must be 'global' or 'line', got {scale!r}.")
    sigma = _check_sigma("sigma", sigma)
    sigma_lower = sigma if sigma_lower is None else _check_sigma("sigma_lower", sigma_lower)
    sigma_upper = sigma if sigma_upper is None else _check_sigma("sigma_upper", sigma_upper)
    if maxiters is None:
        maxiters = -1
    elif isinstance(maxiters, bool) or not isinstance(maxiters, (int, np.integer)):
        raise TypeError(f"maxiters must be an integer >= 0 or None, got {maxiters!r}.")
    elif maxiters < 0:
        raise ValueError(f"maxiters must be >= 0 (or None for no limit), got {maxiters}.")
    if not isinstance(min_fraction, (int, float, np.integer, np.floating)) or not (
        0.0 <= float(min_fraction) <= 1.0
    ):
        raise ValueError(f"min_fraction must be a number in [0, 1], got {min_fraction!r}.")
    dq_flags = _check_dq_flags(dq_flags)
    odd_even = bool(odd_even)

    lead = work.shape[:-2]
    ny, nx = work.shape[-2:]
    along_rows = axis == "rows"
    n_lines, length = (ny, nx) if along_rows else (nx, ny)
    band_edges = _band_edges(length, n_outputs)
    group_sizes, group_start = _group_layout(band_edges, odd_even)
    n_groups = group_sizes.size

    planes = _planes(work)
    n_planes = planes.shape[0]
    flags = _build_flags(mask, dq, dq_flags, work.shape, data_mask)
    if background is None:
        bg = np.zeros((1, 0, 0), dtype=planes.dtype)  # stand-in: no background
    else:
        bg = np.ascontiguousarray(
            _match_shape("background", np.asarray(background), work.shape), dtype=planes.dtype
        )

    plane_scale = np.full(n_planes, np.nan)
    if scale == "global":
        pairs_per_line = max(length - 2, 1)
        total = (n_lines if along_rows else ny) * pairs_per_line
        step = max(1, total // _DISPERSION_SAMPLES)
        _kernels.plane_dispersion(planes, flags, bg, along_rows, step, plane_scale)
        # Kernel: NaN -> line std; also for a dispersion that overflowed.
        plane_scale[~((plane_scale > 0) & (plane_scale < np.inf))] = np.nan

    raw = np.empty((n_planes, n_lines, n_groups))
    counts = np.empty((n_planes, n_lines, n_groups), dtype=np.int64)
    full = np.empty((n_planes, n_lines) if n_groups > 1 else (0, 0))
    full_counts = np.empty((n_planes, n_lines) if n_groups > 1 else (0, 0), dtype=np.int64)
    block = 1 if along_rows else _COLUMN_BLOCK
    n_items = n_planes * -(-n_lines // block)
    # Full-line levels serve the band fallback: needed on lines where a band
    # falls back, and on a sample of lines for each band's typical offset.
    needed = _needed_counts(group_sizes, float(min_fraction))
    full_every = 1 if all_lines else max(1, n_lines // _OFFSET_SAMPLE_LINES)
    _kernels.line_levels(
        planes,
        flags,
        bg,
        along_rows,
        band_edges,
        odd_even,
        group_start,
        plane_scale,
        sigma_lower,
        sigma_upper,
        int(maxiters),
        block,
        _n_chunks(n_items),
        needed,
        full_every,
        raw,
        counts,
        full,
        full_counts,
    )
    if n_groups == 1:
        full = raw[:, :, 0].copy()

    levels, fallback = _apply_fallback(raw, counts, full, needed)
    finite = np.isfinite(levels)
    plane_level = np.full(n_planes, np.nan)
    for p in range(n_planes):
        if finite[p].any():
            plane_level[p] = _median(levels[p][finite[p]])
    n_empty = int(np.count_nonzero(full_counts == 0 if n_groups > 1 else counts[:, :, 0] == 0))

    result = LineLevels(
        axis=axis,
        band_edges=band_edges,
        odd_even=odd_even,
        raw=raw.reshape(lead + raw.shape[1:]),
        counts=counts.reshape(lead + counts.shape[1:]),
        group_sizes=group_sizes,
        line=full.reshape(lead + full.shape[1:]),
        levels=levels.reshape(lead + levels.shape[1:]),
        fallback=fallback.reshape(lead + fallback.shape[1:]),
        plane_level=plane_level.reshape(lead),
        scale=plane_scale.reshape(lead),
        n_empty=n_empty,
    )
    return result, planes, flags


def _needed_counts(group_sizes: np.ndarray, min_fraction: float) -> np.ndarray:
    """Usable pixels a group needs to keep its own level."""
    return np.maximum(1, np.ceil(min_fraction * group_sizes - 1e-9)).astype(np.int64)


def _apply_fallback(raw, counts, full, needed):
    """Replace groups with too few usable pixels by line level + group offset."""
    if raw.shape[2] == 1:
        return raw.copy(), np.zeros(raw.shape, dtype=bool)
    ok = (counts >= needed) & np.isfinite(raw)
    # Offsets from the lines whose full level was computed (all, or a sample).
    with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN groups
        diff = np.where(ok, raw - full[:, :, None], np.nan)
        offset = np.nanmedian(diff, axis=1)  # (P, n_groups)
        offset = np.where(np.isfinite(offset), offset, 0.0)
        shifted = full[:, :, None] + offset[:, None, :]
    # Levels at the ends of the float64 range: no offset rather than inf.
    shifted = np.where(np.isfinite(shifted), shifted, full[:, :, None])
    levels = np.where(ok, raw, shifted)
    return levels, ~ok


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


def _reference_pixel_levels(planes, dq_planes, axis, lines_by_plane):
    """Median of the reference pixels of the given lines; NaN where none."""
    ref = {}
    for p, lines in lines_by_plane.items():
        d = dq_planes[p if dq_planes.shape[0] > 1 else 0]
        is_ref = (d.astype(np.uint32) & np.uint32(REFERENCE_PIXEL)) != 0
        plane = planes[p]
        if axis == "columns":
            plane, is_ref = plane.T, is_ref.T
        # The pedestal of the reference pixels: median over all their lines.
        vals_all = np.where(is_ref & np.isfinite(plane), plane, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            per_line = np.nanmedian(vals_all, axis=1)
            pedestal = np.nanmedian(per_line)
        ref[p] = {i: per_line[i] - pedestal for i in lines if np.isfinite(per_line[i])}
    return ref


# --------------------------------------------------------------------------
# The public correction
# --------------------------------------------------------------------------
def correct_array(
    data: np.ndarray,
    axis: Literal["rows", "columns"],
    *,
    mask: np.ndarray | None = None,
    dq: np.ndarray | None = None,
    sigma: float = 3.0,
    sigma_lower: float | None = None,
    sigma_upper: float | None = None,
    maxiters: int | None = 10,
    scale: Literal["global", "line"] = "global",
    n_outputs: int = 1,
    odd_even: bool = False,
    keep_level: bool = True,
    return_model: bool = False,
    out: np.ndarray | None = None,
    dq_flags: int = DEFAULT_DQ_FLAGS,
    min_fraction: float = 0.2,
    background: np.ndarray | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Remove 1/f stripes from a 2D image or a stack of them.

    Every line (row or column) of every 2D plane gets a level: the
    iteratively sigma-clipped median of its usable pixels, per readout band
    and column parity if asked. The levels (minus the plane's median level
    when ``keep_level``) are subtracted along the lines.

    Parameters
    ----------
    data : numpy.ndarray
        2D ``(ny, nx)``, 3D ``(nints, ny, nx)`` or 4D
        ``(nints, ngroups, ny, nx)``; each 2D plane is corrected on its own.
        float32 and float64 of either byte order, or integers (as float32);
        any finite, infinite, NaN or denormal value. The masked pixels of a
        ``numpy.ma.MaskedArray`` are kept out of the statistics as with
        ``mask`` (and still corrected); the result is a plain array.
    axis : {"rows", "columns"}
        Direction the stripes run: ``"rows"`` gives one level per row
        (median over the last axis; NIRCam), ``"columns"`` one level per
        column (median over the second-to-last axis; NIRISS, NIRSpec, FGS,
        MIRI imager).
    mask : numpy.ndarray of bool, optional
        True where a pixel must not enter the statistics (sources, traces);
        shape of one plane or of ``data``. Masked pixels are still corrected.
    dq : numpy.ndarray of int, optional
        JWST DQ array, shape of one plane or of ``data``. Pixels with any bit
        of ``dq_flags`` are kept out of the statistics; pixels flagged
        REFERENCE_PIXEL are left unchanged.
    sigma : float, optional
        Clipping half-width in units of the scale (default 3).
    sigma_lower, sigma_upper : float, optional
        Separate lower/upper half-widths; default ``sigma``.
    maxiters : int or None, optional
        Maximum clipping iterations (default 10); 0 for a plain median,
        None to iterate until nothing changes.
    scale : {"global", "line"}, optional
        ``"global"`` (default): clip at ``sigma`` times each plane's white
        noise dispersion, estimated robustly once per plane, so a source or
        trace filling most of a line does not widen the clip. ``"line"``:
        ``sigma`` times the standard deviation of the values still kept in
        the line, exactly astropy ``sigma_clip(cenfunc="median",
        stdfunc="std")`` followed by a masked median.
    n_outputs : int, optional
        Number of readout outputs (amplifiers): the line is cut into this
        many equal bands, each with its own level (4 for full-frame JWST
        near-infrared detectors). Default 1.
    odd_even : bool, optional
        Separate levels for even and odd positions along the line within
        each band (alternating column noise). Default False.
    keep_level : bool, optional
        True (default): subtract ``level - plane level`` so the sky pedestal
        stays; False: subtract the level itself (sky to ~0).
    return_model : bool, optional
        Also return the subtracted stripe model (float32, shape of data).
    out : numpy.ndarray, optional
        Array to write the result to; same shape as ``data`` and the output
        dtype. May be ``data`` itself for an in-place correction; any other
        array sharing memory with ``data`` (a shifted or reversed view) is
        refused with a ValueError.
    dq_flags : int, optional
        DQ bits that keep a pixel out of the statistics, within uint32
        (0 to 2**32 - 1); default
        DO_NOT_USE | NON_SCIENCE | REFERENCE_PIXEL | MSA_FAILED_OPEN.
    min_fraction : float, optional
        A band (or band parity) with fewer than this fraction of its pixels
        usable takes the full-line level plus that band's median offset
        from the line level in the plane. Default 0.2.
    background : numpy.ndarray, optional
        A smooth background (plane or data shape) subtracted before the
        statistics only; it stays in the output.

    Returns
    -------
    corrected : numpy.ndarray
        Same shape as ``data``; float32 for float32 and integer input,
        float64 for float64, native byte order.
    model : numpy.ndarray
        Only with ``return_model=True``: the subtracted stripes, float32.

    Warns
    -----
    RuntimeWarning
        When lines had no usable pixel (their correction falls back to the
        line's reference pixels when ``dq`` marks some, else zero), and when
        no pixel at all is usable (data returned unchanged).

    Raises
    ------
    ValueError
        Bad shape, axis, or parameter value; ``out`` overlapping ``data``;
        or a correction the output dtype cannot hold, named in the message:
        a finite pixel minus its stripe model beyond the dtype's maximum
        (float32 values near 3.4e38 in a line whose level is far from the
        plane level: mask or DQ-flag them, or pass float64 data), a line
        level minus the plane level beyond float64, or with
        ``return_model`` a model beyond float32. Nothing is written then.
    TypeError
        Unsupported dtype of ``data``, ``mask``, ``dq`` or ``out``.

    Notes
    -----
    Levels are computed in float64 and are finite for every line with a
    usable pixel, whatever the values: huge and tiny ones are handled
    without overflow or underflow, see docs/algorithm.rst.

    Examples
    --------
    >>> import numpy as np
    >>> from bgdnoise import correct_array
    >>> rng = np.random.default_rng(0)
    >>> stripes = rng.normal(0, 0.05, (64, 1))
    >>> image = (1.0 + rng.normal(0, 0.01, (64, 128)) + stripes).astype(np.float32)
    >>> clean = correct_array(image, "rows")
    >>> bool(np.std(np.median(clean, axis=1)) < 0.2 * np.std(stripes))
    True
    """
    values, data_mask = _split_masked(data)
    work, out_dtype = _as_float_data(values)
    if out is not None:
        _check_out(out, values, work.shape, out_dtype)

    measured, planes, flags = _measure(
        work,
        axis,
        mask=mask,
        data_mask=data_mask,
        dq=dq,
        background=background,
        sigma=sigma,
        sigma_lower=sigma_lower,
        sigma_upper=sigma_upper,
        maxiters=maxiters,
        scale=scale,
        n_outputs=n_outputs,
        odd_even=odd_even,
        min_fraction=min_fraction,
        dq_flags=dq_flags,
    )
    n_planes = planes.shape[0]
    n_groups = measured.group_sizes.size
    levels = measured.levels.reshape((n_planes, -1, n_groups))
    plane_level = measured.plane_level.reshape(n_planes)

    if not np.isfinite(plane_level).any():
        warnings.warn(
            "no usable pixel in data (all NaN, zero, masked or DQ-flagged): returned unchanged.",
            RuntimeWarning,
            stacklevel=2,
        )
        line_model = np.zeros(levels.shape)
    else:
        pedestal = np.where(np.isfinite(plane_level), plane_level, 0.0)
        with np.errstate(over="ignore", invalid="ignore"):
            line_model = levels - pedestal[:, None, None] if keep_level else levels.copy()
        empty = ~np.isfinite(levels).all(axis=2)
        line_model[empty] = 0.0  # refined below where reference pixels help
        if empty.any() and flags.shape[1] > 0:
            # Lines made only of reference pixels (full-frame borders) are
            # never corrected: not worth a warning.
            preserved = (flags & _kernels.PRESERVE) != 0
            all_ref = preserved.all(axis=2 if axis == "rows" else 1)
            empty &= ~np.broadcast_to(all_ref, empty.shape)
        n_ref = 0
        if empty.any():
            ref = {}
            lines_by_plane = {
                p: np.flatnonzero(empty[p]) for p in np.flatnonzero(empty.any(axis=1))
            }
            if dq is not None:
                dq_planes = _match_shape("dq", dq, work.shape)
                ref = _reference_pixel_levels(planes, dq_planes, axis, lines_by_plane)
            for p, lines in lines_by_plane.items():
                for i in lines:
                    value = ref.get(p, {}).get(i)
                    if value is not None:  # else stays 0: no correction
                        with np.errstate(over="ignore"):
                            line_model[p, i, :] = value + (0.0 if keep_level else pedestal[p])
                        n_ref += 1
            n_empty = int(empty.sum())
            warnings.warn(
                f"{n_empty} line(s) had no usable pixel: {n_ref} corrected from "
                f"their reference pixels, {n_empty - n_ref} left uncorrected.",
                RuntimeWarning,
                stacklevel=2,
            )

    line_model = np.ascontiguousarray(line_model)
    model_max = _check_model(line_model, measured.levels, return_model)
    # Near the dtype's maximum, data minus model can overflow: then compute
    # into a fresh array (never into data) and check before anything is kept.
    may_overflow = model_max >= _SAFE_MODEL[out_dtype]
    target = out if out is not None and out.flags.c_contiguous and not may_overflow else None
    result = np.empty(work.shape, dtype=out_dtype) if target is None else target
    model = (
        np.empty(work.shape, dtype=np.float32) if return_model else np.zeros((1, 0, 0), np.float32)
    )
    _kernels.subtract_levels(
        planes,
        flags,
        axis == "rows",
        measured.band_edges,
        measured.odd_even,
        line_model,
        result.reshape((-1,) + work.shape[-2:]),
        model.reshape((-1,) + work.shape[-2:]) if return_model else model,
        bool(return_model),
    )
    if may_overflow:
        _check_overflow(result, work, model_max)
    if out is not None and target is None:
        out[...] = result
        result = out
    return (result, model) if return_model else result
