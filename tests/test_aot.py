"""Kernels compiled ahead of time (:mod:`bgdnoise._kernels.aot`).

They must be in use in the installed package, serve every kernel call a
correction makes, and give the JIT kernels' bits on every path.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from bgdnoise import correct_array
from bgdnoise._kernels import aot, mask
from bgdnoise._kernels._aot_entries import ENTRIES
from bgdnoise.warm import _synthetic, warm_cases

OPTED_OUT = os.environ.get("BGDNOISE_AOT", "1").strip().lower() in ("0", "false", "no", "off")
needs_compiled = pytest.mark.skipif(OPTED_OUT, reason="BGDNOISE_AOT=0: JIT kernels only")


@pytest.fixture
def fresh_table():
    """Reload the extension's table around a test that changes what it sees."""
    aot._reset()
    yield
    aot._reset()


def _arrays(result):
    return result if isinstance(result, tuple) else (result,)


def _run(case):
    inputs = _synthetic(case, np.random.default_rng(11))
    data = inputs.pop("data")
    with warnings.catch_warnings():
        # Lines of the small synthetic planes left without a usable pixel: not news.
        warnings.simplefilter("ignore", RuntimeWarning)
        return _arrays(correct_array(data, case.axis, **inputs, **case.options))


@needs_compiled
def test_the_compiled_kernels_are_in_use():
    assert aot.status() == "ok", (
        f"ahead-of-time kernels: {aot.status()}; build them with `make compiled` (needs a C "
        "compiler) or run the tests with BGDNOISE_AOT=0"
    )


def test_the_entry_list_is_every_kernel_python_launches():
    listed = {(module, name, args) for module, name, args, _ in ENTRIES}
    with aot.recording() as seen:
        for case in warm_cases():
            _run(case)
    assert seen == listed, (
        "regenerate bgdnoise/_kernels/_aot_entries.py: python -m bgdnoise._kernels record; "
        f"unlisted: {sorted(seen - listed)[:3]}, unused: {sorted(listed - seen)[:3]}"
    )


@needs_compiled
@pytest.mark.parametrize("case", warm_cases(), ids=lambda c: f"{c.dtype}-{c.axis}-{c.label}")
def test_compiled_and_jit_kernels_give_the_same_bits(case):
    compiled = _run(case)
    with aot.jit_only():
        jit = _run(case)
    assert len(compiled) == len(jit)
    for a, b in zip(compiled, jit, strict=True):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b, equal_nan=True)
        assert np.isfinite(a).any()


@needs_compiled
def test_launch_takes_the_export_only_for_listed_types():
    sums = np.zeros((4, 4))
    args = (sums, sums.copy(), 1, 1.0, np.empty((4, 4)))
    assert aot.resolve(mask.box_means, args) is not mask.box_means  # listed: float64
    unlisted = (sums.astype(np.float32), *args[1:])
    assert aot.resolve(mask.box_means, unlisted) is mask.box_means
    # What numba's type of an array depends on besides its dtype (remembered per
    # kernel after the first call, so asked twice):
    strided = (np.zeros((4, 8))[:, ::2], *args[1:])  # layout "A"
    read_only = np.zeros((4, 4))
    read_only.flags.writeable = False
    for _ in range(2):
        assert aot.resolve(mask.box_means, strided) is mask.box_means
        assert aot.resolve(mask.box_means, (read_only, *args[1:])) is mask.box_means
        assert aot.resolve(mask.box_means, args) is not mask.box_means
    with aot.jit_only():
        assert aot.resolve(mask.box_means, args) is mask.box_means

    def stand_in(*a):
        return "called"

    assert aot.launch(stand_in, *args) == "called"  # e.g. a test's monkeypatched kernel


@needs_compiled
def test_an_export_and_its_kernel_compute_the_same(fresh_table):
    rng = np.random.default_rng(3)
    sums, counts = rng.normal(size=(12, 9)), rng.integers(0, 5, (12, 9)).astype(float)
    out_compiled, out_jit = np.empty((12, 9)), np.empty((12, 9))
    export = aot.resolve(mask.box_means, (sums, counts, 1, 2.0, out_compiled))
    assert export is not mask.box_means
    export(sums, counts, 1, 2.0, out_compiled)
    mask.box_means(sums, counts, 1, 2.0, out_jit)
    assert np.array_equal(out_compiled, out_jit, equal_nan=True)


def test_a_stale_extension_is_not_used(monkeypatch, fresh_table):
    monkeypatch.setattr(aot, "source_hash", lambda: "0" * 64)
    expected = "stale" if not OPTED_OUT else "disabled"
    assert aot.status() == expected
    args = (np.zeros((4, 4)), np.zeros((4, 4)), 1, 1.0, np.empty((4, 4)))
    assert aot.resolve(mask.box_means, args) is mask.box_means


@pytest.mark.parametrize("value", ["0", "off"])
def test_bgdnoise_aot_0_turns_them_off(monkeypatch, fresh_table, value):
    monkeypatch.setenv("BGDNOISE_AOT", value)
    assert aot.status() == "disabled"
    args = (np.zeros((4, 4)), np.zeros((4, 4)), 1, 1.0, np.empty((4, 4)))
    assert aot.resolve(mask.box_means, args) is mask.box_means


def test_every_listed_type_reads_back_as_written():
    for _, _, args, returns in ENTRIES:
        for text in (*args, returns):
            assert repr(aot._decode(text)) == text
    with pytest.raises(ValueError, match="round-trip"):
        aot._decode("Array(float32, 2, 'A')")
