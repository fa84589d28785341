"""Property tests: any shape, dtype, value (NaN, inf, denormals, +-max), mask.

Whatever the input, ``correct_array`` and ``measure_levels`` either work --
right shape and dtype, finite output where the input was finite, NaN kept,
input untouched -- or raise a ValueError that names an overflow; nothing else.
"""

import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bgdnoise import REFERENCE_PIXEL, correct_array, measure_levels

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])

shapes = st.one_of(
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=300),
    st.tuples(st.integers(1, 8), st.integers(1, 64), st.integers(1, 300)),
)
values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from([0.0, 1.0, -1.0, 1e30, -1e30]),
)
DTYPES = [np.float32, np.float64, ">f4", ">f8"]


def _extremes(dtype):
    info = np.finfo(dtype)
    tiny = float(info.smallest_subnormal)
    return [
        float(info.max),
        -float(info.max),
        float(info.max) / 3,
        float(info.tiny),
        tiny,
        -tiny,
        3 * tiny,
        0.0,
        1.0,
        np.inf,
        -np.inf,
        np.nan,
    ]


def _native(dtype):
    dtype = np.dtype(dtype)
    return dtype if dtype.isnative else dtype.newbyteorder("=")


def _run(function, data, axis, **kwargs):
    """Call, allowing only an overflow ValueError; check the input is kept."""
    before = data.copy()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. no numpy overflow warnings
            # Lines or planes without a usable pixel are expected here.
            warnings.filterwarnings("ignore", "(.*)usable pixel", RuntimeWarning)
            result = function(data, axis, **kwargs)
    except ValueError as error:
        assert "overflow" in str(error), error
        result = None
    np.testing.assert_array_equal(np.ma.getdata(data), np.ma.getdata(before))
    np.testing.assert_array_equal(np.ma.getmaskarray(data), np.ma.getmaskarray(before))
    return result


def _check_correction(data, out, model):
    values = np.ma.getdata(data)
    assert out.shape == data.shape and model.shape == data.shape
    assert out.dtype == _native(values.dtype)
    assert model.dtype == np.float32
    finite = np.isfinite(values)
    assert np.isfinite(out[finite]).all()
    assert np.isnan(out[np.isnan(values)]).all()
    assert np.isfinite(model).all()
    assert (out[np.isinf(values)] == values[np.isinf(values)]).all()


@st.composite
def cases(draw):
    shape = draw(shapes)
    dtype = draw(st.sampled_from([np.float32, np.float64, ">f4"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    data = rng.normal(draw(st.floats(-1e3, 1e3)), draw(st.floats(1e-3, 1e2)), shape)
    special = rng.random(shape) < draw(st.floats(0, 1))
    fill = draw(st.lists(values, min_size=1, max_size=5))
    data[special] = rng.choice(np.array(fill, dtype=np.float64), special.sum())
    mask = rng.random(shape[-2:]) < draw(st.floats(0, 1)) if draw(st.booleans()) else None
    length_axis = draw(st.sampled_from(["rows", "columns"]))
    length = shape[-1] if length_axis == "rows" else shape[-2]
    n_outputs = draw(st.integers(1, min(4, length)))
    return (
        data.astype(dtype),
        mask,
        length_axis,
        n_outputs,
        draw(st.booleans()),
        draw(st.sampled_from(["global", "line"])),
    )


@settings(max_examples=150, **SETTINGS)
@given(cases())
def test_any_input_gives_right_shape_dtype_and_keeps_nans(case):
    data, mask, axis, n_outputs, odd_even, scale = case
    kwargs = dict(mask=mask, n_outputs=n_outputs, odd_even=odd_even, scale=scale)
    result = _run(correct_array, data, axis, return_model=True, **kwargs)
    if result is not None:
        _check_correction(data, *result)


@st.composite
def extreme_cases(draw):
    """Small arrays of any float values, masks, DQ, masked arrays, options."""
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(
        st.one_of(
            st.tuples(st.integers(1, 8), st.integers(1, 70)),
            st.tuples(st.integers(1, 3), st.integers(1, 8), st.integers(1, 70)),
        )
    )
    width = 32 if np.dtype(dtype).itemsize == 4 else 64
    element = st.one_of(
        st.floats(width=width, allow_subnormal=True),
        st.sampled_from(_extremes(_native(dtype))),
    )
    if draw(st.booleans()):  # every element drawn by hypothesis
        data = draw(hnp.arrays(_native(dtype), shape, elements=element))
    else:  # ordinary noise with extreme values sprinkled in (lines keep a level)
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        info = np.finfo(_native(dtype))
        level = draw(
            st.sampled_from(
                [1.0, -5.0, 1e30, 8 * float(info.tiny), float(info.max) / 4]
                + [1000 * float(info.smallest_subnormal)]
            )
        )
        data = (level * (1 + 0.1 * rng.standard_normal(shape))).astype(_native(dtype))
        n_special = draw(st.integers(1, max(1, data.size // 3)))
        where = draw(
            st.lists(st.integers(0, data.size - 1), min_size=1, max_size=n_special, unique=True)
        )
        special = draw(st.lists(element, min_size=len(where), max_size=len(where)))
        data.reshape(-1)[where] = special
    data = data.astype(dtype)
    axis = draw(st.sampled_from(["rows", "columns"]))
    length = shape[-1] if axis == "rows" else shape[-2]
    plane_or_all = st.sampled_from([shape[-2:], shape])
    kwargs = dict(
        n_outputs=draw(st.integers(1, min(4, length))),
        odd_even=draw(st.booleans()),
        scale=draw(st.sampled_from(["global", "line"])),
        maxiters=draw(st.sampled_from([0, 1, 10, None])),
    )
    if draw(st.booleans()):
        kwargs["mask"] = draw(hnp.arrays(bool, draw(plane_or_all)))
    if draw(st.booleans()):
        bits = st.sampled_from([0, 0, 0, 1, 4, 512, REFERENCE_PIXEL, REFERENCE_PIXEL | 1])
        kwargs["dq"] = draw(hnp.arrays(np.uint32, draw(plane_or_all), elements=bits))
    if draw(st.booleans()):
        data = np.ma.masked_array(data, mask=draw(hnp.arrays(bool, shape)))
    return data, axis, kwargs


@settings(max_examples=150, **SETTINGS)
@given(extreme_cases(), st.booleans(), st.booleans())
def test_extreme_values_give_finite_output_or_overflow_error(case, keep_level, in_place):
    data, axis, kwargs = case
    kwargs["keep_level"] = keep_level
    result = _run(correct_array, data, axis, return_model=True, **kwargs)
    if result is None:
        return
    _check_correction(data, *result)
    values = np.ma.getdata(data)
    if in_place and values.dtype.isnative:
        # The exact array as out: same result, written over the data.
        work = data.copy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            returned = correct_array(work, axis, out=np.ma.getdata(work), **kwargs)
        np.testing.assert_array_equal(returned, result[0])
        np.testing.assert_array_equal(np.ma.getdata(work), result[0])


@settings(max_examples=100, **SETTINGS)
@given(extreme_cases())
def test_extreme_values_give_a_finite_level_for_every_line_with_pixels(case):
    data, axis, kwargs = case
    measured = _run(measure_levels, data, axis, **kwargs)
    assert measured is not None  # measuring never overflows
    # A group is NaN exactly when it has no usable pixel; levels stay within
    # the usable values' range, so they are finite.
    np.testing.assert_array_equal(np.isfinite(measured.raw), measured.counts > 0)
    has_pixels = measured.counts.sum(axis=-1) > 0
    assert np.isfinite(measured.levels[has_pixels]).all()
    assert np.isfinite(measured.plane_level[has_pixels.any(axis=-1)]).all()
    assert np.isfinite(measured.line[measured.counts.sum(axis=-1) > 0]).all()
