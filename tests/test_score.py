"""``bgdnoise.sim.score``: the quality measures against hand-made truths."""

from __future__ import annotations

import numpy as np
import pytest

from bgdnoise.sim import Score, band_edges, score, simulate_rate


@pytest.fixture(scope="module")
def rows():
    """Rows readout, 4 outputs, lines of 1024 pixels (2 bands of 512)."""
    return simulate_rate("sparse", shape=(96, 1024), seed=3)


@pytest.fixture(scope="module")
def columns():
    """Columns readout, 1 output, lines (columns) of 1100 pixels: 2 bands of 550."""
    return simulate_rate("curved_trace", shape=(1100, 64), seed=4)


@pytest.fixture(scope="module")
def cube():
    return simulate_rate("grism_trace", shape=(64, 512), n_outputs=1, nints=3, seed=5)


def truth(sim):
    """scene + white (what a perfect correction leaves, pedestal aside), float64."""
    return sim.scene + sim.white.astype(np.float64)


def along_line(sim, values_along_line):
    """An image that varies along the lines only (the same for every line)."""
    if sim.axis == "rows":
        return np.broadcast_to(values_along_line[None, :], sim.data.shape[-2:])
    return np.broadcast_to(values_along_line[:, None], sim.data.shape[-2:])


def line_length(sim):
    return sim.data.shape[-1] if sim.axis == "rows" else sim.data.shape[-2]


@pytest.mark.parametrize("which", ["rows", "columns", "cube"])
def test_doing_nothing_scores_one(which, request):
    sim = request.getfixturevalue(which)
    s = score(sim, sim.data)
    assert s.line == pytest.approx(1.0, abs=1e-12)
    assert s.band == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("which", ["rows", "columns", "cube"])
def test_perfect_correction_scores_zero(which, request):
    sim = request.getfixturevalue(which)
    # Any constant (the pedestal a correction keeps) is free.
    s = score(sim, truth(sim) + 0.37)
    assert s.line == pytest.approx(0.0, abs=1e-6)
    assert s.band == pytest.approx(0.0, abs=1e-6)
    assert s.bias == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("which", ["rows", "columns", "cube"])
def test_half_the_stripes_left_scores_half(which, request):
    sim = request.getfixturevalue(which)
    half = truth(sim) + 0.5 * (sim.data - truth(sim))
    s = score(sim, half.astype(np.float32))
    assert s.line == pytest.approx(0.5, rel=1e-3)
    assert s.band == pytest.approx(0.5, rel=1e-3)


@pytest.mark.parametrize("which", ["rows", "columns", "cube"])
def test_offset_on_sources_is_the_bias(which, request):
    sim = request.getfixturevalue(which)
    offset = -0.8 * sim.sigma
    corrected = truth(sim) + offset * sim.source_mask + 5.0
    assert score(sim, corrected).bias == pytest.approx(-0.8, abs=1e-9)
    # The injected stripes alone barely differ between sources and sky.
    assert abs(score(sim, sim.data).bias) < 1.0


def test_bias_ignores_pixels_outside_both_masks(rows):
    between = ~rows.source_mask & ~rows.sky_mask & ~rows.reference
    assert between.any()
    assert score(rows, truth(rows) + 3.0 * between).bias == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("which", ["rows", "columns"])
def test_band_offsets_show_in_band_not_line(which, request):
    """A step along the line that averages to zero per line: no line residual, a band one."""
    sim = request.getfixturevalue(which)
    edges = band_edges(line_length(sim))
    assert len(edges) == 3  # two bands
    step = np.where(np.arange(line_length(sim)) < edges[1], 1.0, -1.0) * sim.sigma
    # Keep the per-line mean exactly zero on the pixels the score uses.
    corrected = truth(sim) + along_line(sim, step)
    s = score(sim, corrected)
    assert s.band > 1.0
    assert s.line < 0.2 * s.band


def test_band_edges():
    assert band_edges(2048).tolist() == [0, 512, 1024, 1536, 2048]
    # A one-output 256x2048 subarray still has four bands of 512 along its lines.
    assert band_edges(256).tolist() == [0, 256]
    assert band_edges(512).tolist() == [0, 512]
    assert band_edges(1000).tolist() == [0, 1000]
    assert band_edges(1100).tolist() == [0, 550, 1100]


def test_one_output_subarray_has_four_bands():
    sim = simulate_rate("grism_trace", shape=(16, 2048), n_outputs=1, seed=1)
    # A stripe that changes sign in the middle of the line: invisible to the line mean.
    step = np.where(np.arange(2048) < 1024, 1.0, -1.0) * sim.sigma
    s = score(sim, truth(sim) + step[None, :])
    assert s.band > 1.0 and s.line < 0.2


def test_cube_pools_planes(cube):
    """Plane 0 corrected perfectly, the others not: between 0 and 1, from the pooled lines."""
    corrected = cube.data.astype(np.float64).copy()
    corrected[0] = truth(cube)[0]
    s = score(cube, corrected)
    assert 0.5 < s.line < 1.0 and 0.5 < s.band < 1.0
    # Each plane's own pedestal is free.
    shifted = truth(cube) + np.array([1.0, -2.0, 3.0])[:, None, None]
    assert score(cube, shifted).line == pytest.approx(0.0, abs=1e-6)


def test_bad_and_reference_pixels_do_not_count():
    sim = simulate_rate("sparse", shape=(64, 2048), seed=2, bad_fraction=0.01)
    assert sim.reference.any() and (~sim.good & ~sim.reference).any()
    corrected = truth(sim)
    corrected[~sim.good] = 1e6  # reference and bad pixels: anything
    s = score(sim, corrected)
    assert (s.line, s.band, s.bias) == pytest.approx((0.0, 0.0, 0.0), abs=1e-6)
    # A NaN on a good pixel is left out rather than poisoning the score.
    corrected[sim.good.nonzero()[0][0], sim.good.nonzero()[1][0]] = np.nan
    assert np.isfinite(score(sim, corrected).line)


def test_seconds_and_as_dict(rows):
    s = score(rows, rows.data, seconds=0.25)
    assert isinstance(s, Score) and s.seconds == 0.25
    d = s.as_dict()
    assert set(d) == {"line", "band", "bias", "seconds"} and d["line"] == pytest.approx(1.0)
    assert score(rows, rows.data).seconds is None


def test_shape_mismatch_is_refused(rows):
    with pytest.raises(ValueError, match="shape"):
        score(rows, rows.data[:-1])
