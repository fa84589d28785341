"""NaN statistics without warnings: numpy's values, NaN for empty slices, silence."""

import warnings

import numpy as np
import pytest

from bgdnoise import _nanstats


def numpy_reference(name, values, axis):
    with warnings.catch_warnings():  # numpy warns on all-NaN slices; this test is one thread
        warnings.simplefilter("ignore", RuntimeWarning)
        return getattr(np, name)(values, axis=axis)


@pytest.mark.parametrize("name", ["nanmedian", "nanmean"])
@pytest.mark.parametrize("axis", [None, 0, 1, 2])
@pytest.mark.parametrize("nan_fraction", [0.0, 0.5, 0.95, 1.0])
def test_same_values_as_numpy_and_no_warning(name, axis, nan_fraction, rng):
    # pytest turns warnings into errors here (pyproject.toml): a warning fails.
    values = rng.normal(size=(4, 7, 9))
    values[rng.random(values.shape) < nan_fraction] = np.nan
    values[1, :, 2] = np.nan  # an all-NaN slice along axis 1
    ours = getattr(_nanstats, name)(values, axis=axis)
    reference = numpy_reference(name, values, axis)
    np.testing.assert_array_equal(ours, reference)  # NaN where numpy gives NaN
    assert np.shape(ours) == np.shape(reference)


def test_infinities_are_values_not_gaps():
    values = np.array([[np.inf, 1.0, np.nan], [np.nan, np.nan, np.nan]])
    np.testing.assert_array_equal(_nanstats.nanmedian(values, axis=1), [np.inf, np.nan])
    np.testing.assert_array_equal(_nanstats.nanmean(values, axis=1), [np.inf, np.nan])


def test_extreme_values_overflow_to_inf_silently():
    # The median of two values near the float64 limit overflows in its sum.
    big = np.finfo(np.float64).max / 2 * 1.5
    values = np.array([[big, big], [1.0, np.nan]])
    np.testing.assert_array_equal(_nanstats.nanmedian(values, axis=1), [np.inf, 1.0])
    np.testing.assert_array_equal(_nanstats.nanmean(values, axis=1), [np.inf, 1.0])


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_median_of_odd_and_even_counts_with_ties(axis, rng):
    # Slices of every length from 0 to 12 values, rounded values (ties), the
    # shapes the common mode takes (planes, lines, groups).
    values = np.round(rng.normal(size=(3, 13, 12)), 1)
    nan_at = np.arange(values.shape[axis]).reshape([-1 if a == axis % 3 else 1 for a in range(3)])
    cut = rng.integers(0, values.shape[axis] + 1, size=values.shape)
    values[np.broadcast_to(nan_at, values.shape) >= cut] = np.nan
    ours = _nanstats.nanmedian(values, axis=axis)
    np.testing.assert_array_equal(ours, numpy_reference("nanmedian", values, axis))


def test_median_of_one_value_near_the_limit_is_that_value():
    # An odd count takes its middle value as it is: no sum to overflow.
    big = np.finfo(np.float64).max
    values = np.array([[big, big, big], [big, np.nan, np.nan]])
    np.testing.assert_array_equal(_nanstats.nanmedian(values, axis=1), [big, big])


def test_median_along_an_empty_axis_is_nan():
    ours = _nanstats.nanmedian(np.empty((2, 0, 3)), axis=1)
    assert ours.shape == (2, 3) and np.isnan(ours).all()
