"""Property tests: any shape, any mix of NaN/inf/masks: no crash, right output."""

import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bgdnoise import correct_array

shapes = st.one_of(
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=300),
    st.tuples(st.integers(1, 8), st.integers(1, 64), st.integers(1, 300)),
)
values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from([0.0, 1.0, -1.0, 1e30, -1e30]),
)


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


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_any_input_gives_right_shape_dtype_and_keeps_nans(case):
    data, mask, axis, n_outputs, odd_even, scale = case
    before = data.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # empty lines are expected here
        out, model = correct_array(
            data,
            axis,
            mask=mask,
            n_outputs=n_outputs,
            odd_even=odd_even,
            scale=scale,
            return_model=True,
        )
    assert out.shape == data.shape and model.shape == data.shape
    assert out.dtype == np.dtype(
        data.dtype.type if data.dtype.isnative else data.dtype.newbyteorder("=")
    )
    assert model.dtype == np.float32
    np.testing.assert_array_equal(data, before)  # input untouched
    assert np.isnan(out[np.isnan(data)]).all()
    assert np.isfinite(model).all()
