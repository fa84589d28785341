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

_HOW_TO_FORCE = (
    "pass axis='rows' or axis='columns' (and n_outputs) to correct_file, "
    "or --axis/--outputs to the bgdnoise command, or use bgdnoise.correct_array"
)


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
        Where the axis came from: ``"keywords"``, ``"detector table"`` or
        ``"MIRI imager rule"``.
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
        }
    if isinstance(source, Mapping) or hasattr(source, "get"):
        keys = ("INSTRUME", "DETECTOR", "SUBARRAY", "FASTAXIS", "SLOWAXIS", "NOUTPUTS", "EXP_TYPE")
        return {key: source.get(key) for key in keys}
    raise TypeError(
        f"readout_geometry takes a datamodel, a FITS header, a mapping of keywords or a "
        f"path, got {type(source).__name__}."
    )


def readout_geometry(source: Any) -> ReadoutGeometry:
    """Readout axis, outputs and directions of a JWST detector image.

    Parameters
    ----------
    source : datamodel, astropy.io.fits.Header, mapping or path
        A stdatamodels model, a primary header (or a dict of its keywords:
        INSTRUME, DETECTOR, SUBARRAY, FASTAXIS, SLOWAXIS, NOUTPUTS,
        EXP_TYPE) or the path of a FITS file.

    Returns
    -------
    ReadoutGeometry

    Raises
    ------
    ValueError
        Unknown instrument or detector (the message lists the known ones),
        MIRI MRS or another MIRI mode than the imager.

    Examples
    --------
    >>> g = readout_geometry({"INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "SUBARRAY": "FULL"})
    >>> g.axis, g.n_outputs
    ('rows', 4)
    """
    kw = _keywords(source)
    instrument = str(kw.get("INSTRUME") or "").strip().upper()
    detector = str(kw.get("DETECTOR") or "").strip().upper()
    subarray = kw.get("SUBARRAY")
    subarray = str(subarray).strip().upper() if subarray else None
    exp_type = kw.get("EXP_TYPE")
    exp_type = str(exp_type).strip().upper() if exp_type else None

    if instrument not in INSTRUMENTS:
        raise ValueError(
            f"unknown instrument {instrument or '(none)'!r}; known: {', '.join(INSTRUMENTS)}. "
            f"For other data {_HOW_TO_FORCE}."
        )
    if detector not in DETECTORS or DETECTORS[detector][0] != instrument:
        known = ", ".join(d for d, (inst, _, _) in DETECTORS.items() if inst == instrument)
        raise ValueError(
            f"unknown {instrument} detector {detector or '(none)'!r}; known: {known}. "
            f"To correct it anyway {_HOW_TO_FORCE}."
        )
    _, table_fast, table_slow = DETECTORS[detector]

    if instrument == "MIRI":
        if detector != "MIRIMAGE" or (exp_type or "").startswith("MIR_MRS"):
            raise ValueError(
                f"MIRI MRS data ({detector}, {exp_type}) are not supported: the IFU slices "
                "run along the columns and a per-column level would remove them."
            )
        if exp_type not in (None, "MIR_IMAGE"):
            raise ValueError(
                f"MIRI exposure type {exp_type} is not supported (only MIR_IMAGE, as in jwst); "
                f"to correct it anyway {_HOW_TO_FORCE}."
            )
        # jwst ignores the keywords for MIRI: the banding runs along columns.
        return ReadoutGeometry(
            instrument, detector, subarray, exp_type, table_fast, table_slow,
            "columns", 1, (1,), "MIRI imager rule",
        )  # fmt: skip

    fast, slow, source_name = table_fast, table_slow, "detector table"
    kw_fast, kw_slow = kw.get("FASTAXIS"), kw.get("SLOWAXIS")
    if kw_fast is not None and abs(int(kw_fast)) in (1, 2):
        fast, source_name = int(kw_fast), "keywords"
        if kw_slow is not None and abs(int(kw_slow)) in (1, 2):
            slow = int(kw_slow)
    n_outputs = kw.get("NOUTPUTS")
    if n_outputs in (None, 0):
        n_outputs = 4 if subarray in ("FULL", None) else 1
    n_outputs = int(n_outputs)
    if n_outputs < 1:
        raise ValueError(f"NOUTPUTS={n_outputs} in the file is not valid; pass n_outputs.")
    direction = 1 if fast > 0 else -1
    directions = tuple(direction if b % 2 == 0 else -direction for b in range(n_outputs))
    axis = "rows" if abs(fast) == 1 else "columns"
    return ReadoutGeometry(
        instrument, detector, subarray, exp_type, fast, slow, axis, n_outputs, directions,
        source_name,
    )  # fmt: skip
