"""correct_array end to end (defaults) next to jwst's clean_flicker_noise.

The jwst baselines run ``do_correction`` on an ImageModel holding the same
frame, with ``fit_method="median"``, with and without ``fit_by_channel`` and
with ``background_method="model"``.
"""

import logging

import numpy as np
import pytest
from benchdata import product, warm

from bgdnoise import correct_array
from bgdnoise.simulate import stripe_residual_rms

GROUP = "correct_array vs jwst clean_flicker_noise: NIRCam 2048x2048 _rate"


@pytest.fixture(autouse=True)
def quiet_jwst():
    logging.getLogger("jwst").setLevel(logging.WARNING)
    logging.getLogger("stpipe").setLevel(logging.WARNING)


def _ours(sci, dq, **kwargs):
    return correct_array(sci, "rows", dq=dq, return_model=True, **kwargs)


@pytest.mark.benchmark(group=GROUP)
def test_bgdnoise_correct_array_defaults(benchmark):
    p = product()
    sci, dq = p.model.data, p.model.dq
    _, model = benchmark(warm(_ours, sci, dq), sci, dq)
    use = ~p.reference & np.isfinite(sci)
    residual = stripe_residual_rms(np.where(use, model, 0), p.stripes, where=use)
    injected = stripe_residual_rms(np.zeros(sci.shape), p.stripes, where=use)
    # One output: the shared stripes go, the four outputs' own offsets stay.
    assert residual < 0.6 * injected


@pytest.mark.benchmark(group=GROUP)
def test_bgdnoise_correct_array_outputs(benchmark):
    p = product()
    sci, dq = p.model.data, p.model.dq
    _, model = benchmark(warm(_ours, sci, dq, n_outputs=4), sci, dq, n_outputs=4)
    use = ~p.reference & np.isfinite(sci)
    residual = stripe_residual_rms(np.where(use, model, 0), p.stripes, where=use)
    # Sources unmasked (30% of pixels): the clip leaves faint wings in, as in the tests.
    assert residual < 2.0 * 0.01 / np.sqrt(0.6 * 512)


@pytest.mark.benchmark(group=GROUP)
def test_bgdnoise_correct_array_columns(benchmark):
    # The same frame read along columns (NIRISS, NIRSpec, FGS): the kernels'
    # paths for lines along columns, against the rows of the test above.
    p = product()
    sci, dq = np.ascontiguousarray(p.model.data.T), np.ascontiguousarray(p.model.dq.T)

    def ours(sci, dq):
        return correct_array(sci, "columns", dq=dq, n_outputs=4, return_model=True)

    _, model = benchmark(warm(ours, sci, dq), sci, dq)
    use = ~p.reference.T & np.isfinite(sci)
    residual = stripe_residual_rms(np.where(use, model, 0).T, p.stripes, where=use.T)
    assert residual < 2.0 * 0.01 / np.sqrt(0.6 * 512)


@pytest.mark.parametrize(
    "variant",
    [
        {"fit_by_channel": False, "background_method": "median"},
        {"fit_by_channel": True, "background_method": "median"},
        {"fit_by_channel": False, "background_method": "model"},
    ],
    ids=["median", "median-by-channel", "model-background"],
)
@pytest.mark.benchmark(group=GROUP)
def test_baseline_jwst_clean_flicker_noise(benchmark, variant):
    from jwst.clean_flicker_noise.clean_flicker_noise import do_correction

    p = product()

    def setup():
        return (p.model.copy(),), {}

    def run(model):
        return do_correction(model, fit_method="median", **variant)

    result = benchmark.pedantic(run, setup=setup, rounds=3)
    assert result[-1] == "COMPLETE"
