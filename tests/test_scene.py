"""The scene stage in the correction: defaults, cubes, the report, files, options.

Quality against the peers is measured in tests/test_quality.py; here, what
the stage promises: it helps where sources fill the lines, it is shared by
the planes of a cube, it reports what it did, and it can be switched off.
"""

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from realproducts import read_header
from testdata import PLAIN

from bgdnoise import CorrectionOptions, correct_array, correct_file, stages
from bgdnoise._prepare import prepare
from bgdnoise.scene import model_scene, with_scene
from bgdnoise.sim import readout_for, simulate_rate
from bgdnoise.stages import correct_planes

BIN = Path(sys.executable).parent


def line_residual(sim, corrected) -> float:
    """RMS over lines of the line-mean error (corrected - scene - white noise)."""
    error = np.where(sim.good & ~sim.reference, corrected - sim.scene - sim.white, np.nan)
    if sim.axis == "columns":
        error = np.swapaxes(error, -1, -2)
    means = np.nanmean(error, axis=-1)
    return float(np.sqrt(np.nanmean((means - np.nanmedian(means)) ** 2)))


@pytest.fixture(scope="module")
def galaxy():
    return simulate_rate("galaxy", shape=(1024, 1024), seed=3)


@pytest.mark.parametrize(
    ("seed", "box", "axis"),
    [(0, 64, "rows"), (1, 64, "rows"), (0, 256, "rows"), (1, 256, "rows"), (0, 64, "columns"),
     (1, 64, "columns")],
)  # fmt: skip
def test_a_sky_rising_along_the_lines_is_not_taken_for_stripes(seed, box, axis):
    # Stray light or a zodiacal gradient: the sky rises by 20 sigma along the
    # lines, over a sparse field. The surface's pins hold the sky nodes on the
    # sky's tilt, fitted first; pinned to one level, only the faint end of
    # each line was sky, the rest of the surface floated with the band levels
    # and bowed its line means, which the levels took as stripes. Seeds 0-2,
    # rows: 0.36-0.40 line, 0.39-0.46 band residual then (1.1 and 1.3 on two
    # seeds with 256-pixel boxes, where that test left rows too few sky nodes
    # to fit the slope from), 0.13-0.21 line, 0.17-0.34 band now (both box
    # sizes); columns (NIRISS, NIRSpec): 0.29-0.36 line then, 0.12-0.19 now,
    # band 0.15-0.37. The plain path: 0.22-0.29 line, 9-11 band, bias -6 sigma.
    from bgdnoise.sim import score
    from bgdnoise.sim.scenes import sparse_field

    shape = (1024, 1024)
    sigma = float(np.median(simulate_rate("empty", shape=shape, seed=seed).sigma))
    ramp = 20 * sigma * np.arange(shape[1])[None, :] / (shape[1] - 1)
    if axis == "columns":
        ramp = ramp.T
    scene = 0.2 + ramp + sparse_field(shape, sigma, np.random.default_rng(seed))
    sim = simulate_rate(scene, seed=seed, n_outputs=4, axis=axis)
    corrected = correct_array(sim.data, axis, dq=sim.dq, n_outputs=4, background_box_size=box)
    result = score(sim, corrected)
    assert result.line < 0.25
    assert result.band < 0.45
    assert result.bias > -0.2


def test_an_output_with_more_noise_weighs_less(monkeypatch):
    # One output of a sparse field with twice the white noise of the others (a
    # noisier amplifier): each group's weight in the line's common level follows
    # its own noise. With one noise for every group the line residual is
    # 1.10-1.14 times as large (four seeds; the noisy band counted fully).
    from dataclasses import replace

    import bgdnoise.outputs as outputs
    from bgdnoise.sim import score

    sim = simulate_rate("sparse", shape=(1024, 1024), n_outputs=4, axis="rows", seed=0)
    sigma = float(np.median(sim.sigma))
    extra = np.zeros_like(sim.white)
    extra[..., :, 768:] = np.random.default_rng(0).normal(0, np.sqrt(3) * sigma, (1024, 256))
    sim = replace(sim, data=(sim.data + extra).astype(sim.data.dtype), white=sim.white + extra)
    weighted = score(sim, correct_array(sim.data, "rows", dq=sim.dq, n_outputs=4))
    monkeypatch.setattr(outputs, "_group_noise", lambda sky_vars, ok: np.ones(ok.shape[::2]))
    equal = score(sim, correct_array(sim.data, "rows", dq=sim.dq, n_outputs=4))
    assert weighted.line < 0.95 * equal.line


@pytest.fixture(scope="module")
def trace_cube():
    return simulate_rate("grism_trace", shape=(128, 1024), n_outputs=1, nints=4, seed=5)


def test_defaults_keep_a_large_galaxy_that_the_plain_path_subtracts(galaxy):
    sim = galaxy
    default = correct_array(sim.data, "rows", dq=sim.dq, n_outputs=4)
    plain = correct_array(sim.data, "rows", dq=sim.dq, n_outputs=4, **PLAIN)
    injected = line_residual(sim, sim.data)
    # The plain per-line median takes the galaxy's light as stripes (about
    # as much error as the stripes themselves); the defaults leave a
    # fraction of the injected striping (0.29 when written).
    assert line_residual(sim, plain) > 0.8 * injected
    assert line_residual(sim, default) < 0.4 * injected
    # The galaxy's light stays: its mean over source pixels barely moves.
    source = sim.source_mask
    bias = np.nanmean((default - sim.scene - sim.white)[source]) - np.nanmean(
        (default - sim.scene - sim.white)[sim.sky_mask]
    )
    assert abs(bias) < 0.3 * sim.sigma


def test_each_switch_alone_and_the_report(galaxy):
    sim = galaxy
    options = CorrectionOptions(n_outputs=4)
    _, _, report = correct_planes(sim.data, "rows", options, dq=sim.dq)
    assert report.background_method == "model"
    assert report.source_mask.shape == sim.data.shape and report.source_mask.dtype == bool
    assert report.background.shape == sim.data.shape
    assert report.background.dtype == np.float32
    # The report keeps the surface's nodes, not a plane of the data's size,
    # and shows the very plane the correction subtracted before measuring.
    assert report.surface.nodes.size * 100 < sim.data.size
    prepared = prepare(sim.data, "rows", options, dq=sim.dq)
    used = with_scene(prepared, model_scene(prepared, options)).background[0]
    np.testing.assert_array_equal(report.background, used)
    # The galaxy is found: most of its bright pixels are masked.
    bright = (sim.scene - sim.sky) > 3 * sim.sigma
    assert report.source_mask[bright & ~sim.reference].mean() > 0.8
    assert 0.02 < report.masked_fraction[0] < 0.6
    # Stripes injected: well above the white-noise floor before, near it after.
    assert report.stripe_excess_before[0] > 5
    assert report.stripe_excess_after[0] < 1.5
    assert {"scene", "measure", "apply"} <= set(report.seconds)
    mask_only = CorrectionOptions(n_outputs=4, background_method=None)
    _, _, report = correct_planes(sim.data, "rows", mask_only, dq=sim.dq)
    assert report.background is None and report.source_mask is not None
    background_only = CorrectionOptions(n_outputs=4, mask_sources=False)
    _, _, report = correct_planes(sim.data, "rows", background_only, dq=sim.dq)
    assert report.background is not None and report.source_mask is None
    _, _, report = correct_planes(sim.data, "rows", CorrectionOptions(n_outputs=4, **PLAIN))
    assert report.background is None and report.source_mask is None


def test_a_cube_shares_one_scene(trace_cube):
    sim = trace_cube
    options = CorrectionOptions()
    cube, _, report = correct_planes(sim.data, "rows", options, dq=sim.dq)
    assert report.source_mask.shape == sim.data.shape[-2:]
    # Each integration corrected with the cube's shared scene: a trace along
    # the lines no longer goes into the levels (the plain path removes it).
    plain = correct_array(sim.data, "rows", dq=sim.dq, **PLAIN)
    assert line_residual(sim, cube) < 0.05 * line_residual(sim, plain)
    # One integration on its own finds its own scene: close, not identical.
    alone = correct_array(sim.data[1], "rows", dq=sim.dq[1])
    assert not np.array_equal(alone, cube[1])
    assert (
        line_residual(sim, cube)
        < 1.5
        * line_residual(simulate_rate("grism_trace", shape=(128, 1024), n_outputs=1, seed=5), alone)
        + 0.5 * sim.sigma
    )


def band_residual(sim, corrected, n_bands=4) -> float:
    """As :func:`line_residual`, per ``1 / n_bands`` of each line."""
    error = np.where(sim.good & ~sim.reference, corrected - sim.scene - sim.white, np.nan)
    if sim.axis == "columns":
        error = np.swapaxes(error, -1, -2)
    bands = error.reshape(error.shape[:-1] + (n_bands, -1))
    means = np.nanmean(bands, axis=-1)
    return float(np.sqrt(np.nanmean((means - np.nanmedian(means, axis=-2)) ** 2)))


@pytest.mark.parametrize(("scene", "band_gain"), [("empty", 0.5), ("grism_trace", 0.95)])
def test_one_output_lines_follow_the_stripe_within_the_line(scene, band_gain, monkeypatch):
    """A one-output subarray's 1/f moves within a line's read time: segments follow it."""
    sim = simulate_rate(scene, shape=(128, 2048), n_outputs=1, seed=21)
    default = correct_array(sim.data, "rows", dq=sim.dq)
    monkeypatch.setattr(stages, "_SEGMENT", sim.data.shape[1])  # one level per line
    whole_lines = correct_array(sim.data, "rows", dq=sim.dq)
    # Quarter-line errors down (0.29 and 0.87 of one level per line when
    # written, on seeds 21-23; a trace along the lines covers their middle
    # segments, which fall back to the line's level), the line means no worse.
    assert band_residual(sim, default) < band_gain * band_residual(sim, whole_lines)
    assert line_residual(sim, default) < 1.1 * line_residual(sim, whole_lines)
    layout = stages.read_segments(
        stages.prepare(sim.data, "rows", CorrectionOptions()), CorrectionOptions()
    ).layout
    assert layout.band_edges.tolist() == list(range(0, 2049, stages._SEGMENT))


def test_garbage_valued_planes_fall_back_to_the_plain_path():
    rng = np.random.default_rng(0)
    data = rng.normal(0.0, 1.0, (64, 128)).astype(np.float32)
    data[::7, 5] = 3e38  # values no one flagged, near the float32 maximum
    options = CorrectionOptions()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got, _, report = correct_planes(data, "rows", options)
        plain = correct_array(data, "rows", **PLAIN)
    assert report.background_method is None and report.source_mask is None
    np.testing.assert_array_equal(got, plain)


@pytest.mark.parametrize("value", [None, "none", "None", "median", "model"])
def test_background_method_values(value):
    expected = None if value in (None, "none", "None") else value
    assert CorrectionOptions(background_method=value).background_method == expected


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"background_method": "smooth"}, "background_method must be one of"),
        ({"background_box_size": 4}, "background_box_size must be >= 8"),
        ({"mask_sources": "yes"}, "mask_sources must be True or False"),
    ],
)
def test_bad_scene_options_are_clear_errors(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        CorrectionOptions(**kwargs)


def _product(tmp_path, sim, name="jw01_nrcb1_rate.fits"):
    primary = read_header("nircam-nrca2-full-coron-uncal", "primary")
    return sim.save(tmp_path / name, primary)


@pytest.fixture(scope="module")
def full_frame(tmp_path_factory):
    sim = simulate_rate("sparse", shape=(2048, 2048), seed=8)
    return sim, _product(tmp_path_factory.mktemp("scene"), sim)


def test_file_keywords_and_saved_mask_and_background(full_frame, tmp_path):
    sim, path = full_frame
    out, result = correct_file(path, tmp_path, save_mask=True, save_background=True)
    header = fits.getheader(out)
    assert header["BDGBKG"] == "MODEL"
    assert 0 < header["BDGMASKF"] < 0.5
    assert header["BDGNFALL"] >= 0
    assert header["BDGSKYX"] == 0  # a sparse field under a flat sky: no sky across the lines
    assert header["BDGSTRB"] > 3 * header["BDGSTRA"]
    before, after = result.stripe_excess
    assert header["BDGSTRB"] == pytest.approx(before, abs=1e-3)
    assert header["BDGSTRA"] == pytest.approx(after, abs=1e-3)
    assert "stripe excess" in result.summary()
    mask_path = tmp_path / "jw01_nrcb1_rate_bdgMask.fits"
    background_path = tmp_path / "jw01_nrcb1_rate_bdgBkg.fits"
    assert result.extra_outputs == {"mask": str(mask_path), "background": str(background_path)}
    with fits.open(mask_path) as mask_file, fits.open(background_path) as background_file:
        mask = mask_file["SCI"].data
        assert mask.shape == sim.data.shape and set(np.unique(mask)) <= {0.0, 1.0}
        np.testing.assert_array_equal(mask != 0, result.report.source_mask)
        assert mask_file[0].header["BDGPLANE"] == "mask"
        assert "BUNIT" not in mask_file["SCI"].header  # 0 and 1, in no unit
        assert background_file["SCI"].header["BUNIT"] == fits.getheader(path, "SCI")["BUNIT"]
        np.testing.assert_allclose(
            background_file["SCI"].data, result.report.background, rtol=1e-6, atol=1e-7
        )
    # Without the stage there is nothing to save: a warning, no file.
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    with pytest.warns(UserWarning, match="no mask to save"):
        correct_file(path, plain_dir, save_mask=True, mask_sources=False)
    assert not list(plain_dir.glob("*_bdgMask.fits"))
    header = fits.getheader(plain_dir / "jw01_nrcb1_rate_bdgCorr.fits")
    assert header["BDGBKG"] == "MODEL" and header["BDGMASKF"] < 0.01


def test_command_line_saves_and_refuses_to_overwrite(full_frame, tmp_path):
    _, path = full_frame
    command = [str(BIN / "bgdnoise"), "correct", str(path), "-o", str(tmp_path)]
    flags = ["--save-mask", "--save-background", "--background-method", "none"]
    proc = subprocess.run(command + flags, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "jw01_nrcb1_rate_bdgMask.fits").exists()
    # background_method none: no background, said once on stderr.
    assert not (tmp_path / "jw01_nrcb1_rate_bdgBkg.fits").exists()
    assert "no background to save" in proc.stderr
    assert fits.getheader(tmp_path / "jw01_nrcb1_rate_bdgCorr.fits")["BDGBKG"] == "NONE"
    again = subprocess.run(command + ["--save-mask"], capture_output=True, text=True, check=False)
    assert again.returncode == 1 and "exists" in again.stderr


def test_spectral_warning_only_when_nothing_masks_the_traces(tmp_path):
    primary = read_header("nircam-nrcalong-subgrism256-4out-rate", "primary")
    sci = read_header("nircam-nrcalong-subgrism256-4out-rate", "sci")
    sim = simulate_rate("grism_trace", shape=(256, 2048), readout=readout_for(primary), seed=2)
    path = sim.save(tmp_path / "jw02_nrcalong_rate.fits", primary, sci)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the defaults find the trace: no warning
        correct_file(path, tmp_path / "a.fits")
    with pytest.warns(UserWarning, match="spectral traces"):
        correct_file(path, tmp_path / "b.fits", mask_sources=False)


@pytest.mark.parametrize("seed", [0, 1])
def test_lines_a_trace_fills_lean_on_their_neighbours(seed, monkeypatch):
    # A grism trace fills some 70 rows of a one-output subarray: their levels
    # rest on the few pixels the mask leaves, and the stage weighs them
    # against their neighbours (3-4% less line error on them over six seeds;
    # up to 20% on traces spanning the whole row). Rows without a source
    # pixel keep their values bit for bit.
    # (keep_sky_across off: a sky it kept would move every line.)
    sim = simulate_rate("grism_trace", shape=(256, 2048), n_outputs=1, seed=seed)
    options = {"n_outputs": 1, "keep_sky_across": False}
    steady = correct_array(sim.data, "rows", dq=sim.dq, **options)
    monkeypatch.setattr(stages, "steady_lines", lambda resolved, measured: resolved)
    plain_levels = correct_array(sim.data, "rows", dq=sim.dq, **options)
    good = sim.good & ~sim.reference
    injected = np.nanmean(np.where(good, sim.stripes, np.nan), axis=1)

    def covered_error(corrected):
        error = np.nanmean(np.where(good, corrected - sim.scene - sim.white, np.nan), axis=1)
        covered = sim.source_mask.mean(axis=1) > 0.5
        return np.sqrt(np.mean((error - np.median(error))[covered] ** 2)) / np.std(injected)

    assert covered_error(steady) < 0.99 * covered_error(plain_levels)
    far = ~sim.source_mask.any(axis=1)
    np.testing.assert_array_equal(steady[far], plain_levels[far])


@pytest.mark.parametrize(
    ("value", "ordinary"),
    [(5.0, True), (-9e29, True), (2e30, False), (-2e30, False), (np.inf, False), (np.nan, True)],
)
def test_scene_stages_take_planes_of_values_far_from_the_float_range(value, ordinary, rng):
    from bgdnoise.scene import _ordinary

    data = rng.normal(0.0, 1.0, (64, 128)).astype(np.float32)
    data[10, 20] = value
    prepared = prepare(data, "rows", CorrectionOptions())
    assert _ordinary(prepared, 1.0) is ordinary
    data[:] = np.nan  # no value at all
    assert _ordinary(prepare(data, "rows", CorrectionOptions()), 1.0) is False


def test_the_model_background_without_the_source_search_is_not_bent_by_stars():
    """``mask_sources=False`` keeps the 'model' background: its fit leaves the stars out.

    Fitted through the stars, the surface bent around them over whole cells and
    the line levels under it took that for stripes (0.7-1.5 of the injected
    striping on such frames, against about 0.1 for the plain path).
    """
    from bgdnoise.sim.score import score

    sim = simulate_rate("sparse", (1024, 1024), "rows", 4, seed=1)
    kwargs = {"dq": sim.dq, "n_outputs": 4, "mask_sources": False}
    model = score(sim, correct_array(sim.data, "rows", **kwargs))
    plain = score(sim, correct_array(sim.data, "rows", background_method=None, **kwargs))
    assert model.line <= 1.1 * plain.line and model.band <= 1.1 * plain.band
