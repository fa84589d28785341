"""Write a simulation as a ``_rate`` / ``_rateints`` FITS product.

On a real header (the user's own product's, or one of the test fixtures)
every card is kept as it is, after a check that its geometry is the one
simulated; without one, a small synthetic header that stdatamodels and
:func:`bgdnoise.readout_geometry` read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..instruments import DETECTORS
from .readout import readout_for

__all__ = ["synthetic_header", "to_hdulist", "write_product"]

# Cards astropy derives from the array: never copied from a given header.
_STRUCTURAL = ("SIMPLE", "XTENSION", "BITPIX", "NAXIS", "PCOUNT", "GCOUNT", "EXTEND", "BZERO",
               "BSCALE")  # fmt: skip
_IMAGING = {"NIRCAM": "NRC_IMAGE", "NIRISS": "NIS_IMAGE", "NIRSPEC": "NRS_FIXEDSLIT",
            "FGS": "FGS_IMAGE"}  # fmt: skip
_SPECTRAL = {("NIRCAM", "grism_trace"): "NRC_TSGRISM", ("NIRISS", "curved_trace"): "NIS_SOSS"}
# Valid SUBARRAY names: the real one for the usual shapes, else one the schema accepts.
_SUBARRAYS = {
    ("NIRCAM", (256, 2048)): "SUBGRISM256",
    ("NIRISS", (256, 2048)): "SUBSTRIP256",
    ("NIRCAM", None): "SUB640",
    ("NIRISS", None): "SUB256",
    ("NIRSPEC", None): "SUB512",
    ("FGS", None): "SUB128CNTR",
}


def _detector_for(readout) -> str:
    """The first near-infrared detector read with the same signed axes."""
    for name, (instrument, fast, slow) in DETECTORS.items():
        if instrument != "MIRI" and (fast, slow) == (readout.fastaxis, readout.slowaxis):
            return name
    raise ValueError(
        f"no JWST detector reads with FASTAXIS={readout.fastaxis}, SLOWAXIS={readout.slowaxis}; "
        "pass DETECTOR=... (and its INSTRUME) as keywords."
    )


def synthetic_header(sim, **keywords):
    """A primary header describing a simulation.

    Parameters
    ----------
    sim : SimulatedRate
        The simulation.
    **keywords
        Cards to set or override (e.g. ``DETECTOR="NRCB1"``, ``EXP_TYPE=...``).

    Returns
    -------
    astropy.io.fits.Header
    """
    from astropy.io import fits

    readout, (ny, nx) = sim.readout, sim.data.shape[-2:]
    detector = keywords.get("DETECTOR") or _detector_for(readout)
    instrument = keywords.get("INSTRUME") or DETECTORS[detector][0]
    full = (ny, nx) == (2048, 2048)
    subarray = "FULL" if full else _SUBARRAYS.get((instrument, (ny, nx)))
    subarray = subarray or _SUBARRAYS[(instrument, None)]
    tframe = readout.frame_time((ny, nx))
    cards = {
        "DATAMODL": "CubeModel" if sim.data.ndim == 3 else "ImageModel",
        "TELESCOP": "JWST", "INSTRUME": instrument, "DETECTOR": detector,
        "EXP_TYPE": _SPECTRAL.get((instrument, sim.scene_name), _IMAGING[instrument]),
        "DATE-OBS": "2026-01-01", "TIME-OBS": "00:00:00",
        "SUBARRAY": subarray, "SUBSTRT1": 1, "SUBSTRT2": 1, "SUBSIZE1": nx, "SUBSIZE2": ny,
        "FASTAXIS": readout.fastaxis, "SLOWAXIS": readout.slowaxis,
        "NOUTPUTS": readout.n_outputs, "NINTS": sim.data.shape[0] if sim.data.ndim == 3 else 1,
        "NGROUPS": readout.ngroups, "NFRAMES": readout.nframes, "GROUPGAP": readout.groupgap,
        "TFRAME": round(tframe, 5),
        "TGROUP": round(tframe * (readout.nframes + readout.groupgap), 5),
        "BGDSIM": sim.scene_name, "BGDSEED": sim.seed,
    }  # fmt: skip
    cards.update(keywords)
    header = fits.Header()
    for key, value in cards.items():
        header[key] = value
    return header


def _checked(primary, sim):
    """A copy of a given primary header, after checking it describes the simulation."""
    header = primary.copy()
    for key in list(header.keys()):
        if key.startswith(_STRUCTURAL):
            header.remove(key, remove_all=True)
    ny, nx = sim.data.shape[-2:]
    size = (header.get("SUBSIZE2", ny), header.get("SUBSIZE1", nx))
    if size != (ny, nx):
        raise ValueError(
            f"the header's SUBSIZE2 x SUBSIZE1 is {size}, the simulation's {(ny, nx)}."
        )
    wanted = readout_for(header)
    got = sim.readout
    mine = (got.fastaxis, got.slowaxis, got.n_outputs)
    theirs = (wanted.fastaxis, wanted.slowaxis, wanted.n_outputs)
    if mine != theirs:
        raise ValueError(
            f"the header reads FASTAXIS, SLOWAXIS, outputs = {theirs}, the simulation {mine}; "
            "simulate with readout=bgdnoise.sim.readout_for(header)."
        )
    header["DATAMODL"] = "CubeModel" if sim.data.ndim == 3 else "ImageModel"
    return header


def to_hdulist(sim, primary=None, sci=None, **keywords):
    """The simulation as a FITS product: primary, SCI, ERR and DQ.

    Parameters
    ----------
    sim : SimulatedRate
        The simulation.
    primary : astropy.io.fits.Header, optional
        A real primary header; kept card for card (DATAMODL follows the
        data's dimension). Its SUBSIZE and readout (FASTAXIS, SLOWAXIS,
        NOUTPUTS, or the detector table) must match the simulation: build
        it with ``readout=readout_for(primary)``. Default: a synthetic header.
    sci : astropy.io.fits.Header, optional
        A real SCI header (structural cards are replaced; BUNIT is DN/s,
        the simulation's unit, whatever product the header came from).
    **keywords
        Cards for the synthetic primary header (ignored with ``primary``).

    Returns
    -------
    astropy.io.fits.HDUList
    """
    from astropy.io import fits

    header = synthetic_header(sim, **keywords) if primary is None else _checked(primary, sim)
    sci_header = fits.Header() if sci is None else sci.copy()
    for key in list(sci_header.keys()):
        if key.startswith(_STRUCTURAL):
            sci_header.remove(key, remove_all=True)
    sci_header["BUNIT"] = "DN/s"  # a rate, whatever product the SCI header came from
    err = np.broadcast_to(sim.err, sim.data.shape).astype(np.float32)
    return fits.HDUList(
        [
            fits.PrimaryHDU(header=header),
            fits.ImageHDU(sim.data, header=sci_header, name="SCI"),
            fits.ImageHDU(err, name="ERR"),
            fits.ImageHDU(sim.dq, name="DQ"),
        ]
    )


def write_product(sim, path, primary=None, sci=None, *, overwrite=False, **keywords) -> Path:
    """Write the simulation to ``path`` (see :func:`to_hdulist`) and return the path.

    Name it like a pipeline product (``..._rate.fits``, ``..._rateints.fits``)
    for the bgdnoise command and the Step to recognise it.
    """
    path = Path(path)
    to_hdulist(sim, primary, sci, **keywords).writeto(path, overwrite=overwrite)
    return path
