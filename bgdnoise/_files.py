"""File checks before the (slow) datamodel open, output names, FITS writers."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SUPPORTED_MODELS = ("ImageModel", "CubeModel", "RampModel")
SUPPORTED_TEXT = (
    "_rate (ImageModel), _rateints (CubeModel), imaging _cal/_calints and _ramp (RampModel)"
)


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


def naming_the_file(path: Path, exc: Exception) -> str:
    """``exc``'s message, led by ``path`` unless it already names it as given.

    (Messages that name the file by its bare name get the path in front: in
    a batch, files of one name may come from several directories.)
    """
    message = str(exc)
    return message if str(path) in message else f"{path}: {message}"


def check_fits(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file.")
    if not path.is_file():
        raise ValueError(f"{path} is not a file.")
    with path.open("rb") as fh:
        head = fh.read(30)
    if not head.startswith(b"SIMPLE  =                    T"):
        raise ValueError(f"{path} is not a FITS file; bgdnoise corrects {SUPPORTED_TEXT}.")


def read_structure(path: Path):
    """Primary header and extension names; a truncated file is named as such.

    Damage is read from the file's layout, not from astropy's warnings: the
    headers announce where each extension's data ends, and the last must end
    where the file does (shorter: truncated; longer: a header astropy could
    not parse, which it skips with a warning). Recording warnings would take
    ``warnings.catch_warnings``, process-wide state that two threads opening
    files at once (a Dask worker's) would corrupt.
    """
    from astropy.io import fits
    from astropy.io.fits.hdu.base import _CorruptedHDU
    from astropy.io.fits.verify import VerifyWarning
    from astropy.utils.exceptions import AstropyUserWarning

    size = path.stat().st_size
    damaged = f"{path.name} is truncated or damaged ({size} bytes"
    advice = "copy or download it again."
    try:
        with fits.open(path) as hdul:
            header = hdul[0].header
            names = [hdu.name for hdu in hdul]  # reads every header
            corrupted = any(isinstance(hdu, _CorruptedHDU) for hdu in hdul)
            ends = [info["datLoc"] + info["datSpan"] for info in map(_fileinfo, hdul)]
    except (VerifyWarning, AstropyUserWarning) as exc:  # where warnings are errors
        raise ValueError(f"{damaged}; a header cannot be read): {advice}") from exc
    announced = max(ends, default=0)
    if corrupted or announced != size:
        raise ValueError(f"{damaged}, where its headers announce {announced}): {advice}")
    return header, set(names), names[-1]


def _fileinfo(hdu) -> dict:
    return hdu.fileinfo()


def fits_writer(model, target: Path):
    """A writer for :func:`write_atomically`: the model as FITS, named for its target."""

    def write(tmp: Path) -> None:
        model.to_fits(str(tmp), overwrite=True)  # records tmp's name: the target's

    return write


def stripe_model(model, stripes: np.ndarray):
    """The subtracted stripes as a datamodel with the product's metadata."""
    from stdatamodels.jwst import datamodels

    cls = datamodels.ImageModel if stripes.ndim == 2 else datamodels.CubeModel
    data = stripes if stripes.ndim <= 3 else stripes.reshape((-1,) + stripes.shape[-2:])
    out = cls(data=data)
    if cls is not datamodels.ImageModel:
        # A CubeModel makes ERR and DQ of the data's shape: zeros that would
        # triple the file (the 2D model has SCI alone).
        del out.dq, out.err
    out.update(model)
    return out


#: Suffixes of the files written beside the corrected product.
EXTRA_SUFFIXES = {"model": "_bdgModel", "mask": "_bdgMask", "background": "_bdgBkg"}


def scene_plane(report, what: str) -> tuple[np.ndarray | None, str]:
    """The report's source mask or background to save, or None and why there is none."""
    plane = getattr(report, "source_mask" if what == "mask" else "background", None)
    if plane is not None:
        return plane, ""
    needs = "mask_sources=True" if what == "mask" else "background_method='model'"
    return None, f"no {what} to save: it is made with {needs}."


def scene_plane_model(model, plane: np.ndarray, what: str):
    """A source mask or background plane as an ImageModel with the product's metadata."""
    from stdatamodels.jwst import datamodels

    out = datamodels.ImageModel(data=np.ascontiguousarray(plane, dtype=np.float32))
    out.update(model)
    if what == "mask":  # 1 on sources, 0 elsewhere: not in the product's units
        out.meta.bunit_data = None
    out.extra_fits = {"PRIMARY": {"header": [["BDGPLANE", what, "bgdnoise: what SCI holds"]]}}
    return out


def check_target(path: Path, output, suffix: str, extras: tuple[str, ...], overwrite: bool):
    """The output paths of ``correct_file``; refuse what would lose a file.

    ``extras`` names the files written beside it (keys of
    :data:`EXTRA_SUFFIXES`). Returns ``(target, {extra: path})``.
    """
    target = output_path_for(path, output, suffix)
    extra_targets = {
        what: output_path_for(path, target.parent, EXTRA_SUFFIXES[what]) for what in extras
    }
    if target.resolve() == path.resolve():
        raise ValueError(f"the output {target} would replace the input; choose another name.")
    for t in (target, *extra_targets.values()):
        if t.exists() and not overwrite:
            raise FileExistsError(f"{t} exists; pass overwrite=True (--overwrite) to replace it.")
    if not target.parent.is_dir():
        raise FileNotFoundError(f"output directory {target.parent} does not exist.")
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write to {target.parent}; choose another output directory.")
    return target, extra_targets


def precheck_product(path: Path, axis, n_outputs) -> None:
    """Fail fast, before the slow datamodel open, on what the headers tell."""
    from .instruments import readout_geometry

    header, present, last = read_structure(path)
    model_type = header.get("DATAMODL")
    if model_type is None:
        raise ValueError(
            f"{path.name} has no DATAMODL keyword: not a JWST pipeline product; bgdnoise "
            f"corrects {SUPPORTED_TEXT}. For other images use bgdnoise.correct_array."
        )
    if model_type not in SUPPORTED_MODELS:
        raise ValueError(
            f"{model_type} is not supported; bgdnoise corrects {SUPPORTED_TEXT}. "
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


def open_product(path: Path):
    """The product as a datamodel; its errors as one short ValueError."""
    from stdatamodels.jwst import datamodels

    try:
        return datamodels.open(str(path))
    except Exception as exc:  # stdatamodels raises many kinds for bad products
        # The first line names the problem; schema errors go on for pages.
        reason = " ".join(str(exc).strip().splitlines()[:2]) or type(exc).__name__
        raise ValueError(
            f"{path.name} could not be opened as a JWST product ({reason}); bgdnoise corrects "
            f"{SUPPORTED_TEXT}."
        ) from exc
