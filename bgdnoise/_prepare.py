"""The first stage: data, mask, DQ and background in the form the kernels take.

Everything here checks or converts; nothing measures.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from . import _kernels
from .dqflags import REFERENCE_PIXEL
from .options import CorrectionOptions

AXES = ("rows", "columns")


@dataclass
class Layout:
    """Where the lines, bands and parity groups are.

    Attributes
    ----------
    along_rows : bool
        True when the lines are rows.
    n_lines, length : int
        Lines per plane and pixels per line.
    band_edges : numpy.ndarray
        Positions along the line where the readout bands start and end.
    odd_even : bool
        Separate levels for even and odd positions within each band.
    group_sizes, group_start : numpy.ndarray
        Pixels per group on one line, and each group's segment start.
    """

    along_rows: bool
    n_lines: int
    length: int
    band_edges: np.ndarray
    odd_even: bool
    group_sizes: np.ndarray
    group_start: np.ndarray


@dataclass
class Prepared:
    """The output of :func:`prepare`.

    Attributes
    ----------
    work : numpy.ndarray
        The data, native byte order, in the output dtype.
    out_dtype : numpy.dtype
        float32 or float64.
    planes : numpy.ndarray
        ``(P, ny, nx)`` view of ``work``.
    flags : numpy.ndarray
        uint8 ``(P or 1, ny, nx)``: EXCLUDE from the statistics, PRESERVE the
        value; ``(1, 0, 0)`` when there is nothing to flag.
    background : numpy.ndarray
        ``(P or 1, ny, nx)`` subtracted before the statistics, or ``(1, 0, 0)``.
    dq : numpy.ndarray or None
        The DQ planes as given (for the reference-pixel fallback).
    layout : Layout
        Lines, bands and groups.
    axis : str
        ``"rows"`` or ``"columns"``.
    """

    work: np.ndarray
    out_dtype: np.dtype
    planes: np.ndarray
    flags: np.ndarray
    background: np.ndarray
    dq: np.ndarray | None
    layout: Layout
    axis: str


def prepare(data, axis: str, options: CorrectionOptions, *, dq=None, background=None) -> Prepared:
    """Check and convert the inputs of a correction.

    Parameters
    ----------
    data : array_like or numpy.ma.MaskedArray
        2D, 3D or 4D image data; a MaskedArray's mask joins ``options.mask``.
    axis : {"rows", "columns"}
        Direction the stripes run.
    options : CorrectionOptions
        ``mask``, ``dq_flags``, ``n_outputs`` (``"auto"`` means 1 for an
        array) and ``odd_even`` are used here.
    dq, background : numpy.ndarray, optional
        Plane- or data-shaped DQ and background.

    Returns
    -------
    Prepared
    """
    if axis not in AXES:
        raise ValueError(
            f"axis must be 'rows' (one level per row, NIRCam) or 'columns' "
            f"(one level per column, NIRISS/NIRSpec/FGS/MIRI), got {axis!r}."
        )
    values, data_mask = split_masked(data)
    work, out_dtype = as_float_data(values)
    planes = np.ascontiguousarray(work).reshape((-1,) + work.shape[-2:])
    flags = build_flags(options.mask, dq, options.dq_flags, work.shape, data_mask)
    if background is None:
        bg = np.zeros((1, 0, 0), dtype=planes.dtype)  # stand-in: no background
    else:
        bg = match_shape("background", np.asarray(background), work.shape)
        bg = np.ascontiguousarray(bg, dtype=planes.dtype)
    dq_planes = match_shape("dq", dq, work.shape) if dq is not None else None
    layout = make_layout(work.shape, axis, options)
    return Prepared(work, out_dtype, planes, flags, bg, dq_planes, layout, axis)


def make_layout(shape: tuple[int, ...], axis: str, options: CorrectionOptions) -> Layout:
    """Lines, bands and parity groups of planes of ``shape``."""
    ny, nx = shape[-2:]
    along_rows = axis == "rows"
    n_lines, length = (ny, nx) if along_rows else (nx, ny)
    n_outputs = 1 if options.n_outputs == "auto" else options.n_outputs
    if n_outputs > length:
        raise ValueError(
            f"n_outputs={n_outputs} is larger than the line length {length}; "
            "use n_outputs=1 for small subarrays."
        )
    band_edges = np.array([b * length // n_outputs for b in range(n_outputs + 1)], np.int64)
    sizes = []
    for a, b in itertools.pairwise(band_edges):
        if options.odd_even:
            n_even = (b - a + (1 - a % 2)) // 2
            sizes += [n_even, (b - a) - n_even]
        else:
            sizes.append(b - a)
    group_sizes = np.array(sizes, dtype=np.int64)
    group_start = np.concatenate([[0], np.cumsum(group_sizes)]).astype(np.int64)
    return Layout(
        along_rows, n_lines, length, band_edges, options.odd_even, group_sizes, group_start
    )


def split_masked(data):
    """The values of ``data`` and, for a MaskedArray, its mask (else None)."""
    if not isinstance(data, np.ma.MaskedArray):
        return data, None
    own = np.ma.getmaskarray(data)
    return np.ma.getdata(data), (own if own.any() else None)


def as_float_data(data) -> tuple[np.ndarray, np.dtype]:
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


def match_shape(name: str, arr, data_shape: tuple[int, ...]) -> np.ndarray:
    """``arr`` as ``(1 or P, ny, nx)``: it must have a plane's or the data's shape."""
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


def check_out(out, values, shape, out_dtype) -> None:
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


def _as_mask(mask, data_shape, data_mask) -> np.ndarray:
    """uint8 ``(1 or P, ny, nx)`` of the user's mask OR a MaskedArray's own."""
    m = np.zeros((1, 0, 0), np.uint8)  # stand-in: no mask
    if mask is not None:
        m = match_shape("mask", mask, data_shape)
        if m.dtype.kind not in "biu":
            raise TypeError(f"mask has dtype {m.dtype}; pass a boolean array.")
        m = np.ascontiguousarray(m.view(np.uint8) if m.dtype == bool else (m != 0).view(np.uint8))
    if data_mask is not None:
        own = data_mask.reshape((-1,) + tuple(data_shape[-2:]))
        m = (own | (m != 0)).view(np.uint8) if m.shape[1] > 0 else own.view(np.uint8)
        m = np.ascontiguousarray(m)
    return m


def build_flags(mask, dq, dq_flags: int, data_shape, data_mask=None) -> np.ndarray:
    """uint8 flags ``(Pf, ny, nx)``: EXCLUDE from statistics, PRESERVE values."""
    if mask is None and data_mask is None and dq is None:
        return np.zeros((1, 0, 0), dtype=np.uint8)  # stand-in: no flags
    m = _as_mask(mask, data_shape, data_mask)
    d = np.zeros((1, 0, 0), np.uint32)  # stand-in: no DQ
    if dq is not None:
        d = match_shape("dq", dq, data_shape)
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
