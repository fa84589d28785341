"""correct_array on cubes of planes next to the 2048x2048 frame, per pixel.

Issue 13: a cube's time per pixel at most 1.1x the frame's with the same
options. Two float32 cubes of NIRCam grism time-series shape (50x256x2048,
200x64x2048) and the full frame, lines along rows, each for four option sets
(the defaults, 4 outputs, 4 outputs with odd/even, and the plain path without
the scene stages, whose per-plane costs are the kernels' own). All data come
from one generator (benchdata.frame): sky, 2-sigma stripes, 30% of pixels in
sources, four outputs with their own offsets and odd/even columns. The frame
is timed here, in the same run, so the README table's ratios compare one run.
With ``--benchmark-disable`` (``make test``) the frame benchmarks run once as
tests; the cubes are ``slow``.
"""

import numpy as np
import pytest
from benchdata import frame, warm

from bgdnoise import correct_array
from bgdnoise.simulate import stripe_residual_rms

# id: (options, largest stripe residual left on the first plane, as a
# fraction of the injected stripes). With one output the four outputs'
# own offsets stay.
OPTIONS = {
    "defaults": ({}, 0.9),
    "outputs": ({"n_outputs": 4}, 0.25),
    "outputs-odd-even": ({"n_outputs": 4, "odd_even": True}, 0.1),
    "plain": ({"mask_sources": False, "background_method": None}, 0.9),
}
CUBES = ["50x256x2048", "200x64x2048"]
GROUP = "correct_array per pixel, cubes vs 2048x2048 frame ({})"
ROUNDS = 5


def shape_of(name):
    return tuple(int(n) for n in name.split("x"))


def run(benchmark, name, variant):
    options, fraction = OPTIONS[variant]
    benchmark.group = GROUP.format(variant)
    synthetic = frame(shape=shape_of(name), n_outputs=4)
    data = synthetic.data
    benchmark.extra_info.update(shape=list(data.shape), pixels=data.size, options=options)
    corrected = benchmark.pedantic(
        warm(correct_array, data, "rows", **options),
        args=(data, "rows"),
        kwargs=options,
        rounds=ROUNDS,
        iterations=1,
    )
    plane = (0,) * (data.ndim - 2)
    model = data[plane].astype(np.float64) - corrected[plane]
    stripes = synthetic.stripes[plane]
    injected = stripe_residual_rms(np.zeros(stripes.shape), stripes)
    assert stripe_residual_rms(model, stripes) < fraction * injected


@pytest.mark.parametrize("variant", OPTIONS)
def test_bgdnoise_correct_array_frame(benchmark, variant):
    run(benchmark, "2048x2048", variant)


@pytest.mark.slow
@pytest.mark.parametrize("variant", OPTIONS)
@pytest.mark.parametrize("cube", CUBES)
def test_bgdnoise_correct_array_cube(benchmark, cube, variant):
    run(benchmark, cube, variant)
