"""The common mode stage against levels with a known common part, own part and error."""

from dataclasses import replace

import numpy as np
import pytest

from bgdnoise.outputs import MEDIAN_EFFICIENCY, _group_noise, share_common_mode, wiener_over_lines
from bgdnoise.stages import Measured


def _measured(raw, counts, needed=1):
    n_groups = raw.shape[2]
    return Measured(
        raw=raw, counts=counts, full=np.empty((0, 0)), full_counts=np.empty((0, 0), np.int64),
        needed=np.full(n_groups, needed, np.int64), scale=np.full(raw.shape[0], np.nan),
    )  # fmt: skip


def _levels(rng, n_lines, own_sd, counts, sigma=1.0, offsets=(0.0, 0.3, -0.2, 0.1)):
    """Levels ``common + offset + own + error`` with the error a median of ``counts`` gives.

    The own parts are 1/f noise over the lines, as each output's own stream is.
    """
    common = rng.normal(0, 5.0, n_lines)
    own = np.stack([_pink(rng, n_lines, own_sd) for _ in offsets], axis=1)
    error = rng.normal(0, 1, (n_lines, len(offsets))) * np.sqrt(
        MEDIAN_EFFICIENCY * sigma**2 / counts
    )
    truth = common[:, None] + np.asarray(offsets)[None] + own
    return truth[None], (truth + error)[None]


@pytest.mark.parametrize("own_sd", [0.0, 0.02, 0.2])
def test_shrunk_levels_are_closer_to_truth_than_measured(rng, own_sd):
    counts = np.full((1, 2048, 4), 512, np.int64)
    counts[0, :, 1] = 20  # one output mostly masked
    truth, raw = _levels(rng, 2048, own_sd, counts[0])
    shared = share_common_mode(_measured(raw, counts), np.array([1.0])).raw
    err_before = np.sqrt(np.mean((raw - truth) ** 2, axis=1))[0]
    err_after = np.sqrt(np.mean((shared - truth) ** 2, axis=1))[0]
    # Never much worse than the group's own level: with own parts four times
    # the measuring error, the well-measured bands lose up to ~12% (the
    # spectrum's fit, and which bands the common level leaves out) ...
    assert np.all(err_after <= 1.15 * err_before)
    # ... and far better for the masked output when its own part is small.
    if own_sd <= 0.02:
        assert err_after[1] < 0.5 * err_before[1]


def test_low_excess_must_be_error_or_signal():
    with pytest.raises(ValueError, match="low_excess"):
        wiener_over_lines(np.zeros(128), np.ones(128, bool), np.ones(128), low_excess="scene")


def test_short_single_group_or_no_noise_estimate_changes_nothing(rng):
    raw = rng.normal(size=(2, 48, 1))  # too few lines for a spectrum
    counts = np.full(raw.shape, 100, np.int64)
    np.testing.assert_array_equal(share_common_mode(_measured(raw, counts), np.ones(2)).raw, raw)
    raw4 = rng.normal(size=(2, 64, 4))
    counts4 = np.full(raw4.shape, 100, np.int64)
    out = share_common_mode(_measured(raw4, counts4), np.array([np.nan, 0.0])).raw
    np.testing.assert_array_equal(out, raw4)


@pytest.mark.parametrize("n_groups", [1, 4])
@pytest.mark.parametrize("noise", [0.02, 1.0])
def test_common_level_filtered_toward_the_1f_stripe(rng, n_groups, noise):
    """A 1/f line stripe under white error: the filter takes error, never stripe.

    ``noise`` is the error of one line's level over the stripe's RMS: small,
    the stripe is measured almost exactly and must come through unchanged;
    large, its highest line frequencies are mostly error.
    """
    n_lines = 2048
    stripe = 10.0 + _pink(rng, n_lines, 1.0)
    counts = np.full((1, n_lines, n_groups), 500, np.int64)
    sigma = noise * np.sqrt(n_groups * 500 / MEDIAN_EFFICIENCY)  # one line's error = noise
    error = rng.normal(0, 1, counts.shape) * np.sqrt(MEDIAN_EFFICIENCY * sigma**2 / 500)
    raw = stripe[None, :, None] + error
    shared = share_common_mode(_measured(raw, counts), np.array([sigma])).raw
    line_before = raw[0].mean(axis=1) - stripe
    line_after = shared[0].mean(axis=1) - stripe
    rms = lambda x: np.sqrt(np.mean((x - x.mean()) ** 2))  # noqa: E731
    # (with four groups the own parts' filter costs up to ~10%, as above)
    assert rms(line_after) < (1.0 if n_groups == 1 else 1.1) * rms(line_before)
    if noise > 0.1:  # the optimal filter's error is ~0.5x here
        assert rms(line_after) < 0.7 * rms(line_before)
    # The stripe itself is kept: what was removed is mostly error.
    removed = raw[0].mean(axis=1) - shared[0].mean(axis=1)
    assert rms(removed) < 1.5 * rms(line_before)
    # ... and the plane keeps its mean level (the pedestal, the sky).
    assert abs(removed.mean()) < 0.01 * rms(line_before) + 1e-12


def test_fallback_groups_and_nan_are_left_alone(rng):
    _, raw = _levels(rng, 256, 0.0, np.full((256, 4), 256))
    counts = np.full(raw.shape, 256, np.int64)
    counts[0, :10, 2] = 3  # below needed: the band fallback decides these
    raw[0, 20, 3] = np.nan
    out = share_common_mode(_measured(raw, counts, needed=50), np.array([1.0])).raw
    np.testing.assert_array_equal(out[0, :10, 2], raw[0, :10, 2])
    assert np.isnan(out[0, 20, 3])
    assert np.isfinite(out[0, 21:]).all()


def _pink(rng, n, rms, alpha=1.0):
    """Noise over ``n`` lines with power ``f**-alpha`` (1/f by default) and the given RMS."""
    freq = np.fft.rfftfreq(n)
    amplitude = np.zeros(freq.size)
    amplitude[1:] = freq[1:] ** (-alpha / 2)
    phases = rng.normal(size=freq.size) + 1j * rng.normal(size=freq.size)
    series = np.fft.irfft(amplitude * phases, n)
    return rms * (series - series.mean()) / series.std()


@pytest.mark.parametrize("scene_rms", [0.0, 0.03])
def test_wiener_keeps_the_1_over_f_part_and_drops_slow_scene_error(rng, scene_rms):
    n = 2048
    own = _pink(rng, n, 0.01)
    lines = np.arange(n)
    # A band's share of a large-scale scene: smooth over hundreds of lines.
    scene = scene_rms * (
        np.sin(2 * np.pi * lines / 700 + 1.0) + 0.5 * np.cos(2 * np.pi * lines / 310)
    )
    error_var = np.full(n, 0.003**2)
    measured = own + scene + rng.normal(0, 0.003, n)
    valid = np.ones(n, bool)
    valid[rng.random(n) < 0.02] = False
    filtered = wiener_over_lines(measured - np.median(measured), valid, error_var)
    before = np.std((measured - own)[valid])
    after = np.std((filtered - own)[valid] - np.mean((filtered - own)[valid]))
    # Where the own part dominates at every frequency little can be gained;
    # slow scene error is mostly removed.
    assert after < (0.4 if scene_rms else 1.1) * before
    if not scene_rms:  # the own stripe itself is kept, not shrunk away
        assert np.corrcoef(filtered[valid], own[valid])[0, 1] > 0.95


@pytest.mark.parametrize("own_sd", [0.0, 0.02, 0.2])
def test_the_own_parts_filter_keeps_each_lines_mean_level(rng, own_sd):
    """The filters split a line's level among its groups; they do not move it.

    The line's mean over its groups is measured on all of the line's pixels:
    filtering each group's own part with its own gain moved it, which left
    about 10-25% more error in the line means than the measured levels had.
    """
    counts = np.full((1, 2048, 4), 512, np.int64)
    truth, raw = _levels(rng, 2048, own_sd, counts[0])
    shared = share_common_mode(_measured(raw, counts), np.array([1.0])).raw

    def line_mean_error(levels):
        return np.std((levels - truth).mean(axis=2))

    # The common level's own filter may only take a little error away.
    assert line_mean_error(shared) <= 1.02 * line_mean_error(raw)


def test_a_group_on_too_few_lines_leaves_the_others_filtered(rng):
    """A group usable on fewer lines than its own variance needs keeps its level;
    the other groups of those lines are filtered as on every other line."""
    n_lines = 256
    counts = np.full((1, n_lines, 4), 512, np.int64)
    _, raw = _levels(rng, n_lines, 0.02, counts[0])
    counts[0, :, 2] = 0
    counts[0, 100:110, 2] = 512  # 10 lines: too few for the group's own variance
    raw[0, counts[0, :, 2] == 0, 2] = np.nan
    shared = share_common_mode(_measured(raw, counts, needed=100), np.array([1.0])).raw
    np.testing.assert_array_equal(shared[0, 100:110, 2], raw[0, 100:110, 2])
    others = [0, 1, 3]
    assert (shared[0, 100:110][:, others] != raw[0, 100:110][:, others]).all()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_band_a_source_mostly_covers_takes_its_own_part_from_its_neighbours(seed):
    """Where a source leaves a band a fifth of its pixels, their level carries its
    wing; the band's own part there comes from the neighbouring lines instead.

    Kept in the own parts' spectrum, the wing left 2-3 times the band's usual
    error on those lines (0.075-0.088 against 0.029-0.036 on these seeds).
    """
    rng = np.random.default_rng(seed)
    counts = np.full((1, 2048, 4), 512, np.int64)
    truth, raw = _levels(rng, 2048, 0.02, counts[0])
    counts[0, 1000:1040, 2] = 100
    raw[0, 1000:1040, 2] += 0.3 * np.hanning(40)  # the wing on the few pixels left
    shared = share_common_mode(_measured(raw, counts), np.array([1.0])).raw
    error = (shared - truth)[0, :, 2]
    covered = np.sqrt(np.mean(error[1000:1040] ** 2))
    elsewhere = np.sqrt(np.mean(error[500:540] ** 2))
    assert covered < 1.6 * elsewhere
    # Read-time segments keep their own part where covered (it is the 1/f
    # within the line, which the neighbouring lines do not give back).
    kept = share_common_mode(_measured(raw, counts), np.array([1.0]), covered=False).raw
    error = (kept - truth)[0, :, 2]
    assert np.sqrt(np.mean(error[1000:1040] ** 2)) > 1.6 * elsewhere


def test_a_biased_band_does_not_pass_its_bias_to_the_others(rng):
    """A source wing biasing one band on some lines stays in that band."""
    counts = np.full((1, 1024, 4), 512, np.int64)
    truth, raw = _levels(rng, 1024, 0.0, counts[0])
    raw[0, 300:400, 2] += 0.5  # ten times the band's measuring error
    shared = share_common_mode(_measured(raw, counts), np.array([1.0])).raw
    others = [0, 1, 3]
    err = (shared - truth)[0, 300:400][:, others]
    err_elsewhere = (shared - truth)[0, 500:600][:, others]
    assert abs(err.mean() - err_elsewhere.mean()) < 0.02


@pytest.mark.parametrize(
    "case", ["finite", "some NaN", "a plane without levels", "a plane of -inf", "huge", "no planes"]
)
def test_plane_levels_is_each_planes_median_of_its_finite_levels(case, rng):
    from bgdnoise.stages import plane_levels

    levels = rng.normal(0.0, 1.0, (5, 40, 4))
    if case == "some NaN":
        levels[1, 3:9, 2] = np.nan
        levels[3, 0] = np.inf
    elif case == "a plane without levels":
        levels[2] = np.nan
    elif case == "a plane of -inf":
        levels[0] = -np.inf
    elif case == "huge":  # the mean of the two middle values overflows
        levels[4] = 1.7e308
    elif case == "no planes":
        levels = levels[:0]
    expected = []
    for plane in levels:
        finite = plane[np.isfinite(plane)]
        if finite.size == 0:
            expected.append(np.nan)
            continue
        with np.errstate(over="ignore"):
            median = np.median(finite)
        if not np.isfinite(median):  # halves of the two middle values
            middle = np.sort(finite)[(finite.size - 1) // 2 : finite.size // 2 + 1]
            median = middle[0] / 2 + middle[-1] / 2
        expected.append(median)
    np.testing.assert_array_equal(plane_levels(levels), np.array(expected))


def test_each_groups_noise_is_its_sky_variance_over_the_median_groups(rng):
    # The median over the lines of each group's sky variance, over the median
    # of the groups': three quiet groups keep the plane's noise (1) beside a
    # group with three times their variance.
    n_lines = 200
    variances = np.array([1.0, 1.0, 1.0, 3.0])
    sky_vars = variances[None, None, :] * rng.uniform(0.9, 1.1, (2, n_lines, 4))
    ok = np.ones(sky_vars.shape, bool)
    ok[1, :, 2] = False  # a group without sky: 1
    noise = _group_noise(sky_vars, ok)
    np.testing.assert_allclose(noise[0], variances, rtol=0.05)
    typical = np.median(sky_vars[1][:, [0, 1, 3]], axis=0)
    np.testing.assert_allclose(noise[1, [0, 1, 3]], typical / np.median(typical), rtol=1e-12)
    assert noise[1, 2] == 1.0
    np.testing.assert_array_equal(_group_noise(None, ok), np.ones((2, 4)))


def test_group_noise_without_enough_sky_or_out_of_range_is_bounded():
    n_lines = 64
    sky_vars = np.ones((1, n_lines, 5))
    sky_vars[0, :, 1] = 100.0  # far noisier: held at 4
    sky_vars[0, :, 2] = 1e-6  # far quieter (not noise alone): held at 1/4
    sky_vars[0, :, 3] = np.where(np.arange(n_lines) < 10, 9.0, np.nan)  # 10 lines: 1
    sky_vars[0, ::2, 4] = -1.0  # rounding below 0 and NaN: left out
    sky_vars[0, 1::4, 4] = np.nan
    noise = _group_noise(sky_vars, np.ones(sky_vars.shape, bool))
    np.testing.assert_array_equal(noise[0], [1.0, 4.0, 0.25, 1.0, 1.0])
    # A plane where no group has sky, or only infinite variances: all 1.
    for values in (np.nan, np.inf):
        empty = np.full((1, n_lines, 3), values)
        np.testing.assert_array_equal(_group_noise(empty, np.ones(empty.shape, bool)), 1.0)


def test_one_group_planes_are_unchanged_by_the_sky_variance(rng):
    raw = rng.normal(size=(2, 512, 1)) + np.arange(512)[None, :, None] * 0.01
    counts = np.full(raw.shape, 300, np.int64)
    sky_vars = rng.uniform(0.5, 2.0, raw.shape)
    measured = _measured(raw, counts)
    without = share_common_mode(measured, np.ones(2), efficiency=1.0).raw
    with_vars = share_common_mode(replace(measured, sky_vars=sky_vars), np.ones(2), 1.0).raw
    np.testing.assert_array_equal(with_vars, without)


def test_a_noisier_output_weighs_less_in_the_common_level(rng):
    # Output 3 with twice the white noise of the others: weighted by each
    # group's own noise (its sky variance), the common level's error is that
    # of three quiet bands and a quarter-weight noisy one; with one noise for
    # all, the noisy band counts fully (a third more error).
    n_lines, sigma = 2048, 1.0
    counts = np.full((1, n_lines, 4), 512, np.int64)
    scale = np.array([1.0, 1.0, 1.0, 2.0])
    common = rng.normal(0, 5.0, n_lines)
    error = rng.normal(0, 1, (n_lines, 4)) * scale * sigma / np.sqrt(512)
    truth = common[:, None] + np.zeros(4)
    raw = (truth + error)[None]
    measured = _measured(raw, counts)
    equal = share_common_mode(measured, np.array([sigma]), efficiency=1.0).raw
    sky_vars = np.broadcast_to((scale * sigma) ** 2, raw.shape).copy()
    weighted = share_common_mode(
        replace(measured, sky_vars=sky_vars), np.array([sigma]), efficiency=1.0
    ).raw

    def line_error(levels):
        return np.std((levels - truth).mean(axis=2))

    assert line_error(weighted) < 0.9 * line_error(equal)
    # ... and no quiet group's own level is worse for it.
    quiet_equal = np.std((equal - truth)[0, :, :3], axis=0)
    quiet_weighted = np.std((weighted - truth)[0, :, :3], axis=0)
    assert np.all(quiet_weighted <= 1.02 * quiet_equal)


def test_solve_chain_is_the_tridiagonal_solve(rng):
    from bgdnoise.outputs import _solve_chain

    for n in (1, 2, 50):
        off = -rng.uniform(0.2, 1.0, n - 1)
        diagonal = rng.uniform(0.5, 1.0, n) + np.r_[0.0, -off] + np.r_[-off, 0.0]  # dominant
        rhs = rng.normal(size=n)
        matrix = np.diag(diagonal) + np.diag(off, 1) + np.diag(off, -1)
        np.testing.assert_allclose(_solve_chain(diagonal, off, rhs), np.linalg.solve(matrix, rhs),
                                   rtol=1e-12, atol=1e-12)  # fmt: skip


def _noisy_block(seed, n=512):
    """1/f levels whose lines 200-259 have an 80th of the pixels (error 1, others 0.11)."""
    rng = np.random.default_rng(seed)
    truth = _pink(rng, n, 1.0)
    pixels = np.full(n, 2000.0)
    pixels[200:260] = 25.0
    error_var = 5.0**2 / pixels  # a pixel's noise of 5
    return truth, truth + rng.normal(size=n) * np.sqrt(error_var), error_var


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lines_on_few_pixels_lean_on_their_neighbours(seed):
    # A trace along the lines leaves 60 lines an 80th of the pixels: their
    # levels' error (1 here) is larger than the stripe's step from one line to
    # the next (0.6-0.9). Weighed against their neighbours they come closer
    # to the stripe (0.43-0.64 of the error on ten seeds); every other line
    # is kept bit for bit, and a line without a level is neither used nor
    # changed.
    from bgdnoise.outputs import steady_noisy_lines

    truth, measured, error_var = _noisy_block(seed)
    valid = np.ones(truth.size, bool)
    valid[[5, 199]] = False  # one far away, one next to the block
    measured[[5, 199]] = np.nan
    steady = steady_noisy_lines(measured, error_var, valid)
    noisy = slice(200, 260)
    before = np.sqrt(np.mean((measured[noisy] - truth[noisy]) ** 2))
    after = np.sqrt(np.mean((steady[noisy] - truth[noisy]) ** 2))
    assert after < 0.75 * before
    others = np.ones(truth.size, bool)
    others[noisy] = False
    np.testing.assert_array_equal(steady[others], measured[others])
    # Nothing noisy: nothing moves, and the result is a new array.
    calm = steady_noisy_lines(measured, np.full(truth.size, 0.01), valid)
    np.testing.assert_array_equal(calm, measured)
    assert calm is not measured


def test_noisy_lines_solve_the_weighted_random_walk():
    # The moved values are those of the dense least-squares problem: each
    # line's value weighed 1 / error_var, each step between consecutive lines
    # with a level 1 / (gap * step_var), step_var from the clean lines' steps.
    from bgdnoise.outputs import _CHI2_1_MEDIAN, steady_noisy_lines

    truth, measured, error_var = _noisy_block(3, n=300)
    valid = np.ones(truth.size, bool)
    valid[[120, 198, 199]] = False
    steady = steady_noisy_lines(measured, error_var, valid)
    lines = np.flatnonzero(valid)
    clean = valid & (error_var <= 4 * np.median(error_var[valid]))
    pairs = clean[1:] & clean[:-1]
    step_var = max(np.median(np.diff(measured)[pairs] ** 2) / _CHI2_1_MEDIAN,
                   np.median(error_var[valid]))  # fmt: skip
    rows = [np.eye(lines.size)[i] / np.sqrt(error_var[line]) for i, line in enumerate(lines)]
    targets = list(measured[lines] / np.sqrt(error_var[lines]))
    for i in range(lines.size - 1):
        row = np.zeros(lines.size)
        row[i], row[i + 1] = -1.0, 1.0
        rows.append(row / np.sqrt(step_var * (lines[i + 1] - lines[i])))
        targets.append(0.0)
    dense = np.linalg.lstsq(np.array(rows), np.array(targets), rcond=None)[0]
    moved = error_var[lines] > 4 * np.median(error_var[valid])
    np.testing.assert_allclose(steady[lines[moved]], dense[moved], rtol=1e-9, atol=1e-12)


def test_a_line_whose_mean_overflows_is_left_as_it_is():
    # Levels near the float64 maximum are finite, their mean over the groups is
    # not: that line takes no part, and nothing warns (warnings are errors here).
    from bgdnoise.stages import Resolved, steady_lines

    _, measured, error_var = _noisy_block(5)
    pixels = 25.0 / error_var  # a pixel's noise of 5, as _noisy_block's
    levels = np.repeat(measured[None, :, None], 3, axis=2)
    levels[0, 7] = 1.2e308
    resolved = Resolved(levels, np.zeros(levels.shape, bool), np.zeros(1), levels.copy(),
                        np.zeros(1, int), np.zeros(1, int))  # fmt: skip
    counts = np.repeat(pixels[None, :, None] / 3, 3, axis=2)
    zeros = np.zeros(levels.shape)
    measure = Measured(levels, counts, zeros, zeros, zeros.astype(bool), np.ones(1),
                       sigma=np.array([5.0]))  # fmt: skip
    steady = steady_lines(resolved, measure)
    assert steady is not resolved  # the noisy lines 200-259 moved
    np.testing.assert_array_equal(steady.levels[0, 7], levels[0, 7])
    moved = ~np.all(steady.levels == levels, axis=2)[0]
    assert moved[200:260].any() and not moved[:200].any() and not moved[260:].any()


def test_too_few_lines_or_invalid_ones_change_nothing():
    from bgdnoise.outputs import steady_noisy_lines

    _, measured, error_var = _noisy_block(4)
    none = np.zeros(measured.size, bool)
    np.testing.assert_array_equal(steady_noisy_lines(measured, error_var, none), measured)
    few = np.zeros(measured.size, bool)
    few[195:205] = True
    np.testing.assert_array_equal(steady_noisy_lines(measured, error_var, few), measured)


@pytest.mark.parametrize("low_excess", ["error", "signal"])
def test_wiener_filter_of_many_series_is_each_series_filtered(low_excess, rng):
    # The cube's series go through one call (the transforms of all at once):
    # the same bits as one call per series.
    n_series, n_lines = 7, 300
    stripes = np.cumsum(rng.normal(0, 0.1, (n_series, n_lines)), axis=1)
    measured = stripes + rng.normal(0, 1.0, (n_series, n_lines))
    valid = rng.random((n_series, n_lines)) > 0.1
    error_var = rng.uniform(0.5, 2.0, (n_series, n_lines))
    together = wiener_over_lines(measured, valid, error_var, low_excess)
    for s in range(n_series):
        alone = wiener_over_lines(measured[s], valid[s], error_var[s], low_excess)
        np.testing.assert_array_equal(together[s], alone)
    assert together.shape == measured.shape


def test_scene_power_of_the_own_parts_is_taken_out_of_the_common_level(rng):
    """A scene differing from band to band: the common filter drops its share of the mean."""
    n, bands = 2048, 4
    stripe = _pink(rng, n, 0.01)
    lines = np.arange(n)
    # Each band's share of a nebula: structure on ~100-300 lines, independent per band.
    scene = np.stack(
        [
            sum(
                0.02 * rng.normal() * np.cos(2 * np.pi * lines / period + rng.uniform(0, 6.3))
                for period in (110, 170, 260, 400)
            )
            for _ in range(bands)
        ]
    )
    noise = 0.002
    raw = stripe[None, :, None] + scene.T[None] + rng.normal(0, noise, (1, n, bands))
    counts = np.full((1, n, bands), 500)
    measured = _measured(raw, counts)
    sigma = np.array([noise * np.sqrt(500.0)])

    def common_error(shared):
        error = shared.mean(axis=2)[0] - stripe
        return np.std(error - error.mean())

    plain = share_common_mode(measured, sigma, covered=True, bands=1).raw  # no scene taken out
    taken = share_common_mode(measured, sigma, covered=True, bands=bands).raw
    # The scene's mean over the bands (what the common level carries of it) is
    # what the correction would subtract; taking its share out leaves less of it.
    assert common_error(taken) < 0.8 * common_error(plain)


def test_the_scene_power_taken_is_at_most_the_common_levels_excess(rng):
    """Scene power beyond what the common level has beyond its law changes nothing."""
    n = 1024
    series = _pink(rng, n, 0.01) + rng.normal(0, 0.002, n)
    valid = np.ones(n, bool)
    error_var = np.full(n, 0.002**2)
    plain, excess, law = wiener_over_lines(
        series - series.mean(), valid, error_var, low_excess="signal", return_excess=True
    )
    assert excess[0] == 0.0 and (excess >= 0).all()
    assert (law[1:] >= error_var[0] * 0.999).all()  # the law includes the white floor
    none = wiener_over_lines(
        series - series.mean(), valid, error_var, low_excess="signal", scene=np.zeros(n // 2 + 1)
    )
    np.testing.assert_array_equal(none, plain)
    # Any scene power where the series has no excess: the same filter.
    scene = np.where(excess > 0, 0.0, 1e9)
    same = wiener_over_lines(
        series - series.mean(), valid, error_var, low_excess="signal", scene=scene
    )
    np.testing.assert_array_equal(same, plain)
    # Scene power everywhere: the excess is taken out wherever there is one.
    assert excess.any()
    everywhere = np.full(n // 2 + 1, 1e9)
    huge = wiener_over_lines(
        series - series.mean(), valid, error_var, low_excess="signal", scene=everywhere
    )
    # The gain drops exactly where the series has power beyond its law.
    kept, cut = np.abs(np.fft.rfft(plain)), np.abs(np.fft.rfft(huge))
    assert (cut <= kept * (1 + 1e-9) + 1e-12).all()
    clear = excess > 0.01 * law
    assert clear.any() and (cut[clear] < 0.999 * kept[clear]).all()
    np.testing.assert_allclose(cut[excess == 0], kept[excess == 0], rtol=1e-9, atol=1e-12)


def test_the_scene_is_only_for_the_common_filter_and_shaped_like_its_spectra():
    series, valid, error_var = np.zeros((2, 64)), np.ones((2, 64), bool), np.ones((2, 64))
    with pytest.raises(ValueError, match="only with low_excess='signal'"):
        wiener_over_lines(series, valid, error_var, "error", scene=np.zeros((2, 33)))
    with pytest.raises(ValueError, match=r"scene has shape \(2, 64\).*\(2, 33\)"):
        wiener_over_lines(series, valid, error_var, "signal", scene=np.zeros((2, 64)))


def test_own_stripes_steeper_than_1_over_f_are_not_taken_for_scene():
    """No scene, own stripes ``f**-1.3`` with a third of the power: almost never taken out.

    Their power beyond a 1/f law fitted above 1/16 mostly stays below the
    threshold, so the common filter is the same, bit for bit, as without
    the scene term on most frames (a periodogram's lowest bin can still
    cross it now and then); counting every excess (threshold 0) makes the
    frames worse on average.
    """
    from bgdnoise import outputs

    n, bands, noise, frames = 2048, 4, 0.002, 12
    same, ratio, ratio_every = 0, [], []
    for seed in range(frames):
        rng = np.random.default_rng(seed)
        common = _pink(rng, n, 0.01)
        own = np.stack([_pink(rng, n, 0.007, alpha=1.3) for _ in range(bands)], axis=1)
        truth = (common[:, None] + own)[None]
        raw = truth + rng.normal(0, noise, (1, n, bands))
        measured = _measured(raw, np.full((1, n, bands), 500))
        sigma = np.array([noise * np.sqrt(500.0)])

        def error(shared, truth=truth):
            residual = shared - truth
            return np.std(residual - residual.mean(axis=1, keepdims=True))

        plain = share_common_mode(measured, sigma, covered=True, bands=1).raw
        banded = share_common_mode(measured, sigma, covered=True, bands=bands).raw
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(outputs, "_SCENE_EXCESS", 0.0)
            every = share_common_mode(measured, sigma, covered=True, bands=bands).raw
        same += np.array_equal(banded, plain)
        ratio.append(error(banded) / error(plain))
        ratio_every.append(error(every) / error(plain))
    assert same >= frames * 3 // 4
    assert np.mean(ratio) < 1.002
    assert np.mean(ratio_every) > np.mean(ratio) + 0.002


def test_scene_in_common_counts_groups_far_beyond_their_law():
    from bgdnoise.outputs import _SCENE_EXCESS, _scene_in_common

    law = np.ones((2, 3, 5))
    excess = np.zeros((2, 3, 5))
    excess[0, 0, 1] = 1.01 * _SCENE_EXCESS  # beyond the threshold: counted
    excess[0, 1, 1] = 0.99 * _SCENE_EXCESS  # below it: counted as 0
    excess[0, :, 2] = 50.0
    excess[0, 2, 2] = np.nan  # no spectrum: left out of the mean
    excess[0, 1, 3] = np.inf  # a broken spectrum: left out too
    excess[0, 0, 3] = 30.0
    excess[1] = np.nan  # a plane without spectra
    scene = _scene_in_common((excess, law), bands=3)
    expected = np.zeros((2, 5))
    expected[0, 1] = 1.01 * _SCENE_EXCESS / 3 / 2  # mean of 3 groups, over n - 1
    expected[0, 2] = 50.0 / 2
    expected[0, 3] = (30.0 + 0.0) / 2 / 2
    np.testing.assert_allclose(scene, expected)
    assert _scene_in_common((excess, law), bands=1) is None
