"""Kernels compiled ahead of time (:mod:`bgdnoise._kernels.aot`).

They must be in use in the installed package, serve every kernel call a
correction makes, and give the JIT kernels' bits on every path; anything
they were not built for must fall back to the JIT kernels. (That they
release the GIL shows in the thread-scaling benchmark; the build fails if
numba's pycc ignored the flag.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings

import numba
import numpy as np
import pytest
from early import waits_on
from fresh_jit import fresh_jit_run, run_case
from hypothesis import example, given, settings
from hypothesis import strategies as st
from numba.core.errors import NumbaError
from numba_events import LISTENER

from bgdnoise._kernels import _aot_build, _aot_entries, aot, mask
from bgdnoise._kernels._aot_entries import ENTRIES
from bgdnoise.warm import warm_cases

needs_compiled = pytest.mark.skipif(aot.opted_out(), reason="BGDNOISE_AOT=0: JIT kernels only")
BOX_MEANS_ARGS = (np.zeros((4, 4)), np.zeros((4, 4)), 1, 1.0, np.empty((4, 4)))


@pytest.fixture
def fresh_table():
    """Reload the extension's table around a test that changes what it sees."""
    aot._reset()
    yield
    aot._reset()


@needs_compiled
def test_the_compiled_kernels_are_in_use():
    found = aot.status()
    if found == "missing" and not (shutil.which("c++") or shutil.which("g++")):
        pytest.skip("no C++ compiler: the install could not build the kernels")
    assert found == "ok", (
        f"ahead-of-time kernels: {found}; build them with `make compiled` or run the tests "
        "with BGDNOISE_AOT=0"
    )


def test_the_entry_list_is_every_kernel_python_launches():
    listed = {(module, name, args) for module, name, args, _ in ENTRIES}
    with aot.recording() as seen:
        for case in warm_cases():
            run_case(case)
    assert seen == listed, (
        "regenerate bgdnoise/_kernels/_aot_entries.py: python -m bgdnoise._kernels record; "
        f"unlisted: {sorted(seen - listed)[:3]}, unused: {sorted(listed - seen)[:3]}"
    )
    with pytest.raises(RuntimeError, match="does not nest"), aot.recording():
        with aot.recording():
            pass


@needs_compiled
@waits_on(fresh_jit_run)
@pytest.mark.parametrize(
    ("index", "case"),
    list(enumerate(warm_cases())),
    ids=[f"{c.dtype}-{c.axis}-{c.label}" for c in warm_cases()],
)
def test_compiled_and_jit_kernels_give_the_same_bits(index, case, early_result):
    # The JIT kernels' outputs come from the fresh JIT run (tests/fresh_jit.py),
    # which compiled them anyway: this process does not compile them again.
    assert aot.status() == "ok"
    early_result.require_warm()
    assert early_result.jit_bits.returncode == 0, early_result.jit_bits.stderr
    compiled = run_case(case)
    with np.load(early_result.bits) as saved:
        n_saved = sum(key.split("/")[0] == str(index) for key in saved.files)
        jit = [saved[f"{index}/{k}"] for k in range(n_saved)]
    assert len(compiled) == len(jit)
    for a, b in zip(compiled, jit, strict=True):
        a = np.asarray(a)
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b, equal_nan=True)
        assert np.isfinite(a).any()


@waits_on(fresh_jit_run)
def test_helpers_without_reference_counting_return_no_array(early_result):
    # A helper compiled with _nrt=False that returned an array (or a view) would
    # hand its caller a reference nobody counted: freed too early. The fresh JIT
    # run's `bgdnoise warm` compiled every kernel afresh and then listed what each
    # such helper returns (so this check needs that warm-up to succeed).
    early_result.require_warm()
    found = json.loads(early_result.warm.stdout.splitlines()[-1])["helpers"]
    assert len(found) >= 40  # (every module's helpers were imported)
    assert [name for name, (compiled, _) in found.items() if compiled == 0] == []
    assert {name: arrays for name, (_, arrays) in found.items() if arrays} == {}


# Run after LISTENER: corrections in a new process with an empty numba cache.
NOTHING_COMPILED = r"""
import numpy as np
import bgdnoise

rng = np.random.default_rng(5)
frame = rng.normal(1.0, 0.1, (128, 512)).astype(np.float32)
dq = np.zeros(frame.shape, np.uint32)
for options in ({}, {"n_outputs": 4, "odd_even": True}, {"mask_sources": False,
                "background_method": None}):
    for axis in ("rows", "columns"):
        bgdnoise.correct_array(frame, axis, dq=dq, **options)
bgdnoise.correct_array(np.stack([frame] * 3), "rows")
print(json.dumps(compiled))
"""


@needs_compiled
def test_a_correction_in_a_new_process_compiles_nothing(tmp_path):
    assert aot.status() == "ok"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "empty"))
    proc = subprocess.run(
        # -P: the installed bgdnoise, as this process has it, not a source tree in the cwd.
        [sys.executable, "-P", "-c", LISTENER + NOTHING_COMPILED], capture_output=True,
        text=True, env=env,
        timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == []


@needs_compiled
def test_launch_takes_the_export_only_for_listed_types(fresh_table):
    args = BOX_MEANS_ARGS
    assert aot.resolve(mask.box_means, args) is not mask.box_means  # listed: float64
    unlisted = (args[0].astype(np.float32), *args[1:])
    assert aot.resolve(mask.box_means, unlisted) is mask.box_means
    # What numba's type of an array depends on besides its dtype (remembered per
    # kernel after the first call, so asked twice):
    strided = (np.zeros((4, 8))[:, ::2], *args[1:])  # layout "A"
    fortran = (np.zeros((4, 4), order="F")[:, :3], *args[1:])
    read_only = np.zeros((4, 4))
    read_only.flags.writeable = False
    swapped = (args[0].astype(">f8"), *args[1:])  # numba cannot type it: the JIT says why
    for _ in range(2):
        assert aot.resolve(mask.box_means, strided) is mask.box_means
        assert aot.resolve(mask.box_means, fortran) is mask.box_means
        assert aot.resolve(mask.box_means, (read_only, *args[1:])) is mask.box_means
        assert aot.resolve(mask.box_means, swapped) is mask.box_means
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


_dtypes = st.sampled_from(["<f4", ">f4", "<f8", "u1", "<u4", "i8", "?"])
_scalars = st.one_of(
    st.booleans(),
    st.floats(allow_nan=False),
    st.integers(-(2**70), 2**70),
    st.builds(np.float32, st.floats(-1e6, 1e6)),
    st.builds(np.int64, st.integers(-(2**40), 2**40)),
    st.builds(np.uint64, st.integers(0, 2**40)),
    st.builds(np.bool_, st.booleans()),
)


@st.composite
def _arrays_of_every_layout(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    a = np.zeros(shape, draw(_dtypes), order=draw(st.sampled_from("CF")))
    if draw(st.booleans()):
        a = a[(slice(None, None, draw(st.integers(1, 2))),) * ndim]
    if draw(st.booleans()):
        a = a.T
    a.flags.writeable = draw(st.booleans())
    return a


_arguments = st.recursive(
    st.one_of(_scalars, _arrays_of_every_layout()),
    lambda inner: st.lists(inner, max_size=3).map(tuple),
    max_leaves=6,
)


def _typeof_or_none(args):
    try:
        return aot.argument_types(args)
    except (ValueError, NumbaError):
        return None


@settings(max_examples=300, deadline=None)
@example([-(2**63)], [-(2**63) - 1])  # int64 / not typeable
@example([2**64 - 1], [2**64])  # uint64 / not typeable
@example([2**31 - 1], [2**31])  # intp / int64 where intp is 32 bits
@example([np.timedelta64(1, "s")], [np.timedelta64(1, "ms")])
@example([np.str_("ab")], [np.str_("abc")])
@given(st.lists(_arguments, min_size=1, max_size=3), st.lists(_arguments, min_size=1, max_size=3))
def test_equal_fingerprints_mean_equal_numba_types(first, second):
    a, b = tuple(first), tuple(second)
    fa, fb = aot._fingerprint(a), aot._fingerprint(b)
    if fa is not None and fa == fb:
        assert _typeof_or_none(a) == _typeof_or_none(b)
    if fa is not None:
        assert aot._fingerprint(a) == fa  # a function of the arguments


def test_a_stale_extension_is_not_used(monkeypatch, fresh_table):
    monkeypatch.setattr(aot, "source_hash", lambda: "0" * 64)
    assert aot.status() in (("disabled",) if aot.opted_out() else ("stale", "missing"))
    assert aot.resolve(mask.box_means, BOX_MEANS_ARGS) is mask.box_means


def _cpu_unknown():
    raise RuntimeError("no host CPU features on this platform")


@needs_compiled
@pytest.mark.parametrize("host", [lambda: "cpu_of_another_machine", _cpu_unknown])
def test_an_extension_built_for_another_cpu_is_not_used(monkeypatch, fresh_table, host):
    from bgdnoise._kernels import _compiled

    if hasattr(_compiled, aot.ANY_CPU):
        pytest.skip("built for any CPU (BGDNOISE_AOT_CPU)")
    monkeypatch.setattr(aot, "host_cpu_symbol", host)
    assert aot.status() == "other-cpu"
    assert aot.resolve(mask.box_means, BOX_MEANS_ARGS) is mask.box_means


@needs_compiled
def test_an_entry_list_that_does_not_read_falls_back(monkeypatch, fresh_table):
    def unreadable(text):
        raise SyntaxError(text)

    monkeypatch.setattr(aot, "decode", unreadable)
    assert aot.status() == "unreadable"
    assert aot.resolve(mask.box_means, BOX_MEANS_ARGS) is mask.box_means


@pytest.mark.parametrize("value", ["0", "off"])
def test_bgdnoise_aot_0_turns_them_off(monkeypatch, fresh_table, value):
    monkeypatch.setenv("BGDNOISE_AOT", value)
    assert aot.status() == "disabled"
    assert aot.resolve(mask.box_means, BOX_MEANS_ARGS) is mask.box_means


def test_every_listed_type_reads_back_as_written():
    for _, _, args, returns in ENTRIES:
        for text in (*args, returns):
            assert repr(aot.decode(text)) == text
    with pytest.raises(ValueError, match="round-trip"):
        aot.decode("Array(float32, 2, 'A')")


def test_build_refuses_options_the_exports_would_not_honour(monkeypatch, tmp_path):
    entry = next(e for e in ENTRIES if e[1] == "box_means")
    monkeypatch.setattr(_aot_entries, "ENTRIES", (entry,))
    monkeypatch.setitem(mask.box_means.targetoptions, "fastmath", True)
    with pytest.raises(ValueError, match="pycc would ignore fastmath"):
        _aot_build.build(tmp_path / "x.so")


def test_the_build_releases_the_gil_or_fails():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", numba.NumbaPendingDeprecationWarning)
        import numba.pycc.compiler as pycc_compiler
    original = pycc_compiler.Flags
    with _aot_build._releasing_gil():
        flags = pycc_compiler.Flags()
    assert flags.release_gil and pycc_compiler.Flags is original
    with pytest.raises(RuntimeError, match="GIL"), _aot_build._releasing_gil():
        pass  # pycc made no flags of ours


def test_the_options_check_covers_locals_and_the_pipeline(monkeypatch):
    assert _aot_build._lost_options(mask.box_means) == []
    monkeypatch.setattr(mask.box_means, "locals", {"total": numba.float32})
    assert _aot_build._lost_options(mask.box_means) == ["locals"]


def test_the_command_line(capsys, monkeypatch, fresh_table):
    assert _aot_build.main(["nonsense"]) == 2
    assert "usage" in capsys.readouterr().err
    monkeypatch.setenv("BGDNOISE_AOT", "0")
    assert _aot_build.main(["check"]) == 0
    assert "disabled" in capsys.readouterr().out
    aot._reset()
    monkeypatch.setattr(numba.config, "DISABLE_JIT", True)
    monkeypatch.delenv("BGDNOISE_AOT")
    assert _aot_build.main(["check"]) == 0  # nothing to build: the kernels run as Python
    assert "no-jit" in capsys.readouterr().out
    aot._reset()
    monkeypatch.setattr(numba.config, "DISABLE_JIT", False)
    monkeypatch.setattr(aot, "source_hash", lambda: "0" * 64)
    assert _aot_build.main(["check"]) == 1
    assert "stale" in capsys.readouterr().out
    compilers_work = _aot_build._compilers_work
    monkeypatch.setattr(_aot_build, "_compilers_work", lambda: False)
    assert _aot_build.main(["build", "unused.so"]) == _aot_build.NO_COMPILER
    assert "no working C/C++ compiler" in capsys.readouterr().err
    # A numba without pycc (deprecated; a release may drop it): the same way out.
    monkeypatch.setattr(_aot_build, "_compilers_work", compilers_work)
    monkeypatch.setitem(sys.modules, "numba.pycc.platform", None)  # import fails
    assert _aot_build.main(["build", "unused.so"]) == _aot_build.NO_COMPILER
    assert "no pycc" in capsys.readouterr().err
