"""The file layer: JWST stage-1 products in, ``<stem>_bdgCorr.fits`` out.

jwst/stdatamodels are imported lazily here so ``import bgdnoise`` stays fast.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import write_atomically
from .core import correct_array, measure_levels
from .dqflags import DEFAULT_DQ_FLAGS, GROUP_BAD
from .instruments import ReadoutGeometry, readout_geometry

__all__ = [
    "AlreadyCorrectedError",
    "BgdNoiseWarning",
    "CorrectionResult",
    "correct_file",
    "correct_model",
    "output_path_for",
]

MARKER = "S_BDGCOR"
JWST_MARKER = "S_CLNFNS"
EMPTY_KEYWORD = "BDGEMPTY"
DONE_KEYWORD = "BDGDONE"
SUPPORTED_MODELS = ("ImageModel", "CubeModel", "RampModel")
_SUPPORTED_TEXT = (
    "_rate (ImageModel), _rateints (CubeModel), imaging _cal/_calints and _ramp (RampModel)"
)
_PARAM_NAMES = (
    "sigma", "sigma_lower", "sigma_upper", "maxiters", "scale", "odd_even", "keep_level",
    "min_fraction", "dq_flags",
)  # fmt: skip


class BgdNoiseWarning(UserWarning):
    """Data that bgdnoise corrects, but where the user should know something."""


class AlreadyCorrectedError(ValueError):
    """The data carry bgdnoise's or jwst's 1/f correction marker."""


@dataclass
class CorrectionResult:
    """What a correction did.

    Attributes
    ----------
    input, output : str
        Paths (output is None for an in-memory correction).
    geometry : ReadoutGeometry
        Axis and outputs used.
    rms_before, rms_after : numpy.ndarray
        Per plane: RMS over every 4th line of the plain line median (usable
        pixels, no clipping) around its plane median, before and after. It
        includes the white-noise floor, so it does not drop to zero.
    empty_lines : int
        Lines with no usable pixel.
    empty_planes : tuple of int
        Planes (flat index over the leading axes) with no usable pixel at
        all: left unchanged. When every plane is empty nothing was corrected
        and the file says ``S_BDGCOR = 'SKIPPED'``.
    n_planes : int
        Planes in the data.
    seconds : float
        Wall time of the whole call.
    model_output : str or None
        The stripe model file, with ``save_model=True``.
    """

    input: str | None
    output: str | None
    geometry: ReadoutGeometry
    rms_before: np.ndarray
    rms_after: np.ndarray
    empty_lines: int
    empty_planes: tuple[int, ...] = ()
    n_planes: int = 1
    seconds: float = 0.0
    model_output: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """``"COMPLETE"``, or ``"SKIPPED"`` when no plane had a usable pixel."""
        return "SKIPPED" if len(self.empty_planes) == self.n_planes else "COMPLETE"

    def summary(self) -> str:
        """One line: file, axis, outputs, stripe RMS before -> after, seconds."""
        name = Path(self.input).name if self.input else "<model>"
        if self.empty_planes:
            return (
                f"{name}: NOT CORRECTED in {len(self.empty_planes)} of {self.n_planes} "
                f"plane(s) (no usable pixel: all NaN, zero, masked or DQ-flagged); "
                f"{self.geometry.axis}, {self.geometry.n_outputs} output(s), {self.seconds:.2f} s"
            )
        return (
            f"{name}: {self.geometry.axis}, {self.geometry.n_outputs} output(s), stripe RMS "
            f"{np.nanmean(self.rms_before):.4g} -> {np.nanmean(self.rms_after):.4g}, "
            f"{self.seconds:.2f} s"
        )


def _line_rms(data: np.ndarray, axis: str, dq) -> np.ndarray:
    """RMS over lines of the plain line medians, per plane (every 4th line)."""
    # A quarter of the lines estimates an RMS over 512 lines well enough, at
    # a quarter of the cost of a full measurement.
    lines = (Ellipsis, slice(None, None, 4), slice(None)) if axis == "rows" else (
        Ellipsis, slice(None), slice(None, None, 4))  # fmt: skip
    dq_part = dq[lines] if dq is not None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        levels = measure_levels(data[lines], axis, dq=dq_part, maxiters=0, scale="line").line
        centred = levels - np.nanmedian(levels, axis=-1, keepdims=True)
        return np.sqrt(np.nanmean(centred**2, axis=-1))


def _primary_cards(model) -> list[list]:
    """The primary-header cards that the model carries outside its schema.

    Returned as plain lists: the ``ListNode`` wrappers that stdatamodels hands
    out cannot be serialised back by asdf once put in a new list.
    """
    try:
        header = model.extra_fits.PRIMARY.header
    except AttributeError:
        return []
    return [[_plain(value) for value in card] for card in header]


def _plain(value):
    """A card value without stdatamodels' node wrapper."""
    return getattr(value, "instance", value)


def _primary_marker(model) -> tuple[bool, bool]:
    """(ours, jwst's) correction markers present in the model.

    Ours is ``S_BDGCOR = 'COMPLETE'``, or ``BDGDONE = T`` which a skipped run
    leaves on data corrected before (their ``S_BDGCOR`` then says SKIPPED).
    """
    ours = any(
        (card[0] == MARKER and str(card[1]).upper() == "COMPLETE")
        or (card[0] == DONE_KEYWORD and card[1] is True)
        for card in _primary_cards(model)
    )
    jwst_done = str(model.meta.cal_step.clean_flicker_noise or "").upper() == "COMPLETE"
    return ours, jwst_done


def _check_markers(model, force: bool) -> None:
    ours, jwst_done = _primary_marker(model)
    if not (ours or jwst_done):
        return
    who = f"bgdnoise ({MARKER} = 'COMPLETE')" if ours else f"jwst ({JWST_MARKER} = 'COMPLETE')"
    if not force:
        raise AlreadyCorrectedError(
            f"the data were already corrected for 1/f noise by {who}; "
            "pass force=True (--force) to correct them again."
        )
    warnings.warn(f"correcting again data already corrected by {who}.", BgdNoiseWarning, 2)


def _set_marker(
    model, params: dict[str, Any], status: str = "COMPLETE", empty_planes: int | None = None
) -> None:
    """Record the correction (or its skipping) in HISTORY and ``S_BDGCOR``.

    ``empty_planes`` (planes left unchanged for want of usable pixels) goes
    into ``BDGEMPTY`` when given.
    """
    from . import __version__

    text = ", ".join(f"{k}={v}" for k, v in params.items())
    what = "1/f stripes removed" if status == "COMPLETE" else f"1/f correction {status.lower()}"
    model.add_history_entry(
        f"bgdnoise {__version__}: {what} ({text})",
        software={"name": "bgdnoise", "version": __version__},
    )
    done_before = _primary_marker(model)[0]
    replaced = (
        (MARKER, DONE_KEYWORD) if empty_planes is None else (MARKER, DONE_KEYWORD, EMPTY_KEYWORD)
    )
    cards = [c for c in _primary_cards(model) if c[0] not in replaced]
    cards.append([MARKER, status, "bgdnoise 1/f stripe correction"])
    if done_before and status != "COMPLETE":  # the data stay corrected
        cards.append([DONE_KEYWORD, True, "data corrected by bgdnoise before"])
    if empty_planes is not None:
        cards.append([EMPTY_KEYWORD, empty_planes, "bgdnoise: planes with no usable pixel"])
    # extra_fits nodes are not created by assigning below them.
    extra = getattr(model, "extra_fits", None)
    if extra is None:
        model.extra_fits = {"PRIMARY": {"header": cards}}
    elif not hasattr(extra, "PRIMARY"):
        extra.PRIMARY = {"header": cards}
    else:
        extra.PRIMARY.header = cards


def _load_mask(mask, plane_shape):
    if mask is None:
        return None
    if isinstance(mask, (str, os.PathLike)):
        from astropy.io import fits

        try:
            mask = fits.getdata(mask)
        except (OSError, ValueError) as exc:
            raise ValueError(f"could not read the mask file {mask}: {exc}") from exc
    mask = np.asarray(mask)
    if mask.shape != tuple(plane_shape):
        raise ValueError(
            f"the mask has shape {mask.shape}; it must have the shape of one plane "
            f"{tuple(plane_shape)} (True = keep out of the statistics)."
        )
    return mask != 0


def correct_model(
    model,
    *,
    axis: str = "auto",
    n_outputs: int | str = "auto",
    mask=None,
    force: bool = False,
    return_model: bool = False,
    **params: Any,
):
    """Correct a stdatamodels model in place and mark it.

    Parameters
    ----------
    model : ImageModel, CubeModel or RampModel
        Opened product; its SCI array is replaced by the corrected float32.
    axis : {"auto", "rows", "columns"}
        ``"auto"`` reads the geometry from the model.
    n_outputs : int or "auto"
        Readout outputs; ``"auto"`` reads NOUTPUTS.
    mask : array or path, optional
        True where pixels must stay out of the statistics (plane shape), or
        a FITS file holding such an array.
    force : bool
        Correct data that carry a 1/f correction marker.
    return_model : bool
        Also return the stripe model (float32, shape of the data; for a
        ramp, of the group differences).
    **params
        Passed to :func:`bgdnoise.correct_array` (sigma, maxiters, scale, ...).

    Returns
    -------
    result : CorrectionResult
    stripe_model : numpy.ndarray
        Only with ``return_model=True``.
    """
    start = time.perf_counter()
    name = type(model).__name__
    if name not in SUPPORTED_MODELS:
        raise ValueError(
            f"{name} is not supported; bgdnoise corrects {_SUPPORTED_TEXT}. Spectroscopic "
            "_cal products (slits, IFU) must be corrected at the _rate level."
        )
    _check_markers(model, force)
    geometry = readout_geometry(model, axis=axis, n_outputs=n_outputs)
    if geometry.is_spectroscopic and mask is None:
        warnings.warn(
            f"exposure type {geometry.exp_type} has spectral traces in the lines: a per-line "
            "level removes continuum unless the traces are masked; pass mask= (--mask FILE).",
            BgdNoiseWarning,
            2,
        )
    step = str(model.meta.cal_step.flat_field or "").upper()
    if name != "RampModel" and step == "COMPLETE":
        warnings.warn(
            "this product is flat-fielded (_cal): stripes are no longer constant along "
            "a line; correcting the _rate product is better.",
            BgdNoiseWarning,
            2,
        )

    kwargs = {k: v for k, v in params.items() if v is not None}
    unknown = set(kwargs) - set(_PARAM_NAMES)
    if unknown:
        raise TypeError(f"unknown parameter(s): {', '.join(sorted(unknown))}.")
    kwargs.setdefault("dq_flags", DEFAULT_DQ_FLAGS)

    if name == "RampModel":
        result, stripe_model = _correct_ramp(model, geometry, mask, kwargs, return_model)
    else:
        sci = model.data
        dq = model.dq
        if sci is None or dq is None:
            missing = "SCI" if sci is None else "DQ"
            raise ValueError(f"the product has no {missing} array; bgdnoise needs SCI and DQ.")
        _check_dq_shape(sci.shape, dq.shape, "DQ")
        data = np.ascontiguousarray(sci, dtype=np.float32)  # native order, one copy
        result, stripe_model = _correct_planes(
            data, geometry, dq, _load_mask(mask, sci.shape[-2:]), kwargs, return_model
        )
        model.data = data
    result.params = {"axis": geometry.axis, "n_outputs": geometry.n_outputs, **kwargs}
    _set_marker(model, result.params, result.status, len(result.empty_planes))
    result.seconds = time.perf_counter() - start
    return (result, stripe_model) if return_model else result


def _empty_from_warnings(caught) -> int:
    empty = 0
    for w in caught:
        text = str(w.message)
        if "had no usable pixel" in text:
            empty += int(text.split(" ", 1)[0])
        elif "no usable pixel in data" not in text:  # reported as empty planes instead
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return empty


def _check_dq_shape(sci_shape, dq_shape, name: str) -> None:
    if tuple(dq_shape) not in (tuple(sci_shape), tuple(sci_shape[-2:])):
        raise ValueError(
            f"the product's {name} array has shape {tuple(dq_shape)} but SCI has "
            f"{tuple(sci_shape)}: the file is inconsistent; {name} must have the shape of SCI "
            "or of one plane. Re-create the product with the pipeline."
        )


def _empty_planes(data, dq, mask, dq_flags: int) -> tuple[int, ...]:
    """Planes with no usable pixel (the correction leaves them unchanged).

    Looked at in blocks of lines that stop at the first usable pixel, so an
    ordinary plane costs one small block.
    """
    shape = data.shape[-2:]
    planes = data.reshape((-1, *shape))
    dq_planes = np.broadcast_to(dq, data.shape).reshape((-1, *shape)) if dq is not None else None
    masks = (
        np.broadcast_to(mask, data.shape).reshape((-1, *shape)) if mask is not None else None
    )  # fmt: skip
    empty = []
    for p, plane in enumerate(planes):
        for start in range(0, shape[0], 64):
            rows = slice(start, start + 64)
            usable = np.isfinite(plane[rows]) & (plane[rows] != 0)
            if dq_planes is not None:
                usable &= (dq_planes[p, rows] & dq_flags) == 0
            if masks is not None:
                usable &= ~masks[p, rows]
            if usable.any():
                break
        else:
            empty.append(p)
    return tuple(empty)


def _correct_planes(data, geometry, dq, mask, kwargs, return_model):
    """Correct ``data`` in place: (result, stripe model or None)."""
    before = _line_rms(data, geometry.axis, dq)
    empty_planes = _empty_planes(data, dq, mask, kwargs["dq_flags"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        out = correct_array(
            data, geometry.axis, dq=dq, mask=mask, n_outputs=geometry.n_outputs,
            return_model=return_model, out=data, **kwargs,
        )  # fmt: skip
    empty = _empty_from_warnings(caught)
    corrected, stripe_model = out if return_model else (out, None)
    after = _line_rms(corrected, geometry.axis, dq)
    n_planes = int(np.prod(data.shape[:-2], dtype=np.int64))
    result = CorrectionResult(
        None, None, geometry, before, after, empty, empty_planes=empty_planes, n_planes=n_planes
    )
    return result, stripe_model


def _correct_ramp(model, geometry, mask, kwargs, return_model):
    """Levels from differences of consecutive groups; re-accumulate from group 0."""
    data = model.data
    groupdq = model.groupdq
    pixeldq = model.pixeldq
    if data is None or groupdq is None or pixeldq is None:
        raise ValueError("the ramp has no SCI, GROUPDQ or PIXELDQ array; bgdnoise needs all.")
    if data.ndim != 4 or data.shape[1] < 2:
        raise ValueError(f"a ramp needs at least 2 groups, SCI has shape {data.shape}.")
    plane_mask = _load_mask(mask, data.shape[-2:])
    ramp = np.asarray(data, dtype=np.float32)
    diffs = np.diff(ramp, axis=1)
    gbad = (np.asarray(groupdq) & GROUP_BAD) != 0
    # A difference is bad if either of its groups is.
    diff_mask = gbad[:, 1:] | gbad[:, :-1]
    if plane_mask is not None:
        diff_mask |= plane_mask
    _check_dq_shape(data.shape, groupdq.shape, "GROUPDQ")
    _check_dq_shape(data.shape[-2:], pixeldq.shape, "PIXELDQ")
    result, stripe_model = _correct_planes(
        diffs, geometry, pixeldq, diff_mask, kwargs, return_model
    )
    cleaned = diffs
    new = np.empty(ramp.shape, dtype=np.float32)
    new[:, 0] = ramp[:, 0]
    np.cumsum(cleaned, axis=1, out=new[:, 1:])
    new[:, 1:] += ramp[:, :1]
    model.data = new
    return result, stripe_model


def output_path_for(path: str | Path, output: str | Path | None, suffix: str) -> Path:
    """Where ``correct_file`` writes: ``<stem><suffix>.fits`` next to the input,
    in the directory ``output``, or at the file path ``output``."""
    path = Path(path)
    stem = path.name[:-5] if path.name.lower().endswith(".fits") else path.name
    name = f"{stem}{suffix}.fits"
    if output is None:
        return path.with_name(name)
    output = Path(output)
    if output.is_dir():
        return output / name
    if output.suffix.lower() != ".fits":
        raise ValueError(f"output {output} is neither an existing directory nor a .fits file path.")
    return output


def _check_fits(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file.")
    if not path.is_file():
        raise ValueError(f"{path} is not a file.")
    with path.open("rb") as fh:
        head = fh.read(30)
    if not head.startswith(b"SIMPLE  =                    T"):
        raise ValueError(f"{path} is not a FITS file; bgdnoise corrects {_SUPPORTED_TEXT}.")


def _read_structure(path: Path):
    """Primary header and extension names; a truncated file is named as such."""
    from astropy.io import fits

    size = path.stat().st_size
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with fits.open(path) as hdul:
            header = hdul[0].header
            names = [hdu.name for hdu in hdul]
            present = set(names)
            ends = [info["datLoc"] + info["datSpan"] for info in map(_fileinfo, hdul)]
    damaged = any("corrupted" in str(w.message) or "truncated" in str(w.message) for w in caught)
    if damaged or max(ends, default=0) > size:
        raise ValueError(
            f"{path.name} is truncated or damaged ({size} bytes, shorter than its headers "
            "announce): copy or download it again."
        )
    return header, present, names[-1]


def _fileinfo(hdu) -> dict:
    return hdu.fileinfo()


def _fits_writer(model, target: Path):
    """A writer for :func:`write_atomically`: the model as FITS, named for its target."""

    def write(tmp: Path) -> None:
        model.to_fits(str(tmp), overwrite=True)  # records tmp's name: the target's

    return write


def correct_file(
    path: str | Path,
    output: str | Path | None = None,
    *,
    suffix: str = "_bdgCorr",
    overwrite: bool = False,
    force: bool = False,
    save_model: bool = False,
    axis: str = "auto",
    n_outputs: int | str = "auto",
    mask=None,
    **params: Any,
) -> tuple[Path, CorrectionResult]:
    """Correct a JWST product file and write ``<stem>_bdgCorr.fits``.

    Parameters
    ----------
    path : str or Path
        A ``_rate``, ``_rateints``, imaging ``_cal``/``_calints`` or
        ``_ramp`` FITS file. It is never modified.
    output : str or Path, optional
        Directory to write into, or the output file path; default next to
        the input.
    suffix : str
        Added to the input stem (the name without ``.fits``).
    overwrite : bool
        Replace an existing output; otherwise that is an error.
    force : bool
        Correct data already marked as corrected by bgdnoise or jwst.
    save_model : bool
        Also write the subtracted stripes as ``<stem>_bdgModel.fits``.
    axis, n_outputs, mask
        See :func:`correct_model`.
    **params
        Passed to :func:`bgdnoise.correct_array`.

    Returns
    -------
    output : Path
        The corrected file.
    result : CorrectionResult
        Axis, outputs, stripe RMS before/after per plane, empty lines.

    Raises
    ------
    FileNotFoundError, FileExistsError, PermissionError
        Missing input, existing output without ``overwrite``, target
        directory not writable.
    ValueError
        Not a FITS file, unsupported product, instrument or mode, missing
        arrays, already corrected (:class:`AlreadyCorrectedError`).
    """
    start = time.perf_counter()
    path = Path(path)
    _check_fits(path)
    target = output_path_for(path, output, suffix)
    model_target = output_path_for(path, target.parent, "_bdgModel") if save_model else None
    if target.resolve() == path.resolve():
        raise ValueError(f"the output {target} would replace the input; choose another name.")
    for t in filter(None, (target, model_target)):
        if t.exists() and not overwrite:
            raise FileExistsError(f"{t} exists; pass overwrite=True (--overwrite) to replace it.")
    if not target.parent.is_dir():
        raise FileNotFoundError(f"output directory {target.parent} does not exist.")
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write to {target.parent}; choose another output directory.")

    # Fail fast, before the (slow) datamodel open, on what the header tells.
    header, present, last = _read_structure(path)
    model_type = header.get("DATAMODL")
    if model_type is None:
        raise ValueError(
            f"{path.name} has no DATAMODL keyword: not a JWST pipeline product; bgdnoise "
            f"corrects {_SUPPORTED_TEXT}. For other images use bgdnoise.correct_array."
        )
    if model_type not in SUPPORTED_MODELS:
        raise ValueError(
            f"{model_type} is not supported; bgdnoise corrects {_SUPPORTED_TEXT}. "
            "Spectroscopic _cal products (slits, IFU) must be corrected at the _rate level."
        )
    readout_geometry(header, axis=axis, n_outputs=n_outputs)
    needed = ("SCI", "GROUPDQ", "PIXELDQ") if model_type == "RampModel" else ("SCI", "DQ")
    missing = [name for name in needed if name not in present]
    if missing:
        # Pipeline products end with their ASDF extension: a file that
        # stops earlier was most likely cut short.
        cut = (
            f" It ends after its {last} extension, with no ASDF extension, as a truncated "
            "copy would: copy or download it again."
            if last != "ASDF"
            else ""
        )
        raise ValueError(
            f"{path.name} has no {' or '.join(missing)} extension; bgdnoise needs "
            f"{', '.join(needed)} to know which pixels to use.{cut}"
        )

    from stdatamodels.jwst import datamodels

    try:
        model = datamodels.open(str(path))
    except Exception as exc:  # stdatamodels raises many kinds for bad products
        # The first line names the problem; schema errors go on for pages.
        reason = " ".join(str(exc).strip().splitlines()[:2]) or type(exc).__name__
        raise ValueError(
            f"{path.name} could not be opened as a JWST product ({reason}); bgdnoise corrects "
            f"{_SUPPORTED_TEXT}."
        ) from exc
    with model:
        out = correct_model(
            model, axis=axis, n_outputs=n_outputs, mask=mask, force=force,
            return_model=save_model, **params,
        )  # fmt: skip
        result, stripes = out if save_model else (out, None)
        outputs = [(target, _fits_writer(model, target))]
        stripe_model = _stripe_model(model, stripes) if save_model else None
        if stripe_model is not None:
            outputs.append((model_target, _fits_writer(stripe_model, model_target)))
            result.model_output = str(model_target)
        try:
            write_atomically(outputs, overwrite=overwrite)
        finally:
            if stripe_model is not None:
                stripe_model.close()
    result.input = str(path)
    result.output = str(target)
    result.seconds = time.perf_counter() - start
    return target, result


def _stripe_model(model, stripes: np.ndarray):
    """The subtracted stripes as a datamodel with the product's metadata."""
    from stdatamodels.jwst import datamodels

    cls = datamodels.ImageModel if stripes.ndim == 2 else datamodels.CubeModel
    data = stripes if stripes.ndim <= 3 else stripes.reshape((-1,) + stripes.shape[-2:])
    out = cls(data=data)
    out.update(model)
    return out
