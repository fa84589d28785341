"""correct_array on injected stripes, dtypes, fallbacks, errors."""

import subprocess
import sys
import warnings

import numba
import numpy as np
import pytest
from testdata import PLAIN

from bgdnoise import REFERENCE_PIXEL, _kernels, correct_array, measure_levels
from bgdnoise.simulate import make_frame, stripe_residual_rms


@pytest.fixture(scope="module")
def crowded_rows():
    # 30% of the pixels in sources (flux above 0.1 sigma), stripes along rows.
    return make_frame((1024, 1024), "rows", source_fraction=0.3, seed=11)


@pytest.fixture(scope="module")
def crowded_columns():
    return make_frame((1024, 1024), "columns", source_fraction=0.3, seed=12)


def _bound(frame, mask, axis):
    n_usable = (~mask).sum(axis=1 if axis == "rows" else 0)
    return 1.5 * frame.sigma / np.sqrt(n_usable.mean())


@pytest.mark.parametrize("scale", ["global", "line"])
@pytest.mark.parametrize("which", ["crowded_rows", "crowded_columns"])
def test_injected_stripes_removed_with_source_mask(which, scale, request):
    frame = request.getfixturevalue(which)
    corrected, model = correct_array(
        frame.data, frame.axis, mask=frame.source_mask, scale=scale, return_model=True
    )
    residual = stripe_residual_rms(model, frame.stripes)
    assert residual <= _bound(frame, frame.source_mask, frame.axis)
    # The correction is what was subtracted.
    np.testing.assert_allclose(frame.data - model, corrected, atol=1e-6)


def test_clipping_alone_handles_unmasked_sources(crowded_rows):
    frame = crowded_rows
    _, clipped = correct_array(frame.data, "rows", return_model=True, **PLAIN)
    _, plain = correct_array(frame.data, "rows", maxiters=0, return_model=True, **PLAIN)
    _, default = correct_array(frame.data, "rows", return_model=True)
    res_clipped = stripe_residual_rms(clipped, frame.stripes)
    res_plain = stripe_residual_rms(plain, frame.stripes)
    assert res_clipped < 0.8 * res_plain
    # The defaults (sources found, background fitted) do better still.
    assert stripe_residual_rms(default, frame.stripes) < 0.9 * res_clipped
    # No source mask: faint wings below the clip bias each line a little.
    assert res_clipped <= 2.0 * _bound(frame, frame.source_mask, "rows")
    # And it removes almost all of the injected stripe power.
    assert res_clipped < 0.05 * frame.stripes.std()


@pytest.mark.parametrize("axis", ["rows", "columns"])
def test_global_dispersion_within_5_percent(axis):
    frame = make_frame((1024, 1024), axis, source_fraction=0.3, seed=5, sigma=0.02)
    measured = measure_levels(frame.data, axis)
    assert measured.scale / frame.sigma == pytest.approx(1.0, abs=0.05)


def test_sky_pedestal_is_kept(crowded_rows):
    frame = crowded_rows
    corrected = correct_array(frame.data, "rows", mask=frame.source_mask)
    sky_pixels = ~frame.source_mask
    assert np.median(corrected[sky_pixels]) == pytest.approx(frame.sky, abs=3 * frame.sigma)
    removed = correct_array(frame.data, "rows", mask=frame.source_mask, keep_level=False)
    assert np.median(removed[sky_pixels]) == pytest.approx(0.0, abs=3 * frame.sigma)


@pytest.mark.parametrize("axis", ["rows", "columns"])
def test_per_output_and_odd_even_offsets_removed(axis):
    frame = make_frame(
        (512, 512),
        axis,
        n_outputs=4,
        output_offset_rms=0.05,
        output_line_rms=0.01,
        odd_even_rms=0.02,
        source_fraction=0.1,
        seed=3,
    )
    # The true source mask, on the plain path: the groups themselves are tested.
    _, single = correct_array(frame.data, axis, mask=frame.source_mask, return_model=True, **PLAIN)
    _, full = correct_array(
        frame.data, axis, mask=frame.source_mask, n_outputs=4, odd_even=True,
        return_model=True, **PLAIN,
    )  # fmt: skip
    res_single = stripe_residual_rms(single, frame.stripes)
    res_full = stripe_residual_rms(full, frame.stripes)
    # Groups of 64 pixels: 1.5 sigma / sqrt(usable pixels per group).
    bound = 1.5 * frame.sigma / np.sqrt(0.9 * 512 / 8)
    assert res_full <= bound
    assert res_single > 5 * bound


def test_mostly_masked_band_falls_back_to_line_level():
    frame = make_frame(
        (400, 512), "rows", n_outputs=4, output_offset_rms=0.05, source_fraction=0.0, seed=4
    )
    mask = np.zeros(frame.data.shape, bool)
    rng = np.random.default_rng(0)
    mask[:, 128:256] = rng.random((400, 128)) < 0.9  # band 1: 90% masked
    measured = measure_levels(frame.data, "rows", mask=mask, n_outputs=4)
    assert measured.fallback[:, 1].all()
    assert not measured.fallback[:, [0, 2, 3]].any()
    _, model = correct_array(frame.data, "rows", mask=mask, n_outputs=4, return_model=True)
    # The band's own offset is restored from the plane, the line level does the rest:
    # the band's residual is close to the full-line noise, not the output offset.
    band = np.zeros(frame.data.shape, bool)
    band[:, 128:256] = True
    res_band = stripe_residual_rms(model, frame.stripes, where=band)
    assert res_band <= 1.5 * frame.sigma / np.sqrt(0.2 * 512)
    # Without the fallback (min_fraction=0) the plain path uses the band's ~13 pixels.
    _, noisy = correct_array(
        frame.data, "rows", mask=mask, n_outputs=4, min_fraction=0.0, return_model=True, **PLAIN
    )
    assert stripe_residual_rms(noisy, frame.stripes, where=band) > 1.5 * res_band
    # The defaults' common mode stage weighs those pixels against the other outputs'.
    _, shared = correct_array(
        frame.data, "rows", mask=mask, n_outputs=4, min_fraction=0.0, return_model=True
    )
    assert stripe_residual_rms(shared, frame.stripes, where=band) <= 1.5 * res_band


def test_dtypes_and_byte_order(rng):
    base = rng.normal(1.0, 0.1, (16, 64))
    for dtype, expected in [
        (np.float32, np.float32),
        (np.float64, np.float64),
        (">f4", np.float32),
        (">f8", np.float64),
        (np.int16, np.float32),
        (np.uint16, np.float32),
        (">i4", np.float32),
    ]:
        data = (base * 100).astype(dtype)
        out = correct_array(data, "rows")
        assert out.dtype == np.dtype(expected)
        assert out.dtype.isnative
        native = correct_array(np.asarray(data, dtype=np.dtype(expected)), "rows")
        np.testing.assert_array_equal(out, native)
    for bad in (np.complex64, np.float16, bool, object):
        with pytest.raises(TypeError, match="dtype"):
            correct_array(np.ones((4, 4), dtype=bad), "rows")


def test_input_unchanged_and_out(rng):
    data = rng.normal(1.0, 0.1, (3, 32, 64)).astype(np.float32)
    copy = data.copy()
    result = correct_array(data, "rows")
    np.testing.assert_array_equal(data, copy)
    out = np.empty_like(data)
    returned = correct_array(data, "rows", out=out)
    assert returned is out
    np.testing.assert_array_equal(out, result)
    in_place = data.copy()
    correct_array(in_place, "rows", out=in_place)
    np.testing.assert_array_equal(in_place, result)
    strided = np.empty((3, 32, 128), np.float32)[:, :, ::2]
    correct_array(data, "rows", out=strided)
    np.testing.assert_array_equal(strided, result)
    with pytest.raises(TypeError, match="float32"):
        correct_array(data, "rows", out=np.empty(data.shape, np.float64))
    with pytest.raises(ValueError, match="shape"):
        correct_array(data, "rows", out=np.empty((3, 32, 63), np.float32))


def test_masked_pixels_corrected_nan_stays_nan_reference_pixels_untouched(rng):
    data = rng.normal(1.0, 0.1, (32, 64)).astype(np.float32)
    data[:, 10] += 0.5  # masked but still corrected
    data[5, 5] = np.nan
    mask = np.zeros(data.shape, bool)
    mask[:, 10] = True
    dq = np.zeros(data.shape, np.uint32)
    dq[:, :4] = REFERENCE_PIXEL | 1
    corrected, model = correct_array(data, "rows", mask=mask, dq=dq, return_model=True)
    assert np.isnan(corrected[5, 5])
    np.testing.assert_array_equal(corrected[:, :4], data[:, :4])
    assert (model[:, :4] == 0).all()
    np.testing.assert_allclose(corrected[:, 10], data[:, 10] - model[:, 10], rtol=1e-6)
    assert np.any(model[:, 10] != 0)


def test_empty_lines_fall_back_to_reference_pixels():
    frame = make_frame((64, 128), "rows", source_fraction=0.0, reference_border=4, seed=8)
    dq = np.zeros(frame.data.shape, np.uint32)
    border = np.zeros(frame.data.shape, bool)
    border[:4], border[-4:], border[:, :4], border[:, -4:] = True, True, True, True
    dq[border] = REFERENCE_PIXEL | 1
    data = frame.data.copy()
    data[20:30, 4:-4] = np.nan  # ten lines lose every science pixel
    with pytest.warns(RuntimeWarning, match=r"10 line\(s\) had no usable pixel: 10 corrected"):
        _, model = correct_array(data, "rows", dq=dq, return_model=True)
    truth = frame.stripes[20:30, 64] - np.median(frame.stripes[4:-4, 64])
    got = model[20:30, 64]
    # 8 reference pixels per line: noise sigma * 1.25 / sqrt(8) per line.
    assert np.sqrt(np.mean((got - truth) ** 2)) < frame.sigma  # stripes: 2 sigma rms
    data[20:30, :] = np.nan  # without DQ the border is usable: blank whole lines
    with pytest.warns(RuntimeWarning, match=r"0 corrected from their reference pixels, 10 left"):
        _, model = correct_array(data, "rows", return_model=True)
    assert (model[20:30] == 0).all()


def test_all_masked_returns_data_unchanged():
    data = np.zeros((8, 8), np.float32)
    data[0, 0] = np.nan
    with pytest.warns(RuntimeWarning, match="no usable pixel"):
        out = correct_array(data, "rows")
    np.testing.assert_array_equal(out, data)


def test_thread_counts_give_identical_results():
    frame = make_frame((2, 256, 512), "columns", n_outputs=4, source_fraction=0.2, seed=9)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = correct_array(frame.data, "columns", n_outputs=4, odd_even=True)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = correct_array(frame.data, "columns", n_outputs=4, odd_even=True)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("parts_per_thread", [1, 3])
def test_how_the_items_are_cut_into_parts_changes_nothing(monkeypatch, parts_per_thread):
    # Each thread claims parts of every kernel's items; a part is computed the
    # same way whoever takes it and wherever it starts. The defaults (scene
    # stages included) and a cube, against the default cut (8 parts a thread).
    frame = make_frame((2, 128, 512), "rows", n_outputs=4, source_fraction=0.2, seed=11)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        expected = correct_array(frame.data, "rows", n_outputs=4)
        monkeypatch.setattr(_kernels.threads, "PARTS_PER_THREAD", parts_per_thread)
        got = correct_array(frame.data, "rows", n_outputs=4)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(got, expected)


def test_planes_are_independent_on_the_plain_path(rng):
    # (With the defaults the planes share one scene: see test_scene.py.)
    frames = make_frame((3, 2, 64, 96), "rows", source_fraction=0.1, seed=10)
    stacked = correct_array(frames.data, "rows", **PLAIN)
    for i in range(3):
        for j in range(2):
            one = correct_array(frames.data[i, j], "rows", **PLAIN)
            np.testing.assert_array_equal(stacked[i, j], one)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(axis="diagonal"), ValueError, "axis must be 'rows'"),
        (dict(scale="local"), ValueError, "scale must be"),
        (dict(sigma=0), ValueError, "sigma must be a positive"),
        (dict(sigma=-1.0), ValueError, "sigma must be"),
        (dict(sigma_upper=float("nan")), ValueError, "sigma_upper"),
        (dict(sigma="3"), TypeError, "sigma must be"),
        (dict(maxiters=-1), ValueError, "maxiters must be >= 0"),
        (dict(maxiters=2.5), TypeError, "maxiters"),
        (dict(n_outputs=0), ValueError, "n_outputs must be .auto. or a positive integer"),
        (dict(n_outputs=65), ValueError, "larger than the line length"),
        (dict(n_outputs=4.0), TypeError, "n_outputs"),
        (dict(min_fraction=1.5), ValueError, "min_fraction"),
        (dict(mask=np.zeros((3, 3), bool)), ValueError, "mask has shape"),
        (dict(dq=np.zeros((16, 64), np.float32)), TypeError, "dq has dtype"),
        (dict(background=np.zeros((2, 64))), ValueError, "background has shape"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    data = np.ones((16, 64), np.float32)
    axis = kwargs.pop("axis", "rows")
    with pytest.raises(error, match=match):
        correct_array(data, axis, **kwargs)


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4, 5, 6), (0, 5), (4, 0)])
def test_bad_shapes(shape):
    with pytest.raises(ValueError, match="data has"):
        correct_array(np.ones(shape, np.float32), "rows")


def test_import_is_light():
    # No jwst, no compilation at import time.
    code = (
        "import sys, bgdnoise, bgdnoise._kernels as k\n"
        "assert 'jwst' not in sys.modules and 'stdatamodels' not in sys.modules\n"
        "from bgdnoise._kernels import lines, model\n"
        "assert not lines._line_levels_range.signatures\n"
        "assert not model._subtract_levels_range.signatures\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_warning_on_clean_data(rng):
    data = rng.normal(1.0, 0.1, (16, 64)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        correct_array(data, "rows", n_outputs=4, odd_even=True)


# --------------------------------------------------------------------------
# Extreme values, masked arrays, overlapping out, DQ flag range
# --------------------------------------------------------------------------
def test_float64_extreme_lines_are_corrected():
    # Line levels 0 (the histogram range and the moments overflow float64).
    data = np.array([[1e308, -1e308] * 64] * 8)
    for scale in ("line", "global"):
        np.testing.assert_array_equal(correct_array(data, "rows", scale=scale), data)
    # Four lines at 1e308 and 1.7e308: the plane level (the median of the
    # line levels) is 1.35e308, not the overflowed mean of the middle two.
    lines = np.array([1e308, 1e308, 1.7e308, 1.7e308])[:, None] * np.ones((1, 64))
    assert measure_levels(lines, "rows").plane_level == 1.35e308
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        corrected = correct_array(lines, "rows")
    np.testing.assert_array_equal(corrected, 1.35e308)


def _float32_overflowing_plane():
    # Lines at -3.4e38 and +3.4e38, one line mostly near +3e38 with a pixel at
    # -3.4e38: that pixel minus its line's level is beyond float32.
    data = np.full((8, 128), 3.4e38, np.float32)
    data[:, ::2] = -3.4e38
    data[0, 1::2] = 3.0e38
    data[0, 2:-2:2] = 3.1e38
    return data


def test_float32_output_overflow_is_a_value_error():
    data = _float32_overflowing_plane()
    before = data.copy()
    with pytest.raises(ValueError, match=r"float32 output overflows.*pass float64 data"):
        correct_array(data, "rows")
    with pytest.raises(ValueError, match="float32 output overflows"):
        correct_array(data, "rows", out=data)  # in place: nothing written either
    np.testing.assert_array_equal(data, before)
    # The same values as float64: finite, exactly data minus the model.
    wide = data.astype(np.float64)
    corrected = correct_array(wide, "rows")
    levels = measure_levels(wide, "rows")
    assert np.isfinite(corrected).all()
    np.testing.assert_array_equal(corrected, wide - (levels.line - levels.plane_level)[:, None])


def test_float32_values_near_the_maximum_in_ordinary_lines_stay_finite(rng):
    data = rng.normal(1.0, 0.1, (32, 128)).astype(np.float32)
    big = np.finfo(np.float32).max
    data[::3, 5] = big
    data[1::3, 9] = -big
    corrected = correct_array(data, "rows", scale="line")
    assert np.isfinite(corrected).all()
    np.testing.assert_array_equal(corrected[::3, 5], big)


def test_float64_levels_that_overflow_are_a_value_error():
    # Level minus plane level is 3e308 for the lines at +1.5e308.
    data = np.full((8, 64), -1.5e308)
    data[:3] = 1.5e308
    with pytest.raises(ValueError, match="float64 line levels overflow"):
        correct_array(data, "rows")
    np.testing.assert_array_equal(correct_array(data, "rows", keep_level=False), 0.0)


def test_returned_model_beyond_float32_is_a_value_error():
    data = np.ones((8, 64))
    data[:4] = 1e100
    with pytest.raises(ValueError, match="float32 stripe model overflows"):
        correct_array(data, "rows", return_model=True)
    corrected = correct_array(data, "rows")  # the plane level: (1e100 + 1) / 2
    np.testing.assert_array_equal(corrected, 0.5 * (1e100 + 1.0))


def test_masked_array_mask_is_honoured(rng):
    # Mask semantics on the plain path (a source search would add its own).
    data = rng.normal(1.0, 0.1, (2, 32, 64)) + rng.normal(0.0, 0.5, (2, 32, 1))
    bad = rng.random(data.shape) < 0.2
    bad[:, :10] |= rng.random((2, 10, 64)) < 0.7  # most of these lines
    data[bad] = 1e4
    masked = np.ma.masked_array(data, mask=bad)
    expected = correct_array(data, "rows", mask=bad, **PLAIN)
    got = correct_array(masked, "rows", **PLAIN)
    assert type(got) is np.ndarray
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(measure_levels(masked, "rows").counts[..., 0], (~bad).sum(-1))
    # Together with mask=: both masks count.
    extra = np.zeros(data.shape[-2:], bool)
    extra[:, :7] = True
    np.testing.assert_array_equal(
        correct_array(masked, "rows", mask=extra, **PLAIN),
        correct_array(data, "rows", mask=bad | extra, **PLAIN),
    )
    # In place into the masked array's own data.
    work = masked.copy()
    correct_array(work, "rows", out=work.data, **PLAIN)
    np.testing.assert_array_equal(work.data, expected)
    # No mask (nomask) is no mask.
    np.testing.assert_array_equal(
        correct_array(np.ma.masked_array(data), "rows"), correct_array(data, "rows")
    )


def test_out_overlapping_data_is_refused(rng):
    buf = rng.normal(1.0, 0.1, (65, 64)).astype(np.float32)
    data = buf[:64]
    before = data.copy()
    expected = correct_array(data, "rows")
    for out in (buf[1:], data[::-1], data.T, data[:, ::-1]):
        with pytest.raises(ValueError, match="out overlaps data"):
            correct_array(data, "rows", out=out)
    np.testing.assert_array_equal(data, before)
    # The same array (or another view with the same layout) is in place.
    same = data[...]
    assert correct_array(data, "rows", out=same) is same
    np.testing.assert_array_equal(data, expected)
    # Interleaved views of one buffer share no element: allowed.
    pair = np.empty((64, 128), np.float32)
    pair[:, ::2] = before
    correct_array(pair[:, ::2], "rows", out=pair[:, 1::2])
    np.testing.assert_array_equal(pair[:, 1::2], expected)
    np.testing.assert_array_equal(pair[:, ::2], before)


@pytest.mark.parametrize("dq_flags", [2**70, 2**32, -1, np.uint64(2**63)])
@pytest.mark.parametrize("with_dq", [True, False])
def test_dq_flags_outside_uint32_is_a_value_error(dq_flags, with_dq):
    data = np.ones((16, 64), np.float32)
    dq = np.zeros(data.shape, np.uint32) if with_dq else None
    with pytest.raises(ValueError, match=r"dq_flags must be .* uint32"):
        correct_array(data, "rows", dq=dq, dq_flags=dq_flags)
    with pytest.raises(ValueError, match="dq_flags"):
        measure_levels(data, "rows", dq=dq, dq_flags=dq_flags)
    correct_array(data, "rows", dq=dq, dq_flags=2**32 - 1)


@pytest.mark.parametrize("axis", ["rows", "columns"])
@pytest.mark.parametrize("flag_planes", [1, 3])
def test_empty_lines_leave_out_lines_made_only_of_reference_pixels(axis, flag_planes):
    # Lines without a level are empty unless every pixel of theirs is a
    # preserved (reference) pixel, for each plane's own flags or the shared ones.
    from dataclasses import replace

    from bgdnoise import _kernels, stages
    from bgdnoise._prepare import prepare
    from bgdnoise.options import CorrectionOptions

    rng = np.random.default_rng(3)
    data = rng.normal(size=(3, 40, 48)).astype(np.float32)
    prepared = prepare(data, axis, CorrectionOptions())
    n_lines = 40 if axis == "rows" else 48
    flags = np.zeros((flag_planes, 40, 48), np.uint8)
    reference_lines = [0, 1, n_lines - 1, 17]
    for line in reference_lines:
        if axis == "rows":
            flags[:, line, :] = _kernels.PRESERVE
        else:
            flags[:, :, line] = _kernels.PRESERVE
    if flag_planes == 3:
        flags[1, :, :] = 0  # plane 1 has no reference lines of its own
    prepared = replace(prepared, flags=flags)
    levels = rng.normal(size=(3, n_lines, 2))
    levels[:, [0, 1, 5, 17, n_lines - 1], 0] = np.nan
    empty = stages._empty_lines(prepared, levels)
    for p in range(3):
        own = flags[p if flag_planes == 3 else 0]
        preserved = (own & _kernels.PRESERVE) != 0
        all_ref = preserved.all(axis=1 if axis == "rows" else 0)
        expected = ~np.isfinite(levels[p]).all(axis=1) & ~all_ref
        np.testing.assert_array_equal(empty[p], expected)
