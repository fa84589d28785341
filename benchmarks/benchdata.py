"""Shared benchmark data and helpers: one generator, fixed seeds, built once."""

from __future__ import annotations

import functools

import numpy as np

from bgdnoise.simulate import make_frame

SEED = 2048


@functools.cache
def frame(shape=(2048, 2048), axis="rows", n_outputs=1, seed=SEED):
    """The benchmark frame(s): sky, 2-sigma stripes, 30% of pixels in sources."""
    return make_frame(
        shape,
        axis,
        n_outputs=n_outputs,
        output_offset_rms=0.02 if n_outputs > 1 else 0.0,
        odd_even_rms=0.005 if n_outputs > 1 else 0.0,
        source_fraction=0.3,
        seed=seed,
    )


@functools.cache
def product(detector="NRCA1", kind="rate", shape=(2048, 2048), nints=2, seed=SEED):
    """A synthetic product with the same kind of sky (stdatamodels model)."""
    from bgdnoise.simulate import make_product

    return make_product(detector, kind, shape, nints=nints, source_fraction=0.3, seed=seed)


def warm(function, *args, **kwargs):
    """Call once so compilation (or cache loading) is not timed."""
    function(*args, **kwargs)
    return function


def relative_error(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    both = np.isfinite(a) & np.isfinite(b)
    assert (np.isfinite(a) == np.isfinite(b)).all()
    return float(np.max(np.abs(a[both] - b[both]) / np.maximum(np.abs(b[both]), 1e-30), initial=0))
