"""A realistic simulator of JWST near-infrared rates with 1/f noise: ``bgdnoise.sim``.

1/f noise is one time stream per output clocked pixel by pixel along the
fast axis (10 us per pixel, 12 pixels of overhead per line), outputs read in
parallel in alternating directions, a part common to the outputs and a part
of each output's own, alternating column noise, per-output and odd/even
offsets; the frames of a ramp carry it and the least-squares slope of the
ramp leaves what a rate shows. White (read and shot) noise, DQ with
reference and bad pixels, and scenes from an empty sky to a crowded field,
a large galaxy and spectral traces. The truth (scene, white noise, stripes)
comes back beside the data, and :func:`score` measures a correction against
it; :func:`write_product` writes a ``_rate`` or ``_rateints`` file, on a
real header if given one. See ``docs/simulate.rst``.
"""

from .measure import (
    band_means,
    common_mode_fraction,
    line_spectrum,
    low_frequency_fraction,
    spectral_slope,
)
from .noise import pink_stream, stripes_1f, white_sigma
from .products import to_hdulist, write_product
from .rate import SimulatedRate, reference_pixels, simulate_rate
from .readout import NoiseModel, Readout, readout_for
from .scenes import SCENES, Scene, make_scene, sersic_profile
from .score import Score, band_edges, score

__all__ = [
    "SCENES",
    "NoiseModel",
    "Readout",
    "Scene",
    "Score",
    "SimulatedRate",
    "band_edges",
    "band_means",
    "common_mode_fraction",
    "line_spectrum",
    "low_frequency_fraction",
    "make_scene",
    "pink_stream",
    "readout_for",
    "reference_pixels",
    "score",
    "sersic_profile",
    "simulate_rate",
    "spectral_slope",
    "stripes_1f",
    "to_hdulist",
    "white_sigma",
    "write_product",
]
