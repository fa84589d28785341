"""The line-level kernels against independent references (astropy, numpy)."""

import itertools

import numpy as np
import pytest
from reference import REGISTRY, astropy_line_levels, unusable
from testdata import messy_lines

from bgdnoise import CorrectionOptions, _kernels, measure_levels, stages
from bgdnoise._prepare import prepare

RTOL = 1e-6


def assert_levels_equal(ours, ref):
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("name", sorted(REGISTRY))
@pytest.mark.parametrize("axis", ["rows", "columns"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(37, 300), (3, 41, 129), (2, 2, 16, 70)])
def test_registry_matches_references(name, axis, dtype, shape, rng):
    data = messy_lines(rng, shape).astype(dtype)
    mask = rng.random(shape[-2:]) < 0.1
    comparison = REGISTRY[name]
    ours = comparison.ours(data, axis, mask=mask)
    for ref_name, ref in comparison.exact.items():
        np.testing.assert_allclose(
            ours,
            ref(data, axis, mask=mask),
            rtol=RTOL,
            atol=1e-12,
            equal_nan=True,
            err_msg=ref_name,
        )


@pytest.mark.parametrize("axis", ["rows", "columns"])
@pytest.mark.parametrize("length", [1, 2, 3, 4, 5, 63, 64, 65, 200, 2048])
@pytest.mark.parametrize("ties", [False, True])
def test_clipped_median_lengths_and_ties(axis, length, ties, rng):
    # Odd and even counts, tiny lines, both internal algorithms (< 64 and >= 64).
    shape = (25, length) if axis == "rows" else (length, 25)
    data = messy_lines(rng, shape, ties=ties)
    ours = measure_levels(data, axis, scale="line").raw[:, 0]
    assert_levels_equal(ours, astropy_line_levels(data, axis))


@pytest.mark.parametrize(
    "params",
    [
        dict(sigma=2.0),
        dict(sigma=1.5, maxiters=None),
        dict(sigma_lower=4.0, sigma_upper=1.5),
        dict(sigma_lower=1.0, sigma_upper=5.0, maxiters=3),
        dict(maxiters=1),
    ],
)
def test_clipping_parameters(params, rng):
    data = messy_lines(rng, (60, 500), outlier_fraction=0.2)
    ours = measure_levels(data, "rows", scale="line", **params).raw[:, 0]
    assert_levels_equal(ours, astropy_line_levels(data, "rows", **params))


def test_heavy_one_sided_contamination(rng):
    # A bright source filling 60% of a line: many iterations, a median far
    # from the first one, values outside the histogram range.
    data = rng.normal(1.0, 0.1, (40, 1000))
    data[:, :600] += rng.uniform(0.0, 50.0, (40, 600))
    ours = measure_levels(data, "rows", scale="line", maxiters=None).raw[:, 0]
    assert_levels_equal(ours, astropy_line_levels(data, "rows", maxiters=None))


def test_constant_and_two_valued_lines():
    data = np.ones((4, 300))
    data[1, ::2] = 2.0
    data[2, :] = 7.0
    data[2, 5] = 1e6
    data[3, :150] = 3.0
    data[3, 150:] = 4.0
    ours = measure_levels(data, "rows", scale="line").raw[:, 0]
    assert_levels_equal(ours, astropy_line_levels(data, "rows"))


def test_fixed_scale_matches_astropy_with_constant_std(rng):
    data = messy_lines(rng, (30, 400), outlier_fraction=0.1)
    scale = 0.8

    from astropy.stats import sigma_clip

    values = np.where(unusable(data), np.nan, data)
    expected = []
    for row in values:
        row = row[np.isfinite(row)]
        clipped = sigma_clip(
            row, sigma=3.0, maxiters=10, cenfunc="median", stdfunc=lambda x, axis=None: scale
        )
        expected.append(np.ma.median(clipped))
    flags = np.zeros((1, 0, 0), np.uint8)
    bg = np.zeros((1, 0, 0))
    edges = np.array([0, 400])
    raw = np.empty((1, 30, 1))
    counts = np.empty((1, 30, 1), np.int64)
    sky_means, sky_counts = np.empty((1, 30, 1)), np.empty((1, 30, 1), np.int64)
    sky_vars = np.empty((1, 30, 1))
    _kernels.line_levels(
        data[None],
        flags,
        bg,
        (True, edges, False, np.array([0, 400])),
        (3.0, 3.0, np.array([scale]), 10),
        (np.array([1]), 1, np.empty(0, np.int64), np.zeros((0, 0), np.uint8)),
        np.array([scale]),
        (1, 2),
        (raw, counts, np.empty((0, 0)), np.empty((0, 0), np.int64), sky_means, sky_counts,
         sky_vars),
    )  # fmt: skip
    assert_levels_equal(raw[0, :, 0], np.array(expected))
    # The sky: the usable values within the clip's bounds around the level.
    for line, row in enumerate(values):
        row = row[np.isfinite(row)]
        sky = row[np.abs(row - raw[0, line, 0]) <= 3.0 * scale]
        assert sky_counts[0, line, 0] == sky.size
        np.testing.assert_allclose(sky_means[0, line, 0], sky.mean(), rtol=1e-12)
        np.testing.assert_allclose(sky_vars[0, line, 0], sky.var(), rtol=1e-9)


@pytest.mark.parametrize("axis", ["rows", "columns"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("odd_even", [False, True])
@pytest.mark.parametrize("n_background", [0, 1, 3])
@pytest.mark.parametrize("n_outputs", [2, 5])
def test_sky_is_the_mean_within_the_clip_around_each_level(
    axis, dtype, odd_even, n_background, n_outputs, rng
):
    """``measure(sky=True)``: each group's usable values within the clip's bounds.

    2 to 10 groups: the kernel sums four groups at a time and the rest alone.
    """
    shape = (3, 37, 130)
    data = rng.normal(10.0, 1.0, shape)
    data[rng.random(shape) < 0.03] += 50.0  # beyond the window
    data[rng.random(shape) < 0.05] = np.nan
    data[rng.random(shape) < 0.01] = 0.0  # no data in a rate file
    data[1, 4] = np.nan  # a line without values (rows; columns: 4 values fewer)
    data = data.astype(dtype)
    dq = (rng.random(shape) < 0.1).astype(np.uint32)  # DO_NOT_USE
    background = None
    if n_background:
        background = rng.normal(
            0.0, 0.3, (n_background, *shape[1:]) if n_background > 1 else shape[1:]
        )
    options = CorrectionOptions.from_kwargs(n_outputs=n_outputs, odd_even=odd_even, sigma_upper=2.5)
    prepared = prepare(data, axis, options, dq=dq, background=background)
    measured = stages.measure(prepared, options, sky=True, sky_variance=True)
    values = data.astype(np.float64)
    values[(values == 0.0) | (dq & 1 != 0)] = np.nan
    if background is not None:
        # the background in the data's dtype, as the correction takes it
        values = values - np.broadcast_to(background.astype(dtype), shape)
    if axis == "columns":
        values = values.transpose(0, 2, 1)
    layout = prepared.layout
    for p in range(shape[0]):
        low = measured.raw[p] - 3.0 * measured.sigma[p]
        high = measured.raw[p] + 2.5 * measured.sigma[p]
        for g in range(layout.group_sizes.size):
            band = g // 2 if odd_even else g
            positions = np.arange(layout.band_edges[band], layout.band_edges[band + 1])
            if odd_even:
                positions = positions[positions % 2 == g % 2]
            group = values[p][:, positions]
            with np.errstate(invalid="ignore"):
                sky = (group >= low[:, g, None]) & (group <= high[:, g, None])
            np.testing.assert_array_equal(measured.sky_counts[p, :, g], sky.sum(axis=1))
            with np.errstate(invalid="ignore"):
                expected = np.where(sky, group, 0.0).sum(axis=1) / sky.sum(axis=1)
            np.testing.assert_allclose(
                measured.sky_means[p, :, g], expected, rtol=1e-12, equal_nan=True
            )
            with np.errstate(invalid="ignore", divide="ignore"):
                spread = np.where(sky, group - expected[:, None], 0.0)
                variance = (spread**2).sum(axis=1) / sky.sum(axis=1)
            np.testing.assert_allclose(
                measured.sky_vars[p, :, g], variance, rtol=1e-9, atol=1e-12, equal_nan=True
            )
    # Without the sky there is none, and no variance unless asked for; the
    # means and counts without it (a loop of their own) are the same bits.
    assert stages.measure(prepared, options).sky_means is None
    means_only = stages.measure(prepared, options, sky=True)
    assert means_only.sky_vars is None
    np.testing.assert_array_equal(means_only.sky_means, measured.sky_means)
    np.testing.assert_array_equal(means_only.sky_counts, measured.sky_counts)


def test_sky_of_a_plane_without_a_dispersion_is_all_its_values_and_keeps_medians():
    # Plane 0: noise-free stripes (no dispersion: no clip window, every usable
    # value is sky); plane 1: noise (a window, a mean level).
    rng = np.random.default_rng(5)
    stripes = np.arange(1.0, 41.0)  # no 0: a zero is no data
    data = np.stack([np.repeat(stripes[:, None], 300, axis=1), rng.normal(size=(40, 300))])
    data[0, :, :3] += 100.0  # far from the level: in the sky all the same
    options = CorrectionOptions()
    prepared = prepare(data, "rows", options)
    measured = stages.measure(prepared, options, sky=True, sky_variance=True)
    assert not measured.sigma[0] > 0 and measured.sigma[1] > 0  # plane 0: NaN
    np.testing.assert_array_equal(measured.sky_counts[0], measured.counts[0])
    np.testing.assert_allclose(measured.sky_means[0, :, 0], stripes + 1.0)
    # ... and their variance: 3 of 300 values 100 above the other 297.
    np.testing.assert_allclose(measured.sky_vars[0, :, 0], np.var([100.0] * 3 + [0.0] * 297))
    levels = stages.with_sky_levels(measured).raw
    # Plane 0 keeps its medians (the stripes); plane 1 takes its sky means.
    np.testing.assert_array_equal(levels[0], measured.raw[0])
    np.testing.assert_array_equal(levels[1], measured.sky_means[1])
    assert not np.array_equal(levels[1], measured.raw[1])
    with pytest.raises(ValueError, match="sky=True"):
        stages.with_sky_levels(stages.measure(prepared, options))


def test_partition_and_binned_algorithms_agree(rng):
    # The two exact algorithms inside the kernel, on the same lines.
    n = 700
    scratch = _kernels.binned_scratch(n)
    for trial in range(200):
        vals = rng.standard_t(2 + trial % 5, n) * rng.uniform(0.01, 100)
        if trial % 4 == 0:
            vals = np.round(vals)
        if trial % 4 == 1:
            # Two clusters, the middle in the gap: the two middle values of
            # an even count lie in bins with empty ones between them.
            side = np.where(vals < np.median(vals), -1.0, 1.0)
            vals = side * rng.uniform(1.0, 2.0, n) * rng.uniform(0.01, 100)
        for fixed in (-1.0, 1.3):
            clip = (2.5, 3.0, fixed, 10)
            a = _kernels._clipped_median(vals.copy(), n, clip)
            b = _kernels._binned_clipped_median(vals.copy(), n, clip, scratch)
            assert a == b or (np.isnan(a) and np.isnan(b)), (trial, fixed, a, b)


def test_fixed_scale_levels_exact_where_the_bins_centre_on_a_source(rng):
    # With a fixed scale the bins are centred on a median of medians of 27
    # sampled values, which a source covering a third or more of the line can
    # carry into the source: the sky then lies in the underflow bin. The level
    # must still be the partition algorithm's, bit for bit.
    from bgdnoise._kernels.binned import _tukey_median

    n_off_centre = 0
    for trial in range(120):
        n = int(rng.integers(64, 1200))
        vals = rng.normal(0.0, 1.0, n)
        covered = int(n * rng.uniform(0.3, 0.7))
        first = int(rng.integers(0, n - covered + 1))
        vals[first : first + covered] += rng.uniform(20.0, 200.0, covered)
        if trial % 3 == 0:
            vals = np.round(vals, 1)  # ties within the bins
        scratch = _kernels.binned_scratch(n)
        n_off_centre += _tukey_median(vals, n) > 10.0
        for fixed in (0.3, 1.0, 4.0):
            clip = (3.0, 3.0, fixed, int(trial % 4 == 0) * 2 - 1)
            a = _kernels._clipped_median(vals.copy(), n, clip)
            b = _kernels._binned_clipped_median(vals.copy(), n, clip, scratch)
            assert a == b, (trial, fixed, a, b)
    assert n_off_centre > 10  # the case this test is about did occur


def test_tukey_median_is_the_median_of_medians_of_three(rng):
    from bgdnoise._kernels.binned import _tukey_median

    for n in (27, 28, 64, 100, 513, 2048):
        vals = rng.standard_t(2, n)
        positions = [int(k * ((n - 1) / 26.0)) for k in range(27)]
        sample = vals[positions].reshape(9, 3)
        expected = np.median(np.median(np.median(sample, axis=1).reshape(3, 3), axis=1))
        assert _tukey_median(vals, n) == expected


@pytest.mark.parametrize("along_rows", [True, False])
@pytest.mark.parametrize("with_flags", [False, True])
@pytest.mark.parametrize("with_background", [False, True])
@pytest.mark.parametrize("odd_even", [False, True])
def test_gather_keeps_the_usable_values_in_order(with_flags, with_background, odd_even, along_rows,
                                                 rng):  # fmt: skip
    """``gather_block`` against numpy's boolean indexing, bit for bit.

    Lines from 1 to 200 values, none to most of them unusable (the
    vectorised pass alone, or with the NaNs squeezed out): NaN, inf, zero,
    an EXCLUDE flag, or an infinite background. Each group's values go to
    its own span of the line's scratch (laid out as the layout's group
    sizes), and nothing is written past the last group's. Lines along
    columns are read in passes of a few rows (3 here: lines of 200 values
    take 67).
    """
    from bgdnoise._kernels.gather import gather_block

    for length, dtype in itertools.product((1, 31, 32, 33, 64, 97, 200), (np.float32, np.float64)):
        for bad_fraction in (0.0, 0.005, 0.05, 0.6):
            n_lines = 6
            data = rng.normal(5.0, 1.0, (n_lines, length)).astype(dtype)
            for value in (np.nan, np.inf, 0.0):
                data[rng.random(data.shape) < bad_fraction / 3] = value
            flags = np.zeros((0, 0), np.uint8)
            if with_flags:
                flags = (rng.random(data.shape) < bad_fraction).astype(np.uint8)
                flags *= rng.choice(np.array([_kernels.EXCLUDE, 2], np.uint8), data.shape)
            background = np.zeros((0, 0), dtype)
            if with_background:
                background = rng.normal(0.0, 1.0, data.shape).astype(dtype)
                background[rng.random(data.shape) < bad_fraction / 3] = np.inf
            n_outputs = 2 if length >= 2 else 1
            edges = np.array([b * length // n_outputs for b in range(n_outputs + 1)], np.int64)
            n_groups = n_outputs * (2 if odd_even else 1)
            spans = [_group_positions(edges, odd_even, g) for g in range(n_groups)]
            starts = np.cumsum([0] + [p.size for p in spans]).astype(np.int64)
            seg = np.full((n_lines, starts[-1] + 8), -1.0)  # 8 sentinels after the groups
            cnt = np.zeros((n_lines, n_groups), np.int64)
            geometry = (along_rows, edges, odd_even, starts)
            plane = (data, flags, background)
            if not along_rows:  # the same lines, as columns
                plane = tuple(np.ascontiguousarray(a.T) for a in plane)
            rows = np.full((3, n_lines), np.nan)
            gather_block(plane, 0, n_lines, geometry, (seg, cnt), rows)
            values = data.astype(np.float64)
            usable = np.isfinite(values) & (values != 0.0)
            if with_flags:
                usable &= (flags & _kernels.EXCLUDE) == 0
            if with_background:
                with np.errstate(invalid="ignore"):  # inf - inf: unusable
                    values = values - background.astype(np.float64)
                usable &= np.isfinite(values)
            for g, positions in enumerate(spans):
                for line in range(n_lines):
                    expected = values[line, positions][usable[line, positions]]
                    assert cnt[line, g] == expected.size
                    got = seg[line, starts[g] : starts[g] + cnt[line, g]]
                    np.testing.assert_array_equal(got, expected)
            assert (seg[:, starts[-1] :] == -1.0).all()


def _group_positions(edges: np.ndarray, odd_even: bool, g: int) -> np.ndarray:
    """Positions along a line of group ``g`` (band ``g``, or its parity ``g % 2``)."""
    band = g // 2 if odd_even else g
    positions = np.arange(edges[band], edges[band + 1])
    return positions[positions % 2 == g % 2] if odd_even else positions


def test_mask_and_dq_exclude_pixels(rng):
    data = rng.normal(0.0, 1.0, (20, 100))
    mask = np.zeros(data.shape, bool)
    mask[:, :30] = True
    dq = np.zeros(data.shape, np.uint32)
    dq[:, 30:40] = 1  # DO_NOT_USE
    dq[:, 40:45] = 4  # JUMP_DET: not in the default flags, stays usable
    ours = measure_levels(data, "rows", scale="line", mask=mask, dq=dq)
    expected = astropy_line_levels(data, "rows", mask=mask | (dq == 1))
    assert_levels_equal(ours.raw[:, 0], expected)
    assert (ours.counts[:, 0] == 60).all()


def test_background_is_subtracted_before_statistics(rng):
    data = rng.normal(0.0, 1.0, (20, 128))
    background = np.linspace(0.0, 5.0, 128)[None, :] * np.ones((20, 1))
    ours = measure_levels(data + background, "rows", scale="line", background=background)
    assert_levels_equal(ours.raw[:, 0], astropy_line_levels(data, "rows"))


@pytest.mark.parametrize("n_lines", [31, 100])  # (column lines: part of a block, several)
@pytest.mark.parametrize("axis", ["rows", "columns"])
def test_bands_and_parities_are_separate_groups(axis, n_lines, rng):
    length = 203  # not divisible by 4: unequal bands
    shape = (n_lines, length) if axis == "rows" else (length, n_lines)
    data = messy_lines(rng, shape)
    got = measure_levels(data, axis, scale="line", n_outputs=4, odd_even=True)
    edges = [b * length // 4 for b in range(5)]
    assert list(got.band_edges) == edges
    lines = data if axis == "rows" else data.T
    for b in range(4):
        for parity in range(2):
            positions = np.arange(edges[b], edges[b + 1])
            positions = positions[positions % 2 == parity]
            ref = astropy_line_levels(lines[:, positions], "rows")
            assert_levels_equal(got.raw[:, 2 * b + parity], ref)
    assert_levels_equal(got.line, astropy_line_levels(lines, "rows"))


@pytest.mark.parametrize("m", [511, 512, 513, 2046, 4000])
@pytest.mark.parametrize("order", ["random", "sorted", "ties", "zeros", "subsample_fooled"])
def test_the_row_sums_median_is_numpys_middle_value(m, order, rng):
    # The dispersion keeps the pairs whose sum is below the row's median sum:
    # selected among the sums between two quantiles of a subsample of them
    # (rows of 512 pairs and more), or among all when the subsample misleads
    # ("subsample_fooled": every sum it takes is the largest).
    from bgdnoise._kernels.dispersion import _ROW_SAMPLE, _median_sum

    sums = rng.normal(0.0, 3.0, m)
    if order == "sorted":
        sums.sort()
    elif order == "ties":
        sums = np.round(sums)
    elif order == "zeros":
        sums = rng.choice(np.array([-0.0, 0.0, 1.0, -1.0]), m)
    elif order == "subsample_fooled":
        size = _ROW_SAMPLE[0]
        sums[np.arange(size) * (m - 1) // (size - 1)] = 1e30
    expected = np.partition(sums, m >> 1)[m >> 1]
    for cap in (m, m + 1):
        assert _median_sum(sums.copy(), m, np.empty(cap), np.empty(cap)) == expected


def test_dispersion_kernel_matches_numpy_on_pure_noise(rng):
    sigma = 0.37
    data = rng.normal(10.0, sigma, (1, 512, 512))
    out = np.empty(1)
    _kernels.plane_dispersion(
        data, np.zeros((1, 0, 0), np.uint8), np.zeros((1, 0, 0)), True, 1, out
    )
    assert abs(out[0] / sigma - 1) < 0.02


def ref_plane_sigma(plane, usable, along_rows, step):
    """The dispersion kernel's algorithm in numpy: pairs two apart along the lines,
    those with a sum below their row's median sum, MAD then truncated std."""
    values = np.where(usable, plane.astype(np.float64), np.nan)
    kept = []
    ny = values.shape[0]
    for y in range(0, ny if along_rows else max(ny - 2, 0), step):
        if along_rows:
            a, b = values[y, :-2], values[y, 2:]
        else:
            a, b = values[y], values[y + 2]
        d, total = b - a, b + a
        ok = np.isfinite(d)
        d, total = d[ok], total[ok]
        if d.size:
            threshold = np.partition(total, d.size >> 1)[d.size >> 1]  # the upper median
            kept.append(d[total < threshold])
    d = np.concatenate(kept)
    sig = 1.482602218505602 * np.partition(np.abs(d), d.size >> 1)[d.size >> 1]
    for _ in range(20):
        inside = np.abs(d) <= 3.0 * sig
        new = np.sqrt(np.sum(d[inside] ** 2) / inside.sum()) / 0.9865766634773327
        done = abs(new - sig) <= 1e-7 * sig
        sig = new
        if done:
            break
    return sig / np.sqrt(2.0)


@pytest.mark.parametrize("along_rows", [True, False])
def test_dispersion_of_a_frame_and_of_a_cube_is_the_algorithms(along_rows, rng, monkeypatch):
    # A frame's sampled lines are shared by the threads, a cube's planes: the
    # same numbers either way, and those of the algorithm written in numpy.
    import numba

    from bgdnoise._kernels import dispersion

    sigma = np.array([0.37, 2.0, 11.0])
    data = rng.normal(10.0, 1.0, (3, 301, 257)) * sigma[:, None, None]
    data[:, 100:140, 60:90] += 50.0  # a source: only adds flux
    flags = np.zeros(data.shape, np.uint8)
    flags[:, rng.random(data.shape[1:]) < 0.05] = _kernels.EXCLUDE
    background = np.zeros((1, 0, 0))
    cube = np.empty(3)
    threads = numba.get_num_threads()
    # Planes in parallel (as many planes as threads or more) ...
    monkeypatch.setattr(dispersion.numba, "get_num_threads", lambda: 1)
    _kernels.plane_dispersion(data, flags, background, along_rows, 7, cube)
    # ... and each plane's lines in parallel (fewer planes than threads).
    monkeypatch.setattr(dispersion.numba, "get_num_threads", lambda: max(threads, 2))
    for p in range(3):
        frame = np.empty(1)
        one = (data[p : p + 1], flags[p : p + 1], background)
        _kernels.plane_dispersion(*one, along_rows, 7, frame)
        assert frame[0] == cube[p]
        usable = flags[p] == 0
        expected = ref_plane_sigma(data[p], usable, along_rows, 7)
        assert cube[p] == pytest.approx(expected, rel=1e-10)
    np.testing.assert_allclose(cube / sigma, 1.0, rtol=0.05)


def test_sampled_full_line_levels_only_feed_the_fallback(rng):
    # correct_array measures full-line levels on a sample of lines (and where a
    # band falls back); measure_levels on all. The fallback offsets agree.
    from bgdnoise import correct_array

    data = rng.normal(1.0, 0.1, (1024, 256))
    mask = np.zeros(data.shape, bool)
    mask[::3, :60] = True  # band 0 of every third line falls back
    measured = measure_levels(data, "rows", scale="line", n_outputs=4, mask=mask)
    assert np.isfinite(measured.line).all()
    _, model = correct_array(
        data, "rows", scale="line", n_outputs=4, mask=mask, return_model=True, keep_level=False,
        mask_sources=False, background_method=None,
    )  # fmt: skip
    fallback = measured.fallback[:, 0]
    assert fallback[::3].all() and not fallback[1::3].any()
    # Exact where the band keeps its own level.
    np.testing.assert_allclose(model[~fallback, 0], measured.levels[~fallback, 0], rtol=1e-6)
    # Fallback lines: full level (computed there) + an offset from sampled lines.
    diff = model[fallback, 0] - measured.levels[fallback, 0]
    assert np.ptp(diff) < 1e-6 and abs(diff[0]) < 0.01


@pytest.mark.parametrize("falls_back", ["none", "empty lines only", "lines with values"])
def test_sample_measured_only_when_a_band_falls_back_gives_the_same_levels(falls_back, rng):
    """``measure(few_fallbacks=True)`` (the plain path's): the same levels, bit for bit.

    The sample of full-line levels is measured afterwards, and only when a
    band of a line with values falls back (then it must be there, as when
    measured with the rest).
    """
    data = rng.normal(1.0, 0.1, (3, 400, 256))
    data += rng.normal(0.0, 0.05, (3, 400, 1))  # stripes
    dq = np.zeros(data.shape, np.uint32)
    if falls_back != "none":
        dq[:, 5:8] = 1  # DO_NOT_USE: lines without values
    if falls_back == "lines with values":
        dq[:, 20:40, :60] = 1  # band 0 of these lines falls back
    options = CorrectionOptions.from_kwargs(n_outputs=4)
    prepared = prepare(data, "rows", options, dq=dq)
    eager = stages.measure(prepared, options, sky=True)
    lazy = stages.measure(prepared, options, sky=True, few_fallbacks=True)
    sampled = np.isfinite(eager.full)
    np.testing.assert_array_equal(lazy.raw, eager.raw)
    np.testing.assert_array_equal(lazy.sky_means, eager.sky_means)
    if falls_back == "lines with values":
        np.testing.assert_array_equal(lazy.full, eager.full)  # the sample is there
    else:
        assert not np.isfinite(lazy.full).any() and sampled[:, ::8].all()
    np.testing.assert_array_equal(
        stages.resolve(prepared, lazy, options).levels,
        stages.resolve(prepared, eager, options).levels,
    )


@pytest.mark.filterwarnings("ignore:.*had no usable pixel:RuntimeWarning")
@pytest.mark.parametrize("axis", ["rows", "columns"])
@pytest.mark.parametrize("band_falls_back", [False, True])
@pytest.mark.parametrize(
    "options",
    [{}, {"odd_even": True}, {"mask_sources": False, "background_method": None}],
    ids=["defaults", "odd-even", "plain"],
)
def test_corrections_are_those_of_a_measure_with_its_sample(
    axis, band_falls_back, options, rng, monkeypatch
):
    """The final measure's sample of full-line levels, taken only when needed, changes no bit."""
    from bgdnoise import correct_array

    shape = (256, 512)
    data = rng.normal(5.0, 0.2, shape) + rng.normal(0.0, 0.1, (256, 1) if axis == "rows" else 512)
    yy, xx = np.mgrid[:256, :512]
    data += 20.0 * np.exp(-((yy - 100.0) ** 2 + (xx - 300.0) ** 2) / 200.0)
    dq = np.zeros(shape, np.uint32)
    dq[:4] = dq[:, :4] = 1  # lines without values
    if band_falls_back:
        dq[40:60, 130:250] = dq[130:250, 40:60] = 1  # one band of lines with values
    kwargs = {"n_outputs": 4, "dq": dq, **options}
    lazy = correct_array(data.astype(np.float32), axis, **kwargs)
    measure = stages.measure
    monkeypatch.setattr(
        stages, "measure", lambda *a, few_fallbacks=False, **k: measure(*a, **k)
    )  # every measure takes its sample
    eager = correct_array(data.astype(np.float32), axis, **kwargs)
    np.testing.assert_array_equal(lazy, eager)


def test_a_measure_without_its_sample_is_not_measured_again(rng):
    data = rng.normal(1.0, 0.1, (64, 256))
    options = CorrectionOptions.from_kwargs(n_outputs=4)
    prepared = prepare(data, "rows", options)
    lazy = stages.measure(prepared, options, few_fallbacks=True)
    assert not lazy.sampled
    with pytest.raises(ValueError, match="sample"):
        stages.measure(prepared, options, again=(lazy, np.arange(3)))


# --------------------------------------------------------------------------
# Extreme values: never out of bounds, never NaN for a line with pixels
# --------------------------------------------------------------------------
def test_bin_index_stays_in_range_for_any_value():
    nb = 16
    for v in (np.nan, np.inf, -np.inf, 1e308, -1e308, 5e-324, 0.0, 3.0):
        for lo, inv_w in ((0.0, 1.0), (-1e308, 1e-300), (0.0, np.inf), (np.inf, 0.0)):
            assert 0 <= _kernels._bin_of(v, lo, inv_w, nb) <= nb + 1, (v, lo, inv_w)


@pytest.mark.parametrize("with_sums", [True, False])
def test_histogram_fill_bins_every_value_as_bin_of(with_sums):
    # The fill computes the bins in a branch-free loop of its own: each value
    # must land in the bin _bin_of gives it (edges, outside the range,
    # infinities and NaN included), and the bins hold exactly the values.
    from bgdnoise._kernels.histogram import _fill_histogram

    rng = np.random.default_rng(5)
    nb, lo, inv_w = 16, -2.0, 4.0
    edges = lo + np.arange(-2, nb + 3) / inv_w
    vals = np.concatenate([
        rng.normal(0.0, 2.0, 200), edges, np.nextafter(edges, -np.inf),
        np.nextafter(edges, np.inf), [np.inf, -np.inf, np.nan, 1e308, -1e308, 0.0, -0.0],
    ])  # fmt: skip
    n = vals.size
    scratch = _kernels.binned_scratch(n)
    scratch = (scratch[0], scratch[1], *[np.empty(nb + 3, a.dtype) for a in scratch[2:6]],
               scratch[6])  # fmt: skip
    _fill_histogram(vals, n, (lo, inv_w, nb, 0.0), scratch, with_sums)
    srt, start = scratch[0], scratch[3]
    expected = np.array([_kernels._bin_of(v, lo, inv_w, nb) for v in vals])
    np.testing.assert_array_equal(np.bincount(expected, minlength=nb + 2), np.diff(start[: nb + 3]))
    for b in range(nb + 2):  # each bin's values, in their order along the line
        np.testing.assert_array_equal(srt[start[b] : start[b + 1]], vals[expected == b])


@pytest.mark.parametrize("scale", ["line", "global"])
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ([1e308, -1e308] * 64, 0.0),  # the histogram range overflows
        ([1.7976931348623157e308, -1.7976931348623157e308, 1.0] * 40, 1.0),
        ([1e308, 1e308, 1.5e308] * 30, 1e308),
        ([7.0] * 120 + [1e308, -1e308] * 4, 7.0),  # one value plus outliers
        ([7.0] * 100, 7.0),
        ([5e-324] * 50 + [1e-320] * 50, 0.5 * (5e-324 + 1e-320)),  # a zero std of denormals
        ([5e-324] + [-5e-324] * 99, -5e-324),  # a range whose bins would have zero width
    ],
    ids=[
        "pm1e308",
        "pm-max",
        "near-max",
        "constant-outliers",
        "constant",
        "denormals",
        "subnormal-range",
    ],
)
def test_extreme_float64_lines_give_their_level(line, expected, scale):
    data = np.array([line] * 4)
    for axis, values in (("rows", data), ("columns", data.T)):
        got = measure_levels(values, axis, scale=scale)
        np.testing.assert_array_equal(got.raw[:, 0], expected)
        assert np.isfinite(got.plane_level)


@pytest.mark.parametrize("exponent", [-1000, -600, 600, 1000])
@pytest.mark.parametrize("length", [40, 300])  # both algorithms
@pytest.mark.parametrize("scale", ["line", "global"])
def test_levels_scale_exactly_with_powers_of_two(exponent, length, scale, rng):
    # Huge values (their squares overflow float64) and tiny ones (their squares
    # underflow) are clipped exactly as if the exponent range were unbounded.
    data = messy_lines(rng, (20, length), outlier_fraction=0.1)
    ref = measure_levels(data, "rows", scale=scale)
    scaled = measure_levels(np.ldexp(data, exponent), "rows", scale=scale)
    np.testing.assert_array_equal(np.ldexp(scaled.raw, -exponent), ref.raw)
    np.testing.assert_array_equal(np.ldexp(scaled.scale, -exponent), ref.scale)


def test_far_outliers_in_short_lines_match_astropy(rng):
    # Clipping a 1e30 outlier leaves a sum of squares made of rounding
    # errors unless the moments are recomputed from what is left.
    data = rng.normal(5.0, 1.0, (40, 50))
    data[:, 7] = 1e30
    data[::3, 20] = -1e25
    ours = measure_levels(data, "rows", scale="line").raw[:, 0]
    assert_levels_equal(ours, astropy_line_levels(data, "rows"))


def test_huge_outliers_are_clipped_like_any_other(rng):
    # +-1e200 outliers: their squares overflow float64 (astropy's std is inf,
    # so it clips nothing); the level is that of the line without them.
    data = rng.normal(5.0, 1.0, (30, 500))
    data[:, 7] = 1e200
    data[:, 9] = -1e200
    clean = data.copy()
    clean[:, [7, 9]] = np.nan
    ours = measure_levels(data, "rows", scale="line").raw[:, 0]
    assert_levels_equal(ours, astropy_line_levels(clean, "rows"))


def test_algorithms_agree_on_extreme_lines(rng):
    n = 200
    scratch = _kernels.binned_scratch(n)
    big = np.finfo(np.float64).max
    specials = np.array([big, -big, 1e300, -1e300, 1e200, 5e-324, -5e-324, 2.2e-308, 0.0])
    for trial in range(100):
        vals = rng.normal(5.0, 1.0, n) * rng.choice([1.0, 1e-310, 1e300, 1e-200])
        pick = rng.random(n) < rng.choice([0.01, 0.2, 0.6])
        vals[pick] = rng.choice(specials, pick.sum())
        vals = vals[np.isfinite(vals)]
        m = vals.size
        for fixed in (-1.0, 1.3):
            clip = (2.5, 3.0, fixed, 10)
            a = _kernels._clipped_median(vals.copy(), m, clip)
            b = _kernels._binned_clipped_median(vals.copy(), m, clip, scratch)
            assert np.isfinite(a) and a == b, (trial, fixed, a, b)


# --------------------------------------------------------------------------
# subtract_levels: each pixel minus its group's level, exactly
# --------------------------------------------------------------------------
@pytest.mark.parametrize("along_rows", [True, False])
@pytest.mark.parametrize("odd_even", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize("with_flags", [False, True])
def test_subtract_levels_matches_a_loop(along_rows, odd_even, dtype, in_place, with_flags, rng):
    from bgdnoise._kernels.model import subtract_levels

    n_planes, ny, nx = 2, 9, 23
    n_lines, length = (ny, nx) if along_rows else (nx, ny)
    # Bands starting at odd and even positions, one of them a single pixel.
    band_edges = np.array([0, 3, 4, 11, length], dtype=np.int64)
    n_groups = (band_edges.size - 1) * (2 if odd_even else 1)
    data = rng.normal(0.0, 1.0, (n_planes, ny, nx)).astype(dtype)
    line_model = rng.normal(0.0, 1.0, (n_planes, n_lines, n_groups))
    flags = np.zeros((1, 0, 0), np.uint8)
    if with_flags:
        flags = np.where(rng.random((1, ny, nx)) < 0.2, _kernels.PRESERVE, 0).astype(np.uint8)
    expected = np.empty_like(data)
    expected_model = np.empty_like(data)
    for p in range(n_planes):
        for y in range(ny):
            for x in range(nx):
                line, pos = (y, x) if along_rows else (x, y)
                band = np.searchsorted(band_edges, pos, side="right") - 1
                group = band * 2 + pos % 2 if odd_even else band
                level = line_model[p, line, group]
                if with_flags and flags[0, y, x] & _kernels.PRESERVE:
                    level = 0.0
                expected[p, y, x] = np.float64(data[p, y, x]) - level
                expected_model[p, y, x] = level
    out = data if in_place else np.empty_like(data)
    model = np.empty_like(data)
    usable = np.full(data.shape, 7, np.uint8)
    data[0, 1, 2] = np.nan  # (a value without a result)
    expected[0, 1, 2] = np.nan
    subtract_levels(data, flags, along_rows, band_edges, odd_even, line_model, out, model, True,
                    usable)  # fmt: skip
    # The usable map: a finite result not flagged EXCLUDE (none is here), 0 in out where not.
    np.testing.assert_array_equal(usable, np.isfinite(expected).astype(np.uint8))
    np.testing.assert_array_equal(out, np.where(np.isfinite(expected), expected, 0.0))
    np.testing.assert_array_equal(model, expected_model)
