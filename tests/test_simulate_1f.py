"""The 1/f simulator (``bgdnoise.sim``): its noise has the properties of QUALITY.md.

Checked: 1/f power along the readout (between lines and within a line), the
common mode across outputs, the alternating read direction, the timing of
JWST frames, the ramp fit, the truth beside the data, DQ, the scenes'
claims, and products on real headers.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
from realproducts import read_header

from bgdnoise.dqflags import DO_NOT_USE, REFERENCE_PIXEL
from bgdnoise.sim import (
    SCENES,
    NoiseModel,
    Readout,
    band_means,
    common_mode_fraction,
    line_spectrum,
    low_frequency_fraction,
    make_scene,
    pink_stream,
    readout_for,
    reference_pixels,
    simulate_rate,
    spectral_slope,
    stripes_1f,
    white_sigma,
)

QUIET = NoiseModel(acn=0.0, odd_even_offset=0.0, output_offset=0.0)


@pytest.fixture(scope="module")
def stripe_stack():
    """Stripes of 8 seeds, 512x512, 4 outputs, a short ramp (for spectra)."""
    readout = Readout.for_axis("rows", 4, ngroups=3)
    return np.array(
        [stripes_1f((512, 512), readout, NoiseModel(), np.random.default_rng(s)) for s in range(8)]
    )


# --- the noise: 1/f, common mode, read directions --------------------------------------------


def test_pink_stream_is_unit_variance_1f():
    rng = np.random.default_rng(0)
    streams = np.array([pink_stream(2**16, rng, dtype=np.float64) for _ in range(8)])
    assert 0.8 < streams.var(axis=1).mean() < 1.2
    power = np.mean(np.abs(np.fft.rfft(streams, axis=1)) ** 2, axis=0)[1:]
    freqs = np.fft.rfftfreq(2**16)[1:]
    assert spectral_slope(freqs, power, 1e-4, 0.4) == pytest.approx(-1.0, abs=0.1)
    white = pink_stream(10_000, rng, exponent=0.0)
    assert white.dtype == np.float32 and 0.95 < white.var() < 1.05


def test_line_mean_power_falls_as_1_over_f(stripe_stack):
    freqs, power = line_spectrum(stripe_stack, "rows")
    assert -1.25 < spectral_slope(freqs, power, 4 / 512, 1 / 4) < -0.75


def test_within_line_power_falls_as_1_over_f():
    # One output: a line is 512 consecutive pixel clocks.
    readout = Readout.for_axis("rows", 1, ngroups=3)
    stripes = stripes_1f((64, 512), readout, QUIET, np.random.default_rng(1))
    rows = stripes - stripes.mean(axis=1, keepdims=True)
    power = np.mean(np.abs(np.fft.rfft(rows * np.hanning(512), axis=1)) ** 2, axis=0)[1:]
    freqs = np.fft.rfftfreq(512)[1:]
    assert spectral_slope(freqs, power, 1 / 128, 1 / 8) == pytest.approx(-1.0, abs=0.2)


def test_most_of_the_stripe_is_common_to_the_outputs(stripe_stack):
    line, band = common_mode_fraction(stripe_stack, "rows", 4)
    assert line > 0.9
    assert 0.75 < band < line


def test_outputs_read_in_alternating_directions():
    stripes = stripes_1f((128, 512), Readout.for_axis("rows", 4), QUIET, np.random.default_rng(2))
    bands = [b - b.mean(axis=1, keepdims=True) for b in np.split(stripes, 4, axis=1)]

    def corr(a, b):
        return np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b))

    # Output 1 reads backwards: its mirrored pixels are read with output 0's.
    assert corr(bands[0], bands[1][:, ::-1]) > 0.7
    assert corr(bands[0], bands[1][:, ::-1]) > corr(bands[0], bands[1]) + 0.5
    assert corr(bands[0], bands[2]) > 0.7


def test_read_order_follows_the_axes():
    clock, position = Readout(1, -2, 2).read_order((3, 8))
    # 4 pixels per output + 12 overhead per line; lines read from the last one.
    np.testing.assert_array_equal(position, [0, 1, 2, 3, 3, 2, 1, 0])
    np.testing.assert_array_equal(clock[:, 0], [32, 16, 0])
    seed = 3

    def stripes(fast, slow, shape=(32, 64)):
        return stripes_1f(shape, Readout(fast, slow, 4), NoiseModel(), np.random.default_rng(seed))

    reference = stripes(1, 2)
    flipped = np.concatenate([b[:, ::-1] for b in np.split(reference, 4, axis=1)], axis=1)
    np.testing.assert_array_equal(stripes(-1, 2), flipped)
    np.testing.assert_array_equal(stripes(1, -2), reference[::-1])
    np.testing.assert_array_equal(stripes(2, 1, (64, 32)), reference.T)


def test_frame_times_are_jwst_s():
    assert Readout().frame_time((2048, 2048)) == pytest.approx(10.73676)
    assert Readout(n_outputs=4).frame_time((256, 2048)) == pytest.approx(1.34668)
    assert Readout(n_outputs=1).frame_time((256, 2048)) == pytest.approx(5.3148)
    # NIRISS SOSS SUBSTRIP256: lines are 256-pixel columns.
    assert Readout.for_axis("columns", 1).frame_time((256, 2048)) == pytest.approx(5.494)


def test_slope_weights_fit_a_line():
    readout = Readout(ngroups=4, nframes=2, groupgap=1)
    weights = readout.frame_weights((64, 64))
    times = np.arange(1, readout.n_frames + 1) * readout.frame_time((64, 64))
    assert readout.n_frames == 11 and weights[2] == 0
    assert weights.sum() == pytest.approx(0, abs=1e-12)
    assert weights @ times == pytest.approx(1.0)


def test_white_sigma_grows_with_flux():
    readout, noise = Readout(), NoiseModel()
    read_only = white_sigma(0.0, readout, noise, (2048, 2048))
    assert read_only == pytest.approx(
        4.0 * np.sqrt(np.sum(readout.frame_weights((2048,) * 2) ** 2)) / 2
    )
    assert white_sigma(1.0, readout, noise, (2048, 2048)) > read_only
    assert white_sigma(1.0, readout, replace(noise, photon_noise=False), (2048, 2048)) == read_only


# --- the rate and its truth -------------------------------------------------------------------


def test_rate_is_scene_plus_white_plus_stripes():
    sim = simulate_rate("sparse", (256, 512), seed=4)
    assert sim.data.dtype == np.float32 and sim.data.shape == (256, 512)
    finite = np.isfinite(sim.data)
    total = sim.scene + sim.white.astype(np.float64) + sim.stripes
    np.testing.assert_allclose(sim.data[finite], total[finite], rtol=1e-6, atol=1e-6)
    bad = (sim.dq & DO_NOT_USE) != 0
    np.testing.assert_array_equal(~finite, bad & ~sim.reference)
    assert 0 < bad.mean() < 0.01
    assert np.std(sim.white[sim.sky_mask] / sim.err[sim.sky_mask]) == pytest.approx(1, abs=0.05)
    assert sim.sigma == pytest.approx(np.median(sim.err[sim.sky_mask]), rel=0.01)


def test_seeded_and_integrations_independent():
    one = simulate_rate("sparse", (64, 128), n_outputs=2, seed=5)
    again = simulate_rate("sparse", (64, 128), n_outputs=2, seed=5)
    cube = simulate_rate("sparse", (64, 128), n_outputs=2, nints=3, seed=5)
    np.testing.assert_array_equal(one.data, again.data)
    assert cube.data.shape == cube.dq.shape == (3, 64, 128)
    np.testing.assert_array_equal(cube.stripes[0], one.stripes)
    np.testing.assert_array_equal(cube.scene, one.scene)
    assert not np.allclose(cube.stripes[1], cube.stripes[0])
    assert np.corrcoef(cube.white[1].ravel(), cube.white[2].ravel())[0, 1] < 0.05
    other = simulate_rate("sparse", (64, 128), n_outputs=2, seed=6)
    assert not np.allclose(other.stripes, one.stripes)


def test_reference_pixels_and_dq():
    full = reference_pixels((2048, 2048))
    assert full.sum() == 2048 * 2048 - 2040 * 2040
    grism = reference_pixels((256, 2048))
    assert grism[:, :4].all() and grism[:, -4:].all() and grism[:, 4:-4].sum() == 0
    sim = simulate_rate("grism_trace", n_outputs=1, seed=7)
    ref = sim.reference
    np.testing.assert_array_equal(ref, grism)
    assert (sim.dq[ref] == (REFERENCE_PIXEL | DO_NOT_USE)).all()
    # No light on reference pixels, and no slope in a rate, as jwst writes it ...
    assert (sim.scene[ref] == 0).all() and np.isnan(sim.data[ref]).all()
    assert not (sim.source_mask & ref).any()
    # ... or, read, the line's stripes (a ramp's groups; a correction's fallback).
    read = simulate_rate("grism_trace", n_outputs=1, seed=7, reference_values="read")
    np.testing.assert_array_equal(read.data[~ref], sim.data[~ref])
    assert np.isfinite(read.data[ref]).all()
    np.testing.assert_allclose(read.data[ref], (read.white + read.stripes)[ref], atol=1e-6)
    with pytest.raises(ValueError, match="reference_values must be 'nan' or 'read'"):
        simulate_rate("sparse", (64, 128), reference_values="zero")


def test_own_scene_and_argument_checks():
    scene = np.full((64, 128), 0.3)
    scene[30:34, 60:64] += 50.0
    sim = simulate_rate(scene, n_outputs=2, seed=8)
    assert sim.scene_name == "user" and sim.sky == pytest.approx(0.3)
    np.testing.assert_array_equal(sim.scene, scene)
    assert sim.source_mask[31, 61] and sim.sky_mask[0, 0]
    with pytest.raises(ValueError, match="unknown scene"):
        simulate_rate("supernova_remnant")
    with pytest.raises(ValueError, match="contradict"):
        simulate_rate("sparse", (64, 64), axis="columns", readout=Readout())
    with pytest.raises(ValueError, match="outputs"):
        simulate_rate("sparse", (64, 66), n_outputs=4)
    with pytest.raises(ValueError, match="fastaxis"):
        Readout(1, 1)


def test_columns_readout_stripes_run_along_columns():
    sim = simulate_rate("curved_trace", seed=9)
    assert sim.axis == "columns" and sim.n_outputs == 1
    along_columns = np.nanstd(band_means(sim.stripes, "columns", where=sim.good))
    along_rows = np.nanstd(band_means(sim.stripes, "rows", where=sim.good))
    assert along_columns > 3 * along_rows


# --- the scenes -------------------------------------------------------------------------------


def test_crowded_field_covers_half_the_pixels():
    scene = make_scene("crowded", (512, 512), sigma=0.1, seed=10)
    assert 0.4 < np.mean(scene.source_mask()) < 0.6
    sparse = make_scene("sparse", (512, 512), sigma=0.1, seed=10)
    assert np.mean(sparse.source_mask()) < 0.06 and np.mean(sparse.sky_mask()) > 0.4


def test_galaxy_spans_hundreds_of_lines_with_faint_wings():
    scene = make_scene("galaxy", sigma=0.1, seed=11)
    galaxy_lines = np.sum(np.mean(scene.source_mask(), axis=1) > 0.1)
    assert galaxy_lines > 300
    # Below the per-pixel noise, yet over most of most lines.
    faint = scene.sources > 0.1 * scene.sigma
    assert np.mean(np.mean(faint, axis=1) > 0.5) > 0.5
    assert np.mean(scene.sky_mask()) < 0.2


def test_grism_trace_runs_along_the_lines():
    scene = make_scene("grism_trace", sigma=0.1, seed=12)
    covered = np.mean(scene.source_mask(), axis=1)
    assert covered.max() > 0.7  # the trace fills most of its lines
    assert 10 < np.sum(covered > 0.5) < 128  # wings over tens of lines, not all
    assert np.argmax(scene.sources[:, 1000]) == pytest.approx(64, abs=3)


def test_curved_trace_crosses_the_lines():
    scene = make_scene("curved_trace", sigma=0.1, seed=13)
    covered = np.mean(scene.source_mask(), axis=0)  # lines are columns
    assert 0.05 < np.median(covered) < 0.5
    centre = np.argmax(scene.sources[:, 100:1900:100], axis=0)
    assert np.ptp(centre) > 50 and (np.diff(centre) <= 0).all()


@pytest.mark.parametrize("name", sorted(SCENES))
@pytest.mark.parametrize("shape", [(64, 128), (63, 127)])
def test_every_scene_builds_on_a_small_frame(name, shape):
    # (A scene that topped its sources up to a fraction of covered pixels
    # above what its main source already covered never finished on frames
    # that source filled.)
    scene = make_scene(name, shape, sigma=0.1, seed=18)
    assert scene.sources.shape == shape and np.isfinite(scene.sources).all()
    assert scene.sources.min() >= 0.0


def test_nebula_leaves_no_empty_sky():
    scene = make_scene("nebula", (512, 512), sigma=0.1, seed=14)
    assert np.mean(scene.source_mask()) > 0.6 and not scene.sky_mask().any()
    # Structured on hundreds of pixels: its line means vary far beyond the noise.
    line_means = scene.sources.mean(axis=1)
    assert np.std(line_means) > 0.5 * scene.sigma


def test_edge_on_disk_lies_along_the_rows():
    scene = make_scene("edge_on_disk", (512, 512), sigma=0.1, seed=15)
    bright = scene.sources > 2 * scene.sigma
    cy = np.argmax(bright.sum(axis=1))  # the disk's row
    cx = int(np.median(np.flatnonzero(bright[cy])))
    assert bright[cy].sum() > 200  # hundreds of pixels along its row
    assert bright[cy].sum() > 5 * bright[:, cx].sum()  # not along its column


def test_galaxy_cluster_halos_cover_much_of_the_frame():
    scene = make_scene("galaxy_cluster", (512, 512), sigma=0.1, seed=16)
    assert np.mean(scene.sources > 0.1 * scene.sigma) > 0.25
    assert np.mean(scene.source_mask()) < 0.3


def test_bright_star_has_a_spike_along_the_rows():
    scene = make_scene("bright_star", (512, 512), sigma=0.1, seed=17)
    cy, cx = np.unravel_index(np.argmax(scene.sources), scene.sources.shape)
    assert cx + 120 < 512
    # 120 pixels from the star along the row (the spike) and along the column (none).
    assert scene.sources[cy, cx + 120] > 10 * scene.sources[cy + 120 if cy < 392 else cy - 120, cx]
    assert scene.sources[cy, cx + 120] > 5 * scene.sigma


# --- products ---------------------------------------------------------------------------------


def test_product_on_a_synthetic_header(tmp_path):
    from stdatamodels.jwst import datamodels

    from bgdnoise import readout_geometry

    sim = simulate_rate("sparse", (128, 256), seed=14)
    path = sim.save(tmp_path / "sim_rate.fits")
    with datamodels.open(path) as model:
        assert type(model).__name__ == "ImageModel"
        np.testing.assert_array_equal(model.data, sim.data)
        np.testing.assert_array_equal(model.dq, sim.dq)
    geometry = readout_geometry(path)
    assert (geometry.axis, geometry.n_outputs) == ("rows", 4)
    assert (geometry.fastaxis, geometry.slowaxis) == (sim.readout.fastaxis, sim.readout.slowaxis)


def test_rateints_on_a_real_header(tmp_path):
    from astropy.io import fits

    name = "nircam-nrcalong-subgrism256-4out-rate"
    primary, sci = read_header(name, "primary"), read_header(name, "sci")
    readout = readout_for(primary, ngroups=3)
    assert (readout.fastaxis, readout.slowaxis, readout.n_outputs) == (-1, 2, 4)
    sim = simulate_rate("grism_trace", readout=readout, nints=2, seed=15)
    path = sim.save(tmp_path / "sim_rateints.fits", primary, sci)
    written = fits.getheader(path, 0)
    kept = [(c.keyword, c.value) for c in primary.cards if c.keyword != "DATAMODL"]
    assert [(c.keyword, c.value) for c in written.cards if c.keyword in dict(kept)] == kept
    assert written["DATAMODL"] == "CubeModel"
    assert fits.getdata(path, "SCI").shape == (2, 256, 2048)
    with pytest.raises(ValueError, match="FASTAXIS"):
        simulate_rate("grism_trace", nints=2, seed=15).to_hdulist(primary, sci)


# --- a full frame -----------------------------------------------------------------------------


def test_full_frame_rate():
    start = time.perf_counter()
    sim = simulate_rate("sparse", seed=16)
    elapsed = time.perf_counter() - start
    assert sim.data.shape == (2048, 2048) and elapsed < 20
    assert sim.readout.frame_time(sim.data.shape) == pytest.approx(10.73676)
    good = sim.good
    assert (sim.dq[:4] & REFERENCE_PIXEL).all() and (sim.dq[:, -4:] & REFERENCE_PIXEL).all()
    line, _ = common_mode_fraction(sim.stripes, "rows", 4, good)
    assert line > 0.9
    # QUALITY.md: about two thirds of the line-mean power below 1/32 cycles per line.
    assert 0.45 < low_frequency_fraction(sim.stripes, "rows", where=good) < 0.8
    # Stripes are plain to see: line means well above the white noise's.
    line_means = band_means(sim.stripes, "rows", where=good)
    assert np.nanstd(line_means) > 5 * sim.sigma / np.sqrt(2040)


def test_product_unit_is_a_rate_whatever_sci_header_is_given():
    # A real uncal SCI header says DN: the simulation's values are DN/s.
    from astropy.io import fits

    from bgdnoise.sim import simulate_rate, to_hdulist

    sim = simulate_rate("empty", (64, 64), "rows", 1, seed=3)
    uncal_like = fits.Header({"BUNIT": "DN"})
    assert to_hdulist(sim, sci=uncal_like)["SCI"].header["BUNIT"] == "DN/s"
