"""The side reference pixels' check on the slowest line frequencies (bgdnoise.reference)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from realproducts import read_header

from bgdnoise import correct_array, correct_file
from bgdnoise._prepare import make_layout, prepare
from bgdnoise.dqflags import REFERENCE_PIXEL
from bgdnoise.options import CorrectionOptions
from bgdnoise.reference import (
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
from bgdnoise.stages import correct_planes, read_segments

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
    all_ref, positions = side_reference(dq)
    assert np.flatnonzero(all_ref).tolist() == [0, 1, 2, 3, 1020, 1021, 1022, 1023]
    assert positions.tolist() == [0, 1, 2, 3, 1020, 1021, 1022, 1023]
    one_side = np.zeros((1024, 640), np.uint32)
    one_side[:, :SIDE] = REFERENCE_PIXEL  # a subarray in the detector's corner
    all_ref, positions = side_reference(one_side)
    assert not all_ref.any() and positions.tolist() == [0, 1, 2, 3]


def _frame(left, right, *, n_outputs=4, odd_even=False, parity_offset=0.0, seed=4):
    """A frame whose line model holds fast stripes, and whose side reference
    pixels carry them plus ``left`` / ``right`` (None: no reference pixels on
    that side) and noise: ``(data, dq, options, stripes)``."""
    rng = np.random.default_rng(seed)
    stripes = rng.normal(0.0, 0.3, N_LINES)
    data = rng.normal(0.0, 0.05, (N_LINES, N_LINES)).astype(np.float32)
    data += stripes[:, None].astype(np.float32)
    data[:, 1::2] += np.float32(parity_offset)
    dq = np.zeros(data.shape, np.uint32)
    for side, error in ((slice(0, SIDE), left), (slice(N_LINES - SIDE, N_LINES), right)):
        if error is not None:
            data[:, side] += error[:, None].astype(np.float32)
            dq[:, side] = REFERENCE_PIXEL
    options = CorrectionOptions(n_outputs=n_outputs, odd_even=odd_even)
    return data, dq, options, stripes


def _shift(data, dq, options, stripes, *, segments=False, parity_offset=0.0):
    """anchor_to_reference on that frame, its model the stripes (and the parities' offset)."""
    prepared = prepare(data, "rows", options, dq=dq)
    outputs = make_layout(data.shape, "rows", options).band_edges
    if segments:  # a one-output line read in 256-pixel segments, as the scene stages do
        prepared = read_segments(prepared, options)
        assert prepared.layout.band_edges.size - 1 == N_LINES // 256
    n_groups = prepared.layout.group_sizes.size
    model = np.repeat(stripes[None, :, None], n_groups, axis=2)
    if prepared.layout.odd_even:
        model[:, :, 1::2] += parity_offset
    shift = anchor_to_reference(prepared, model, model, outputs)
    return None if shift is None else shift[0]


def _anchor(left, right, **kwargs):
    frame_keys = ("n_outputs", "odd_even", "parity_offset", "seed")
    shift_keys = ("segments", "parity_offset")
    frame = _frame(left, right, **{k: v for k, v in kwargs.items() if k in frame_keys})
    return _shift(*frame, **{k: v for k, v in kwargs.items() if k in shift_keys})


SCIENCE = slice(SIDE, N_LINES - SIDE)


def test_a_stripe_both_sides_see_moves_every_output():
    common = _slow(2)
    shift = _anchor(common, common)
    for group in range(4):
        assert _rms(shift[SCIENCE, group] - common[SCIENCE]) < 0.05 * _rms(common)


def test_one_output_s_own_error_leaves_the_line_mean_alone():
    own = _slow(2)
    shift = _anchor(own, 0.0 * own)
    assert _rms(shift[SCIENCE, 0] - own[SCIENCE]) < 0.05 * _rms(own)
    assert _rms(shift[SCIENCE, 3]) < 0.05 * _rms(own)
    # The inner outputs take the other half of the zero-sum own errors.
    assert _rms(shift[SCIENCE, 1] + own[SCIENCE] / 2) < 0.05 * _rms(own)
    assert _rms(shift[SCIENCE].mean(axis=1)) < 0.05 * _rms(own)


def test_one_measured_output_of_several_moves_nothing():
    """Reference pixels on one side of a 4-output line: common or own, no telling."""
    assert _anchor(_slow(2), None) is None


def test_a_one_output_line_moves_all_its_segments():
    error = _slow(2)
    for left, right in ((error, error), (error, None), (None, error)):
        shift = _anchor(left, right, n_outputs=1, segments=True)
        assert shift.shape[1] == N_LINES // 256
        for segment in range(shift.shape[1]):
            assert _rms(shift[SCIENCE, segment] - error[SCIENCE]) < 0.05 * _rms(error)


def test_parities_of_an_output_move_together():
    common = _slow(1)
    # Odd columns 0.7 above even ones, in the data and in the model.
    shift = _anchor(common, common, odd_even=True, parity_offset=0.7)
    assert shift.shape[1] == 8
    np.testing.assert_array_equal(shift[:, 0], shift[:, 1])
    np.testing.assert_array_equal(shift[:, 6], shift[:, 7])
    for group in (0, 2, 5, 7):
        assert _rms(shift[SCIENCE, group] - common[SCIENCE]) < 0.05 * _rms(common)


def test_a_jumping_reference_pixel_moves_little():
    """A pixel that jumps to another level for half the frame (telegraph noise)
    would be a slow error of a quarter of the jump in the line means."""
    common = _slow(2)
    data, dq, options, stripes = _frame(common, common)
    clean = _shift(data, dq, options, stripes)
    data[: N_LINES // 2, 1] += 5.0  # sigma is 0.05
    data[700, -2] = np.nan
    jumped = _shift(data, dq, options, stripes)
    assert _rms(jumped[SCIENCE, 0] - clean[SCIENCE, 0]) < 0.05 * _rms(common)


def test_a_few_wild_lines_move_little():
    """Every reference pixel of an output off on a few lines (a glitch)."""
    common = _slow(2)
    data, dq, options, stripes = _frame(common, common)
    clean = _shift(data, dq, options, stripes)
    data[300:306, :SIDE] += 30.0
    wild = _shift(data, dq, options, stripes)
    assert _rms(wild[SCIENCE, 0] - clean[SCIENCE, 0]) < 0.05 * _rms(common)


def test_reference_pixels_without_the_stripes_are_not_used():
    """Replaced or zeroed reference pixels (no stripes on them) move nothing."""
    data, dq, options, stripes = _frame(_slow(2), _slow(2))
    rng = np.random.default_rng(6)
    for side in (slice(0, SIDE), slice(N_LINES - SIDE, N_LINES)):
        data[:, side] = rng.normal(0.0, 0.05, (N_LINES, SIDE))
    assert _shift(data, dq, options, stripes) is None
    data[:, :SIDE] = data[:, -SIDE:] = 0.0
    assert _shift(data, dq, options, stripes) is None


def test_nothing_without_dq_or_with_few_lines():
    error = _slow(2)
    data, dq, options, stripes = _frame(error, error)
    assert _shift(data, dq, options, stripes) is not None
    assert _shift(data, np.zeros_like(dq), options, stripes) is None
    few = 2 * PERIOD - 1
    short = (data[:few], dq[:few], options, stripes[:few])
    assert _shift(*short) is None


def test_a_cube_s_planes_move_one_by_one():
    error = _slow(2)
    first, dq, options, stripes = _frame(error, error)
    second = _frame(-error, -error, seed=5)[0]
    cube = np.stack([first, second])
    prepared = prepare(cube, "rows", options, dq=np.stack([dq, dq]))
    model = np.stack([np.repeat(stripes[:, None], 4, axis=1),
                      np.repeat(_frame(error, error, seed=5)[3][:, None], 4, axis=1)])  # fmt: skip
    shift = anchor_to_reference(prepared, model, model, prepared.layout.band_edges)
    assert _rms(shift[0][SCIENCE, 1] - error[SCIENCE]) < 0.05 * _rms(error)
    assert _rms(shift[1][SCIENCE, 1] + error[SCIENCE]) < 0.05 * _rms(error)


def test_lines_without_a_level_keep_their_model():
    error = _slow(2)
    data, dq, options, stripes = _frame(error, error)
    prepared = prepare(data, "rows", options, dq=dq)
    model = np.repeat(stripes[None, :, None], 4, axis=2)
    levels = model.copy()
    levels[0, 500, 2] = np.nan
    shift = anchor_to_reference(prepared, levels, model, prepared.layout.band_edges)
    assert (shift[0, 500] == 0).all() and (shift[0, 499] != 0).all()


@pytest.fixture(scope="module")
def galaxy():
    """A full frame of the large galaxy, 4 outputs, with its reference border read.

    As in a ramp's groups: jwst's rates leave the reference pixels NaN.
    """
    return simulate_rate("galaxy", (N_LINES, N_LINES), "rows", 4, seed=7, reference_values="read")


def test_galaxies_keep_more_of_their_wings(galaxy):
    """Against the simulation's truth, over three frames: the slow error that
    the wings leave in the line levels is smaller with the reference pixels."""
    on, off = [], []
    for frame in (galaxy, *(simulate_rate("galaxy", galaxy.data.shape, "rows", 4, seed=s,
                                          reference_values="read")
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


def test_the_model_returned_holds_the_shift(galaxy):
    corrected, model = correct_array(
        galaxy.data, "rows", dq=galaxy.dq, n_outputs=4, return_model=True
    )
    off = correct_array(galaxy.data, "rows", dq=galaxy.dq, n_outputs=4, use_reference_pixels=False)
    good = np.isfinite(galaxy.data) & ~galaxy.reference
    np.testing.assert_allclose(
        (corrected + model)[good], galaxy.data[good], rtol=1e-6, atol=1e-5 * galaxy.sigma
    )
    assert np.abs(corrected - off)[good].max() > 0.01 * galaxy.sigma


def test_the_plain_path_does_not_use_them(galaxy):
    plain = {"dq": galaxy.dq, "n_outputs": 4, "mask_sources": False, "background_method": None}
    on = correct_array(galaxy.data, "rows", **plain)
    off = correct_array(galaxy.data, "rows", use_reference_pixels=False, **plain)
    np.testing.assert_array_equal(on, off)


def test_a_rate_as_jwst_writes_it_is_left_as_it_was(galaxy):
    """jwst's rates hold NaN on the reference pixels: the stage finds nothing to use."""
    data = galaxy.data.copy()
    data[galaxy.reference] = np.nan
    kwargs = {"dq": galaxy.dq, "n_outputs": 4}
    on = correct_array(data, "rows", **kwargs)
    off = correct_array(data, "rows", use_reference_pixels=False, **kwargs)
    np.testing.assert_array_equal(on, off)
    # ... while with the pixels read it moves the lines.
    science = ~galaxy.reference
    read = correct_array(galaxy.data, "rows", **kwargs)
    assert not np.array_equal(read[science], on[science])
