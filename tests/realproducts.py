"""Rate-level products built on real (and documented) JWST headers.

``tests/data/headers/`` holds primary and SCI headers as text, one card per
line (see its SOURCES.md): two from flight products, five written from the
instrument documentation. Each fixture here becomes a FITS product with SCI,
ERR and DQ of the header's SUBSIZE shape, written with astropy (not through a
datamodel, so every card reaches the file as the archive would have it), with
injected stripes whose truth is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from bgdnoise.simulate import make_frame

HEADERS = Path(__file__).parent / "data" / "headers"

DO_NOT_USE = 1
REFERENCE_PIXEL = 2**31


@dataclass(frozen=True)
class Fixture:
    """A header pair and the geometry a correct reading of it gives."""

    name: str
    axis: str
    n_outputs: int
    spectroscopic: bool = False


# The expected geometry comes from the instrument documentation (DOMAIN.md),
# not from bgdnoise's own reading of the keywords.
FIXTURES = {
    f.name: f
    for f in (
        Fixture("nircam-nrca2-full-coron-uncal", "rows", 4),
        Fixture("fgs-guider2-acq1-uncal", "columns", 1),
        Fixture("niriss-nis-full-rate", "columns", 4),
        Fixture("nirspec-nrs1-full-irs2-rate", "columns", 4, spectroscopic=True),
        Fixture("miri-mirimage-full-rate", "columns", 1),
        Fixture("nircam-nrcalong-subgrism256-4out-rate", "rows", 4, spectroscopic=True),
        Fixture("nircam-nrcalong-subgrism256-1out-rate", "rows", 1, spectroscopic=True),
    )
}
# Cards astropy derives from the array: never copied from the text header.
STRUCTURAL = ("SIMPLE", "XTENSION", "BITPIX", "NAXIS", "PCOUNT", "GCOUNT", "EXTEND", "BZERO",
              "BSCALE")  # fmt: skip


def read_header(name: str, part: str) -> fits.Header:
    """The ``primary`` or ``sci`` header of a fixture."""
    text = (HEADERS / f"{name}.{part}.txt").read_text()
    return fits.Header.fromstring(text, sep="\n")


def _strip_structure(header: fits.Header) -> fits.Header:
    header = header.copy()
    for key in list(header.keys()):
        if key.startswith(STRUCTURAL):
            header.remove(key, remove_all=True)
    return header


@dataclass
class RealProduct:
    """A product written from a fixture, with its truth."""

    fixture: Fixture
    path: Path
    stripes: np.ndarray
    reference: np.ndarray
    primary: fits.Header

    @property
    def good(self) -> np.ndarray:
        """Pixels whose stripes a correction must remove (not reference)."""
        return np.broadcast_to(~self.reference, self.stripes.shape)


def plane_shape(primary: fits.Header) -> tuple[int, int]:
    return int(primary["SUBSIZE2"]), int(primary["SUBSIZE1"])


def build_product(name: str, path: Path, *, sigma: float = 0.01, seed: int = 0) -> RealProduct:
    """Write a rate (2-D SCI header) or rateints (3-D) product of a fixture.

    Level-1b (uncal) headers become rate products: DATAMODL ImageModel and
    the SUBSIZE shape, as detector1 would write them.
    """
    fixture = FIXTURES[name]
    primary, sci_header = read_header(name, "primary"), read_header(name, "sci")
    ny, nx = plane_shape(primary)
    nints = int(sci_header.get("NAXIS3", 1)) if sci_header.get("NAXIS") == 3 else None
    shape = (nints, ny, nx) if nints else (ny, nx)
    primary["DATAMODL"] = "CubeModel" if nints else "ImageModel"
    subarray = str(primary.get("SUBARRAY", "")).strip()
    frame = make_frame(
        shape, fixture.axis, sigma=sigma, n_outputs=fixture.n_outputs,
        output_offset_rms=2 * sigma if fixture.n_outputs > 1 else 0.0,
        source_fraction=0.05, seed=seed, dtype=np.float64,
    )  # fmt: skip
    reference = np.zeros((ny, nx), bool)
    if subarray == "FULL" and fixture.name.split("-")[0] != "miri":
        reference[:4] = reference[-4:] = reference[:, :4] = reference[:, -4:] = True
    dq = np.where(reference, np.uint32(REFERENCE_PIXEL | DO_NOT_USE), np.uint32(0))
    sci = np.where(reference, 0.0, frame.data).astype(np.float32)
    hdus = fits.HDUList(
        [
            fits.PrimaryHDU(header=_strip_structure(primary)),
            fits.ImageHDU(sci, header=_strip_structure(sci_header), name="SCI"),
            fits.ImageHDU(np.full(shape, sigma, np.float32), name="ERR"),
            fits.ImageHDU(np.broadcast_to(dq, shape).copy(), name="DQ"),
        ]
    )
    hdus.writeto(path)
    stripes = np.where(reference, 0.0, frame.stripes)
    return RealProduct(fixture, Path(path), stripes, reference, fits.getheader(path, 0))


def line_residual(removed: np.ndarray, product: RealProduct) -> tuple[float, float]:
    """RMS of line means of (removed - injected stripes), and of the stripes.

    Per plane, lines along the fixture's axis, on non-reference pixels, each
    plane's mean taken out (the pedestal is kept by design).
    """
    good = product.good
    axis = -1 if product.fixture.axis == "rows" else -2

    def rms(values):
        count = good.sum(axis=axis)
        means = np.where(good, values, 0.0).sum(axis=axis) / np.maximum(count, 1)
        means = np.where(count > 0, means, np.nan)
        means = means - np.nanmean(means, axis=-1, keepdims=True)
        return float(np.sqrt(np.nanmean(means**2)))

    return rms(removed - product.stripes), rms(product.stripes)
