"""Readout geometry: from instrument, detector and keywords to what the kernels need.

The FITS keywords of the file (FASTAXIS, SLOWAXIS, NOUTPUTS) win where they are
present; the detector table below is the fallback. MIRI is special: its files
say FASTAXIS=1 but its residual banding runs along columns; like jwst, only the
imager (MIR_IMAGE) is handled, as columns with one output, and the MRS is
refused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DETECTORS", "ReadoutGeometry", "readout_geometry"]

# (instrument, FASTAXIS, SLOWAXIS) of each detector in the DMS (science) frame.
DETECTORS: dict[str, tuple[str, int, int]] = {
    "NRCA1": ("NIRCAM", -1, 2),
    "NRCA2": ("NIRCAM", 1, -2),
    "NRCA3": ("NIRCAM", -1, 2),
    "NRCA4": ("NIRCAM", 1, -2),
    "NRCALONG": ("NIRCAM", -1, 2),
    "NRCB1": ("NIRCAM", 1, -2),
    "NRCB2": ("NIRCAM", -1, 2),
    "NRCB3": ("NIRCAM", 1, -2),
    "NRCB4": ("NIRCAM", -1, 2),
    "NRCBLONG": ("NIRCAM", 1, -2),
    "NIS": ("NIRISS", -2, -1),
    "NRS1": ("NIRSPEC", 2, 1),
    "NRS2": ("NIRSPEC", -2, -1),
    "GUIDER1": ("FGS", -2, -1),
    "GUIDER2": ("FGS", 2, -1),
    "MIRIMAGE": ("MIRI", 1, 2),
    "MIRIFULONG": ("MIRI", 1, 2),
    "MIRIFUSHORT": ("MIRI", 1, 2),
}
INSTRUMENTS = ("NIRCAM", "NIRISS", "NIRSPEC", "FGS", "MIRI")

# Exposure types whose spectral traces run along or across the lines: a
# per-line median eats continuum unless the trace is masked.
SPECTRAL_EXP_TYPES = ("NRC_TSGRISM", "NRC_WFSS", "NIS_SOSS", "NIS_WFSS")
SPECTRAL_PREFIXES = ("NRS_",)

AXES = ("rows", "columns")
_KEYWORDS = ("INSTRUME", "DETECTOR", "SUBARRAY", "FASTAXIS", "SLOWAXIS", "NOUTPUTS", "EXP_TYPE",
             "READPATT")  # fmt: skip


@dataclass(frozen=True)
class ReadoutGeometry:
    """How a detector image was read, as far as the correction cares.

    Attributes
    ----------
    instrument, detector, subarray, exp_type : str or None
        From the file.
    fastaxis, slowaxis : int
        Signed readout axes in the DMS frame (1 = x, 2 = y; the sign is the
        read direction).
    axis : str
        ``"rows"`` (one level per row) or ``"columns"`` (one per column).
    n_outputs : int
        Readout outputs (amplifiers) along the fast axis.
    band_directions : tuple of int
        Read direction (+1/-1 along the fast axis) of each output's band;
        it alternates from one output to the next.
    source : str
        Where the axis came from: ``"keywords"``, ``"detector table"``,
        ``"MIRI imager rule"`` or ``"user"`` (an override).
    """

    instrument: str
    detector: str
    subarray: str | None
    exp_type: str | None
    fastaxis: int
    slowaxis: int
    axis: str
    n_outputs: int
    band_directions: tuple[int, ...]
    source: str

    @property
    def is_spectroscopic(self) -> bool:
        """True for exposure types with spectral traces in the lines."""
        exp = (self.exp_type or "").upper()
        return exp in SPECTRAL_EXP_TYPES or exp.startswith(SPECTRAL_PREFIXES)

    def describe(self) -> str:
        """One line for people: axis, outputs and where they came from."""
        return (
            f"{self.instrument} {self.detector} {self.subarray or '?'} "
            f"({self.exp_type or 'exp type ?'}): one level per "
            f"{self.axis[:-1]}, {self.n_outputs} output(s), "
            f"FASTAXIS={self.fastaxis} SLOWAXIS={self.slowaxis} [{self.source}]"
        )


def _keywords(source: Any) -> dict[str, Any]:
    """The few keywords needed, from a datamodel, a header, a mapping or a path."""
    if isinstance(source, (str, os.PathLike)):
        from astropy.io import fits

        source = fits.getheader(source, 0)
    meta = getattr(source, "meta", None)
    if meta is not None and hasattr(meta, "instrument"):
        return {
            "INSTRUME": meta.instrument.name,
            "DETECTOR": meta.instrument.detector,
            "SUBARRAY": meta.subarray.name,
            "FASTAXIS": meta.subarray.fastaxis,
            "SLOWAXIS": meta.subarray.slowaxis,
            "NOUTPUTS": meta.exposure.noutputs,
            "EXP_TYPE": meta.exposure.type,
            "READPATT": meta.exposure.readpatt,
        }
    if isinstance(source, Mapping) or hasattr(source, "get"):
        return {key: source.get(key) for key in _KEYWORDS}
    raise TypeError(
        f"readout_geometry takes a datamodel, a FITS header, a mapping of keywords or a "
        f"path, got {type(source).__name__}."
    )


def _text(value) -> str | None:
    return str(value).strip().upper() or None if value is not None else None


def _axis_keyword(value) -> int | None:
    """A FASTAXIS/SLOWAXIS value if it is one of +-1, +-2."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if abs(number) in (1, 2) else None


def _override_hint(fast: int | None, n_outputs: int | None = None) -> str:
    """The exact override to give, in the API's and the command line's spelling."""
    if fast is not None:
        axis = AXES[abs(fast) - 1]
        api, cli = f"axis={axis!r}", f"--axis {axis}"
    else:
        api = "axis='rows' (stripes along rows, as NIRCam) or axis='columns' (NIRISS, NIRSpec, FGS)"
        cli = "--axis rows|columns"
    if n_outputs is not None:
        api += f", n_outputs={n_outputs}"
        cli += f" --outputs {n_outputs}"
    return f"pass {api} to correct_file or the Step, or {cli} to bgdnoise correct"


def _check_overrides(axis: str, n_outputs: int | str) -> int | None:
    if axis != "auto" and axis not in AXES:
        raise ValueError(f"axis must be 'auto', 'rows' or 'columns', got {axis!r}.")
    if n_outputs == "auto" or n_outputs is None:
        return None
    text = str(n_outputs).strip()
    number = int(text) if text.isdigit() and not isinstance(n_outputs, (bool, float)) else 0
    if number < 1:
        raise ValueError(f"n_outputs must be 'auto' or a positive integer, got {n_outputs!r}.")
    return number


def _file_outputs(kw: dict[str, Any], subarray: str | None, fast: int | None) -> int:
    """Outputs from NOUTPUTS (IRS2's 5 = 4 science + 1 reference), else by subarray."""
    n_outputs = kw.get("NOUTPUTS")
    if n_outputs in (None, "", 0):
        return 4 if subarray in ("FULL", None) else 1
    try:
        n_outputs = int(n_outputs)
    except (TypeError, ValueError):
        n_outputs = -1
    if n_outputs == 5:
        # NIRSpec IRS2: 4 science outputs plus the interleaved reference
        # output, which the rate data no longer carry.
        return 4
    if n_outputs < 1:
        raise ValueError(
            f"NOUTPUTS={kw.get('NOUTPUTS')!r} in the file is not a number of outputs; "
            f"{_override_hint(fast, 4 if subarray == 'FULL' else 1)}."
        )
    return n_outputs


def _directions(fast: int | None, n_outputs: int) -> tuple[int, ...]:
    direction = -1 if fast is not None and fast < 0 else 1
    return tuple(direction if b % 2 == 0 else -direction for b in range(n_outputs))


def readout_geometry(
    source: Any, *, axis: str = "auto", n_outputs: int | str = "auto"
) -> ReadoutGeometry:
    """Readout axis, outputs and directions of a JWST detector image.

    Parameters
    ----------
    source : datamodel, astropy.io.fits.Header, mapping or path
        A stdatamodels model, a primary header (or a dict of its keywords:
        INSTRUME, DETECTOR, SUBARRAY, FASTAXIS, SLOWAXIS, NOUTPUTS,
        EXP_TYPE, READPATT) or the path of a FITS file.
    axis : {"auto", "rows", "columns"}
        Override of the stripe direction. Given, the instrument and
        detector need not be known, and the keywords are not checked.
    n_outputs : int or "auto"
        Override of the number of outputs (NOUTPUTS).

    Returns
    -------
    ReadoutGeometry

    Raises
    ------
    ValueError
        Unknown instrument or detector, a NOUTPUTS that is no number (the
        message shows the override to use), MIRI MRS or another MIRI mode
        than the imager.

    Examples
    --------
    >>> g = readout_geometry({"INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "SUBARRAY": "FULL"})
    >>> g.axis, g.n_outputs
    ('rows', 4)
    >>> readout_geometry({"INSTRUME": "NIRSPEC", "DETECTOR": "NRS1", "NOUTPUTS": 5}).n_outputs
    4
    """
    user_outputs = _check_overrides(axis, n_outputs)
    kw = _keywords(source)
    instrument, detector = _text(kw.get("INSTRUME")), _text(kw.get("DETECTOR"))
    subarray, exp_type = _text(kw.get("SUBARRAY")), _text(kw.get("EXP_TYPE"))
    fast, slow = _axis_keyword(kw.get("FASTAXIS")), _axis_keyword(kw.get("SLOWAXIS"))
    if axis != "auto":
        outputs = user_outputs or _file_outputs(kw, subarray, fast)
        return ReadoutGeometry(
            instrument or "?", detector or "?", subarray, exp_type, fast or 0, slow or 0,
            axis, outputs, _directions(fast, outputs), "user",
        )  # fmt: skip
    if instrument not in INSTRUMENTS:
        raise ValueError(
            f"unknown instrument {instrument or '(none)'!r}; known: {', '.join(INSTRUMENTS)}. "
            f"For other data {_override_hint(fast, user_outputs)}."
        )
    if detector not in DETECTORS or DETECTORS[detector][0] != instrument:
        known = ", ".join(d for d, (inst, _, _) in DETECTORS.items() if inst == instrument)
        raise ValueError(
            f"unknown {instrument} detector {detector or '(none)'!r}; known: {known}. "
            f"To correct it anyway {_override_hint(fast, user_outputs)}."
        )
    _, table_fast, table_slow = DETECTORS[detector]
    if instrument == "MIRI":
        return _miri_geometry(detector, subarray, exp_type, user_outputs)
    source_name = "keywords" if fast is not None else "detector table"
    fast = fast if fast is not None else table_fast
    slow = slow if slow is not None and source_name == "keywords" else table_slow
    outputs = user_outputs or _file_outputs(kw, subarray, fast)
    axis = AXES[abs(fast) - 1]
    return ReadoutGeometry(
        instrument, detector, subarray, exp_type, fast, slow, axis, outputs,
        _directions(fast, outputs), source_name if user_outputs is None else "user",
    )  # fmt: skip


def _miri_geometry(detector, subarray, exp_type, user_outputs) -> ReadoutGeometry:
    """MIRI: the imager only, one level per column, whatever the keywords say."""
    if detector != "MIRIMAGE" or (exp_type or "").startswith("MIR_MRS"):
        raise ValueError(
            f"MIRI MRS data ({detector}, {exp_type}) are not supported: the IFU slices "
            "run along the columns and a per-column level would remove them."
        )
    if exp_type not in (None, "MIR_IMAGE"):
        raise ValueError(
            f"MIRI exposure type {exp_type} is not supported (only MIR_IMAGE, as in jwst); "
            f"to correct it anyway {_override_hint(2, user_outputs or 1)}."
        )
    _, fast, slow = DETECTORS[detector]
    outputs = user_outputs or 1
    source = "MIRI imager rule" if user_outputs is None else "user"
    return ReadoutGeometry(
        "MIRI", detector, subarray, exp_type, fast, slow, "columns", outputs,
        _directions(1, outputs), source,
    )  # fmt: skip
