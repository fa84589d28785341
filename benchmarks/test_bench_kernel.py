"""The per-line levels alone, on each benchmark size, next to their baselines.

Each baseline is its own benchmark in the same group, on the same data, so
the ratios in the README table come from one run. With ``--benchmark-disable``
(the default in ``make test``) every benchmark runs once as a test and checks
its result against the reference.
"""

import numpy as np
import pytest
from benchdata import frame, relative_error, warm
from reference import REGISTRY

from bgdnoise import measure_levels

KERNEL = REGISTRY["clipped_line_median"]
PARAMS = dict(sigma=3.0, maxiters=10)
FRAME = "kernel: 2048x2048 float32, clipped line medians ({axis})"


@pytest.mark.parametrize("axis", ["rows", "columns"])
def test_bgdnoise_kernel(benchmark, axis):
    benchmark.group = FRAME.format(axis=axis)
    data = frame(axis=axis).data
    ours = benchmark(warm(KERNEL.ours, data, axis, **PARAMS), data, axis, **PARAMS)
    reference = KERNEL.exact["astropy"](data, axis, **PARAMS)
    assert relative_error(ours, reference) < 1e-6


@pytest.mark.parametrize("axis", ["rows", "columns"])
def test_baseline_np_median(benchmark, axis):
    benchmark.group = FRAME.format(axis=axis)
    data = frame(axis=axis).data
    result = benchmark(KERNEL.timing_only["np.median"], data, axis)
    assert result.shape == (2048,)


@pytest.mark.parametrize("axis", ["rows", "columns"])
def test_baseline_astropy_sigma_clip(benchmark, axis):
    benchmark.group = FRAME.format(axis=axis)
    data = frame(axis=axis).data
    reference = KERNEL.exact["astropy"]
    result = benchmark.pedantic(reference, args=(data, axis), kwargs=PARAMS, rounds=3)
    assert np.isfinite(result).all()


@pytest.mark.parametrize("threads_used", [1, 2])
@pytest.mark.benchmark(group="kernel thread scaling: 2048x2048 float32 (rows)")
def test_bgdnoise_kernel_threads(benchmark, threads, threads_used):
    threads(threads_used)
    data = frame().data
    ours = benchmark(warm(KERNEL.ours, data, "rows", **PARAMS), data, "rows", **PARAMS)
    assert np.isfinite(ours).all()


@pytest.mark.benchmark(group="kernel: 2048x2048, 4 outputs and odd/even (rows)")
def test_bgdnoise_kernel_outputs_odd_even(benchmark):
    data = frame(n_outputs=4).data
    kwargs = dict(scale="line", n_outputs=4, odd_even=True, **PARAMS)
    levels = benchmark(warm(measure_levels, data, "rows", **kwargs), data, "rows", **kwargs)
    # Each band and parity against astropy on its own pixels.
    band = data[:, 512:1024:2]
    np.testing.assert_allclose(
        levels.raw[:, 2], KERNEL.exact["astropy"](band, "rows", **PARAMS), rtol=1e-6
    )


@pytest.mark.benchmark(group="kernel: cube 50x256x2048 float32 (rows)")
def test_bgdnoise_kernel_cube(benchmark):
    data = frame(shape=(50, 256, 2048)).data
    ours = benchmark(warm(KERNEL.ours, data, "rows", **PARAMS), data, "rows", **PARAMS)
    assert relative_error(ours[7], KERNEL.exact["astropy"](data[7], "rows", **PARAMS)) < 1e-6


@pytest.mark.benchmark(group="kernel: cube 50x256x2048 float32 (rows)")
def test_baseline_np_median_cube(benchmark):
    data = frame(shape=(50, 256, 2048)).data
    result = benchmark(KERNEL.timing_only["np.median"], data, "rows")
    assert result.shape == (50, 256)


@pytest.mark.slow
@pytest.mark.benchmark(group="ramp: 2x8x2048x2048 float32 group differences (rows)")
def test_bgdnoise_kernel_ramp(benchmark):
    data = frame(shape=(2, 7, 2048, 2048)).data  # 8 groups -> 7 differences
    ours = benchmark.pedantic(KERNEL.ours, args=(data, "rows"), kwargs=PARAMS, rounds=3)
    assert ours.shape == (2, 7, 2048)


@pytest.mark.slow
@pytest.mark.benchmark(group="ramp: 2x8x2048x2048 float32 group differences (rows)")
def test_baseline_np_median_ramp(benchmark):
    data = frame(shape=(2, 7, 2048, 2048)).data
    result = benchmark.pedantic(KERNEL.timing_only["np.median"], args=(data, "rows"), rounds=3)
    assert result.shape == (2, 7, 2048)
