"""The side reference pixels' check on the slowest line frequencies (bgdnoise.reference)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from realproducts import read_header

from bgdnoise import correct_array, correct_file
from bgdnoise._prepare import prepare
from bgdnoise.dqflags import REFERENCE_PIXEL
from bgdnoise.options import CorrectionOptions
from bgdnoise.reference import (
    MIN_TRACKING,
    PERIOD,
    anchor_to_reference,
    anchored_modes,
    anchored_spectrum,
    from_cosine,
    side_reference,
    tracking,
)
from bgdnoise.sim import simulate_rate
from bgdnoise.sim.score import score
from bgdnoise.stages import correct_planes

N_LINES = 2048
SIDE = 4


def _slow(periods: float, amplitude: float = 1.0, n: int = N_LINES) -> np.ndarray:
    """A slow error: ``periods`` cycles over the lines, plus a trend."""
    lines = np.arange(n) / n
    return amplitude * (np.sin(2 * np.pi * periods * lines + 0.3) + 0.5 * lines)


def _series(spectrum: np.ndarray, n: int = N_LINES) -> np.ndarray:
    return from_cosine(spectrum, n)


def _anchored(values, valid=None):
    valid = np.ones(values.size, bool) if valid is None else valid
    return _series(anchored_spectrum(values, valid), values.size)


def _rms(values):
    return float(np.sqrt(np.mean((values - values.mean()) ** 2)))


def test_white_noise_keeps_little_of_its_slow_modes():
    rng = np.random.default_rng(1)
    kept_variance = []
    for _ in range(40):
        kept_variance.append(_rms(_anchored(rng.normal(0.0, 1.0, N_LINES))) ** 2)
    # Keeping those modes whole would keep about anchored_modes / N_LINES of
    # the variance; the weights keep only the chance excess of each over the
    # floor (an exponential's E[(1 - 1/x)^2, x > 1] is about 0.15).
    whole = anchored_modes(N_LINES) / N_LINES
    assert np.mean(kept_variance) < 0.3 * whole


def test_a_slow_error_is_recovered_through_the_noise():
    rng = np.random.default_rng(2)
    truth = _slow(3, 0.5)
    kept = _anchored(truth + rng.normal(0.0, 1.0, N_LINES))
    assert _rms(kept - truth) < 0.3 * _rms(truth)


def test_faster_modes_and_the_mean_are_never_kept():
    fast = 5.0 * np.cos(
        np.pi * (anchored_modes(N_LINES) + 1) * (np.arange(N_LINES) + 0.5) / N_LINES
    )
    kept = _anchored(fast + 3.0)
    assert np.abs(kept).max() < 1e-9


def test_lines_without_a_value_count_as_the_median():
    rng = np.random.default_rng(3)
    truth = _slow(2, 0.5)
    measured = truth + rng.normal(0.0, 0.5, N_LINES)
    valid = rng.random(N_LINES) > 0.1
    measured[~valid] = 1e30  # never read
    kept = _anchored(measured, valid)
    assert np.isfinite(kept).all()
    assert _rms(kept - truth) < 0.25 * _rms(truth)


def test_tracking_tells_reference_pixels_with_stripes_from_those_without():
    rng = np.random.default_rng(5)
    stripes = np.cumsum(rng.normal(0.0, 0.1, N_LINES)) + rng.normal(0.0, 0.3, N_LINES)
    valid = np.ones(N_LINES, bool)
    read_with = stripes + rng.normal(0.0, 0.5, N_LINES)
    without = rng.normal(0.0, 0.5, N_LINES)
    assert tracking(read_with, stripes, valid) == pytest.approx(1.0, abs=0.15)
    assert abs(tracking(without, stripes, valid)) < 0.15
    assert np.isnan(tracking(read_with, np.zeros(N_LINES), valid))


def _full_frame_dq(ny=N_LINES, nx=N_LINES) -> np.ndarray:
    dq = np.zeros((ny, nx), np.uint32)
    dq[:SIDE] = dq[-SIDE:] = REFERENCE_PIXEL
    dq[:, :SIDE] = dq[:, -SIDE:] = REFERENCE_PIXEL
    return dq


def test_side_reference_finds_the_borders():
    dq = _full_frame_dq(1024, 1024)
    all_ref, positions, is_ref = side_reference(dq)
    assert np.flatnonzero(all_ref).tolist() == [0, 1, 2, 3, 1020, 1021, 1022, 1023]
    assert positions.tolist() == [0, 1, 2, 3, 1020, 1021, 1022, 1023]
    assert is_ref.shape == (1024, 8) and is_ref.all()


def _anchor(left: np.ndarray, right: np.ndarray, n_outputs=4, odd_even=False):
    """The shift anchor_to_reference gives a frame whose line model holds fast
    stripes and whose side reference pixels carry them plus ``left`` /
    ``right`` (and noise) per line."""
    rng = np.random.default_rng(4)
    stripes = rng.normal(0.0, 0.3, N_LINES)
    data = rng.normal(0.0, 0.05, (N_LINES, N_LINES)).astype(np.float32)
    data += stripes[:, None].astype(np.float32)
    data[:, :SIDE] += left[:, None].astype(np.float32)
    data[:, -SIDE:] += right[:, None].astype(np.float32)
    options = CorrectionOptions(n_outputs=n_outputs, odd_even=odd_even)
    prepared = prepare(data, "rows", options, dq=_full_frame_dq())
    n_groups = prepared.layout.group_sizes.size
    model = np.repeat(stripes[None, :, None], n_groups, axis=2)
    return anchor_to_reference(prepared, model, model)[0], prepared.layout


SCIENCE = slice(SIDE, N_LINES - SIDE)


def test_a_stripe_both_sides_see_moves_every_output():
    common = _slow(2)
    shift, _ = _anchor(common, common)
    for group in range(4):
        assert _rms(shift[SCIENCE, group] - common[SCIENCE]) < 0.05 * _rms(common)


def test_one_output_s_own_error_leaves_the_line_mean_alone():
    own = _slow(2)
    shift, _ = _anchor(own, np.zeros(N_LINES))
    assert _rms(shift[SCIENCE, 0] - own[SCIENCE]) < 0.05 * _rms(own)
    assert _rms(shift[SCIENCE, 3]) < 0.05 * _rms(own)
    # The inner outputs take the other half of the zero-sum own errors.
    assert _rms(shift[SCIENCE, 1] + own[SCIENCE] / 2) < 0.05 * _rms(own)
    assert _rms(shift[SCIENCE].mean(axis=1)) < 0.05 * _rms(own)


def test_parities_of_an_output_move_together():
    common = _slow(1)
    shift, layout = _anchor(common, common, odd_even=True)
    assert layout.group_sizes.size == 8
    np.testing.assert_array_equal(shift[:, 0], shift[:, 1])
    np.testing.assert_array_equal(shift[:, 6], shift[:, 7])
    assert _rms(shift[SCIENCE, 2] - common[SCIENCE]) < 0.05 * _rms(common)


def test_reference_pixels_without_the_stripes_are_not_used():
    """Zeroed or replaced reference pixels (no stripes on them) move nothing."""
    rng = np.random.default_rng(6)
    data = rng.normal(0.0, 0.05, (N_LINES, N_LINES)).astype(np.float32)
    stripes = rng.normal(0.0, 0.3, N_LINES)
    data[:, SIDE:-SIDE] += stripes[:, None].astype(np.float32)
    prepared = prepare(data, "rows", CorrectionOptions(n_outputs=4), dq=_full_frame_dq())
    model = np.repeat(stripes[None, :, None], 4, axis=2)
    assert anchor_to_reference(prepared, model, model) is None
    data[:, :SIDE] = data[:, -SIDE:] = 0.0
    prepared = prepare(data, "rows", CorrectionOptions(n_outputs=4), dq=_full_frame_dq())
    assert anchor_to_reference(prepared, model, model) is None
    assert MIN_TRACKING > 0.2


def test_nothing_without_dq_or_with_few_lines():
    data = np.zeros((2 * PERIOD - 1, 64), np.float32)
    options = CorrectionOptions(n_outputs=1)
    model = np.zeros((1, data.shape[0], 1))
    dq = np.zeros(data.shape, np.uint32)
    dq[:, :SIDE] = REFERENCE_PIXEL
    assert anchor_to_reference(prepare(data, "rows", options, dq=dq), model, model) is None
    tall = np.zeros((N_LINES, 64), np.float32)
    model = np.zeros((1, N_LINES, 1))
    assert anchor_to_reference(prepare(tall, "rows", options), model, model) is None


@pytest.fixture(scope="module")
def galaxy():
    """A full frame of the large galaxy, 4 outputs, with its reference border."""
    return simulate_rate("galaxy", (N_LINES, N_LINES), "rows", 4, seed=7)


def test_galaxies_keep_more_of_their_wings(galaxy):
    """Against the simulation's truth, over three frames: the slow error that
    the wings leave in the line levels is smaller with the reference pixels."""
    on, off = [], []
    for frame in (galaxy, *(simulate_rate("galaxy", galaxy.data.shape, "rows", 4, seed=s)
                            for s in (8, 9))):  # fmt: skip
        kwargs = {"dq": frame.dq, "n_outputs": 4}
        on.append(score(frame, correct_array(frame.data, "rows", **kwargs)))
        off.append(
            score(frame, correct_array(frame.data, "rows", use_reference_pixels=False, **kwargs))
        )
    assert np.mean([s.line for s in on]) < 0.95 * np.mean([s.line for s in off])
    assert np.mean([s.band for s in on]) < 0.95 * np.mean([s.band for s in off])
    assert np.mean([abs(s.bias) for s in on]) <= np.mean([abs(s.bias) for s in off]) + 0.02


def test_the_report_says_how_far_the_model_moved(galaxy):
    options = CorrectionOptions(n_outputs=4)
    _, _, report = correct_planes(galaxy.data, "rows", options, dq=galaxy.dq)
    assert report.reference_rms.shape == (1,) and report.reference_rms[0] > 0
    off = CorrectionOptions(n_outputs=4, use_reference_pixels=False)
    _, _, report = correct_planes(galaxy.data, "rows", off, dq=galaxy.dq)
    assert report.reference_rms.tolist() == [0.0]
    plain = CorrectionOptions(n_outputs=4, mask_sources=False, background_method=None)
    _, _, report = correct_planes(galaxy.data, "rows", plain, dq=galaxy.dq)
    assert report.reference_rms is None


def _moved(data, axis, dq):
    on = correct_array(data, axis, dq=dq, n_outputs=4).astype(np.float64)
    off = correct_array(data, axis, dq=dq, n_outputs=4, use_reference_pixels=False)
    return np.nan_to_num(on - off)


def test_columns_move_as_the_rows_transposed(galaxy):
    """The shift on the frame read along columns is the rows' shift, transposed
    (the rest of the correction is not exactly symmetric: its samples follow memory)."""
    rows = _moved(galaxy.data, "rows", galaxy.dq)
    columns = _moved(galaxy.data.T.copy(), "columns", galaxy.dq.T.copy())
    size = np.sqrt(np.mean(rows**2))
    assert size > 0.01 * galaxy.sigma
    assert np.sqrt(np.mean((columns.T - rows) ** 2)) < 0.2 * size


def test_without_dq_the_option_changes_nothing(galaxy):
    on = correct_array(galaxy.data, "rows", n_outputs=4)
    off = correct_array(galaxy.data, "rows", n_outputs=4, use_reference_pixels=False)
    np.testing.assert_array_equal(on, off)


def test_a_file_says_how_far_the_reference_pixels_moved_it(tmp_path, galaxy):
    primary = read_header("nircam-nrca2-full-coron-uncal", "primary")
    path = galaxy.save(tmp_path / "jw03_nrca2_rate.fits", primary)
    out, result = correct_file(path, tmp_path)
    rms = float(np.sqrt(np.mean(result.report.reference_rms**2)))
    assert rms > 0.01 * galaxy.sigma
    assert fits.getheader(out)["BDGREFS"] == pytest.approx(rms, rel=1e-3)
    off = tmp_path / "off"
    off.mkdir()
    out, _ = correct_file(path, off, use_reference_pixels=False)
    assert "BDGREFS" not in fits.getheader(out)
