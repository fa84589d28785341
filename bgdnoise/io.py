"""The file layer: JWST stage-1 products in, ``<stem>_bdgCorr.fits`` out.

``correct_model`` corrects an opened datamodel through the stages of
:mod:`bgdnoise.stages` (on group differences for a ramp) and records the
correction; ``correct_file`` adds the checks before the open and the atomic
writes. jwst/stdatamodels are imported lazily so ``import bgdnoise`` stays
fast.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import write_atomically
from ._files import (
    SUPPORTED_MODELS,
    SUPPORTED_TEXT,
    check_fits,
    check_target,
    fits_writer,
    open_product,
    output_path_for,
    precheck_product,
    scene_plane,
    scene_plane_model,
    stripe_model,
)
from .dqflags import GROUP_BAD
from .instruments import readout_geometry
from .markers import (
    AlreadyCorrectedError,
    BgdNoiseWarning,
    check_markers,
    set_marker,
)
from .options import CorrectionOptions
from .result import CorrectionResult
from .stages import correct_planes

__all__ = [
    "AlreadyCorrectedError",
    "BgdNoiseWarning",
    "CorrectionResult",
    "correct_file",
    "correct_model",
    "output_path_for",
]


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


def _warn_about(model, geometry, options: CorrectionOptions) -> None:
    """Warnings that depend on the product, not on the numbers."""
    if geometry.is_spectroscopic and options.mask is None and not options.mask_sources:
        warnings.warn(
            f"exposure type {geometry.exp_type} has spectral traces in the lines: with "
            "mask_sources=False a per-line level removes continuum unless the traces are "
            "masked; pass mask= (--mask FILE) or leave mask_sources on.",
            BgdNoiseWarning,
            3,
        )
    step = str(model.meta.cal_step.flat_field or "").upper()
    if type(model).__name__ != "RampModel" and step == "COMPLETE":
        warnings.warn(
            "this product is flat-fielded (_cal): stripes are no longer constant along "
            "a line; correcting the _rate product is better.",
            BgdNoiseWarning,
            3,
        )


def correct_model(
    model,
    *,
    force: bool = False,
    return_model: bool = False,
    options: CorrectionOptions | None = None,
    **kwargs: Any,
):
    """Correct a stdatamodels model in place and mark it.

    Parameters
    ----------
    model : ImageModel, CubeModel or RampModel
        Opened product. A native-order, C-contiguous float32 SCI array is
        corrected in place; any other (a FITS file's big-endian array) is
        replaced by a corrected float32 copy.
    force : bool
        Correct data that carry a 1/f correction marker.
    return_model : bool
        Also return the stripe model (float32, shape of the data; for a
        ramp, of the group differences).
    options : CorrectionOptions, optional
        The options as an object; keywords win over it.
    **kwargs
        Any correction option (docs/options.rst): ``axis`` and ``n_outputs``
        (``"auto"``: read from the model; given, they override it before it
        is checked), ``mask`` (plane-shaped array or FITS file; True = keep
        out of the statistics), ``sigma``, ``maxiters``, ``scale``, ...

    Returns
    -------
    result : CorrectionResult
    stripe_model : numpy.ndarray
        Only with ``return_model=True``.
    """
    return _correct_model(
        model, force=force, return_model=return_model, options=options, option_kwargs=kwargs
    )


def _correct_model(model, *, force, return_model, options, option_kwargs=None, reuse_sci=False):
    """:func:`correct_model`, its ``**kwargs`` as ``option_kwargs``.

    ``reuse_sci``: see :func:`_correct_image` (only for a product opened here).
    """
    start = time.perf_counter()
    name = type(model).__name__
    if name not in SUPPORTED_MODELS:
        raise ValueError(
            f"{name} is not supported; bgdnoise corrects {SUPPORTED_TEXT}. Spectroscopic "
            "_cal products (slits, IFU) must be corrected at the _rate level."
        )
    options = CorrectionOptions.from_kwargs(options, **(option_kwargs or {}))
    check_markers(model, force)
    geometry = readout_geometry(model, axis=options.axis, n_outputs=options.n_outputs)
    if options.n_outputs not in ("auto", None):
        _check_user_outputs(geometry.n_outputs, geometry.axis, model.data.shape)
    _warn_about(model, geometry, options)
    if name == "RampModel":
        result, stripes = _correct_ramp(model, geometry, options, return_model)
    else:
        result, stripes = _correct_image(model, geometry, options, return_model, reuse_sci)
    result.params = {"axis": geometry.axis, "n_outputs": geometry.n_outputs, **options.changed()}
    result.params.pop("mask", None)
    set_marker(
        model, result.params, result.status, len(result.empty_planes), result.quality_cards()
    )
    result.seconds = time.perf_counter() - start
    return (result, stripes) if return_model else result


def _check_user_outputs(n_outputs: int, axis: str, shape) -> None:
    """Refuse a user's output count that cannot split the product's lines equally.

    A detector's outputs read bands of equal width, and a product's own
    NOUTPUTS always divides its lines; a count given by hand (``--outputs
    3`` on 128-pixel lines) would put band edges where no output starts.
    (``correct_array`` takes such counts: arrays may be cutouts.)
    """
    length = shape[-1] if axis == "rows" else shape[-2]
    if length % n_outputs:
        raise ValueError(
            f"n_outputs={n_outputs} does not divide the product's line length "
            f"{length} into equal bands, as a detector's outputs read them; leave n_outputs "
            "to the header ('auto') or give a count that divides it."
        )


def _check_dq_shape(sci_shape, dq_shape, name: str) -> None:
    if tuple(dq_shape) not in (tuple(sci_shape), tuple(sci_shape[-2:])):
        raise ValueError(
            f"the product's {name} array has shape {tuple(dq_shape)} but SCI has "
            f"{tuple(sci_shape)}: the file is inconsistent; {name} must have the shape of SCI "
            "or of one plane. Re-create the product with the pipeline."
        )


def _correct_image(model, geometry, options, return_model, reuse_sci=False):
    """A rate, rateints or cal product: SCI corrected with DQ.

    ``reuse_sci`` (a product :func:`correct_file` opened itself): the
    corrected values are written back into the product's own SCI array when
    it is float32 in memory (not mapped from a file), so the product does not
    hold the original and the corrected plane at once while it is saved.
    """
    sci, dq = model.data, model.dq
    if sci is None or dq is None:
        missing = "SCI" if sci is None else "DQ"
        raise ValueError(f"the product has no {missing} array; bgdnoise needs SCI and DQ.")
    _check_dq_shape(sci.shape, dq.shape, "DQ")
    mask = _load_mask(options.mask, sci.shape[-2:])
    # Native-order float32: a copy, unless SCI is that already (then corrected in place).
    data = np.ascontiguousarray(sci, dtype=np.float32)
    result, stripes = _correct_planes(data, geometry, dq, mask, options, return_model)
    if reuse_sci and data is not sci and _in_memory_float32(sci):
        sci[...] = data  # in the product's byte order
    else:
        model.data = data
    return result, stripes


def _in_memory_float32(array) -> bool:
    """Whether ``array`` is writeable float32 on memory numpy itself allocated.

    Only a chain of arrays ending in one that owns its memory qualifies: a
    memmap, or memory some other object holds (a buffer, a mapping), does not.
    """
    if not (isinstance(array, np.ndarray) and array.dtype.kind == "f" and array.itemsize == 4):
        return False
    if not array.flags.writeable:
        return False
    base = array
    while isinstance(base, np.ndarray) and not isinstance(base, np.memmap):
        if base.base is None:
            return True  # owns its memory
        base = base.base
    return False


def _correct_planes(data, geometry, dq, mask, options, return_model):
    """Correct ``data`` in place: (result, stripe model or None)."""
    options = CorrectionOptions.from_kwargs(
        options, axis=geometry.axis, n_outputs=geometry.n_outputs, mask=mask
    )
    _, stripes, report = correct_planes(  # in place: data is corrected
        data, geometry.axis, options, dq=dq, out=data, return_model=return_model
    )
    for message in report.warnings():
        if "no usable pixel" not in message:  # reported as empty planes and lines
            warnings.warn(message, RuntimeWarning, 4)
    # The stripe RMS before and after comes from the report's own passes.
    lead = data.shape[:-2]
    before = report.line_rms_before.reshape(lead)
    after = report.line_rms_after.reshape(lead)
    return CorrectionResult.from_report(geometry, report, before, after), stripes


def _correct_ramp(model, geometry, options, return_model):
    """Levels from differences of consecutive groups; re-accumulate from group 0."""
    data, groupdq, pixeldq = model.data, model.groupdq, model.pixeldq
    if data is None or groupdq is None or pixeldq is None:
        raise ValueError("the ramp has no SCI, GROUPDQ or PIXELDQ array; bgdnoise needs all.")
    if data.ndim != 4 or data.shape[1] < 2:
        raise ValueError(f"a ramp needs at least 2 groups, SCI has shape {data.shape}.")
    _check_dq_shape(data.shape, groupdq.shape, "GROUPDQ")
    _check_dq_shape(data.shape[-2:], pixeldq.shape, "PIXELDQ")
    plane_mask = _load_mask(options.mask, data.shape[-2:])
    ramp = np.asarray(data, dtype=np.float32)
    diffs = np.diff(ramp, axis=1)
    gbad = (np.asarray(groupdq) & GROUP_BAD) != 0
    # A difference is bad if either of its groups is.
    diff_mask = gbad[:, 1:] | gbad[:, :-1]
    if plane_mask is not None:
        diff_mask |= plane_mask
    result, stripes = _correct_planes(diffs, geometry, pixeldq, diff_mask, options, return_model)
    new = np.empty(ramp.shape, dtype=np.float32)
    new[:, 0] = ramp[:, 0]
    np.cumsum(diffs, axis=1, out=new[:, 1:])
    new[:, 1:] += ramp[:, :1]
    model.data = new
    return result, stripes


def _extra_models(model, result: CorrectionResult, stripes, extras) -> list:
    """The datamodels written beside the product: ``[(what, model)]``.

    A mask or background that the options did not make is not written (the
    result's report says so; ``correct_file`` warns).
    """
    made = []
    report = result.report
    for what in extras:
        if what == "model":
            made.append((what, stripe_model(model, stripes)))
            continue
        plane, why_not = scene_plane(report, what)
        if plane is None:
            warnings.warn(why_not, BgdNoiseWarning, 3)
            continue
        made.append((what, scene_plane_model(model, plane, what)))
    return made


def correct_file(
    path: str | Path,
    output: str | Path | None = None,
    *,
    suffix: str = "_bdgCorr",
    overwrite: bool = False,
    force: bool = False,
    save_model: bool = False,
    save_mask: bool = False,
    save_background: bool = False,
    options: CorrectionOptions | None = None,
    **kwargs: Any,
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
    save_mask : bool
        Also write the source mask (1 on sources) as ``<stem>_bdgMask.fits``
        (with ``mask_sources=True``).
    save_background : bool
        Also write the fitted background, relative to the sky level, as
        ``<stem>_bdgBkg.fits`` (with ``background_method="model"``).
    options : CorrectionOptions, optional
        The options as an object; keywords win over it.
    **kwargs
        Any correction option, see :func:`correct_model` and docs/options.rst.

    Returns
    -------
    output : Path
        The corrected file.
    result : CorrectionResult
        Axis, outputs, stripe RMS before/after per plane, empty lines and
        planes, the report of the stages.

    Raises
    ------
    FileNotFoundError, FileExistsError, PermissionError
        Missing input, existing output without ``overwrite``, target
        directory not writable.
    OutputWriteError
        The file system refused the write (full disk, ...): nothing is left.
    ValueError
        Not a FITS file, unsupported product, instrument or mode, missing
        arrays, already corrected (:class:`AlreadyCorrectedError`).
    """
    start = time.perf_counter()
    path = Path(path)
    check_fits(path)
    options = CorrectionOptions.from_kwargs(options, **kwargs)
    extras = tuple(
        what for what, wanted in
        (("model", save_model), ("mask", save_mask), ("background", save_background)) if wanted
    )  # fmt: skip
    target, extra_targets = check_target(path, output, suffix, extras, overwrite)
    precheck_product(path, options.axis, options.n_outputs)
    with open_product(path) as model:
        # (The product is ours: its SCI array may take the corrected values.)
        out = _correct_model(
            model, force=force, return_model=save_model, options=options, reuse_sci=True
        )
        result, stripes = out if save_model else (out, None)
        extra_models = _extra_models(model, result, stripes, extras)
        outputs = [(target, fits_writer(model, target))]
        outputs += [(extra_targets[w], fits_writer(m, extra_targets[w])) for w, m in extra_models]
        try:
            write_atomically(outputs, overwrite=overwrite)
        finally:
            for _, extra in extra_models:
                extra.close()
    if "model" in extra_targets:
        result.model_output = str(extra_targets["model"])
    result.extra_outputs = {w: str(extra_targets[w]) for w, _ in extra_models}
    result.input, result.output = str(path), str(target)
    result.seconds = time.perf_counter() - start
    return target, result
