"""The per-line clipped medians on a 2048x2048 frame, next to their baselines.

Each baseline is its own benchmark in the same group, on the same data, so
the ratios in the table come from one run. With ``--benchmark-disable``
(the default in ``make test``) every benchmark runs once as a test and
checks its result against the reference.
"""

import numpy as np
import pytest
from benchdata import frame, relative_error, warm

from bgdnoise.reference import REGISTRY

KERNEL = REGISTRY["clipped_line_median"]
PARAMS = dict(sigma=3.0, maxiters=10)


@pytest.mark.parametrize("axis", ["rows", "columns"])
@pytest.mark.benchmark(group="kernel: clipped line medians, 2048x2048 float32")
def test_bgdnoise_kernel(benchmark, axis):
    data = frame(axis=axis).data
    ours = benchmark(warm(KERNEL.ours, data, axis, **PARAMS), data, axis, **PARAMS)
    reference = KERNEL.exact["astropy"](data, axis, **PARAMS)
    assert relative_error(ours, reference) < 1e-6


@pytest.mark.parametrize("threads_used", [1, 2])
@pytest.mark.benchmark(group="kernel thread scaling, rows, 2048x2048 float32")
def test_bgdnoise_kernel_threads(benchmark, threads, threads_used):
    threads(threads_used)
    data = frame().data
    ours = benchmark(warm(KERNEL.ours, data, "rows", **PARAMS), data, "rows", **PARAMS)
    assert np.isfinite(ours).all()


@pytest.mark.parametrize("axis", ["rows", "columns"])
@pytest.mark.benchmark(group="kernel: clipped line medians, 2048x2048 float32")
def test_baseline_np_median(benchmark, axis):
    data = frame(axis=axis).data
    result = benchmark(KERNEL.timing_only["np.median"], data, axis)
    assert result.shape == (2048,)


@pytest.mark.parametrize("axis", ["rows", "columns"])
@pytest.mark.benchmark(group="kernel: clipped line medians, 2048x2048 float32")
def test_baseline_astropy_sigma_clip(benchmark, axis):
    data = frame(axis=axis).data
    reference = KERNEL.exact["astropy"]
    benchmark.pedantic(reference, args=(data, axis), kwargs=PARAMS, rounds=3, iterations=1)
