"""The one list of options, and everything built from it."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bgdnoise import dqflags
from bgdnoise.options import OPTIONS, CorrectionOptions, option, options_table_rst, step_spec

ROOT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent
CORRECTION = [o for o in OPTIONS if o.scope == "correction"]


def test_defaults_and_validation_once():
    defaults = CorrectionOptions()
    assert defaults.as_kwargs() == {o.name: o.default for o in CORRECTION}
    assert defaults.changed() == {}
    changed = CorrectionOptions.from_kwargs(sigma=np.float32(2.5), maxiters=np.int64(3))
    assert (changed.sigma, changed.maxiters) == (2.5, 3)
    assert changed.changed() == {"sigma": 2.5, "maxiters": 3}
    assert CorrectionOptions.from_kwargs(changed, scale="line").sigma == 2.5  # keeps the base


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(sigma=0), ValueError, "sigma must be a positive finite number"),
        (dict(sigma="3"), TypeError, "sigma must be a number"),
        (dict(maxiters=-1), ValueError, r"maxiters must be >= 0 \(or None"),
        (dict(maxiters=1.5), TypeError, "maxiters must be an integer"),
        (dict(min_fraction=1.5), ValueError, r"min_fraction must be a number in \[0, 1\]"),
        (dict(scale="median"), ValueError, "scale must be one of 'global', 'line'"),
        (dict(n_outputs=0), ValueError, "n_outputs must be 'auto' or a positive integer"),
        (dict(n_outputs=4.0), TypeError, "n_outputs"),
        (dict(dq_flags=2**32), ValueError, "dq_flags must be a uint32"),
        (dict(odd_even="yes"), TypeError, "odd_even must be True or False"),
        (dict(bogus=1), TypeError, "unknown option 'bogus'; known: axis"),
        (dict(mask=None, user_mask=None), TypeError, "given twice"),
    ],
)
def test_bad_values_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        CorrectionOptions.from_kwargs(**kwargs)


def test_aliases_are_declared_with_the_option():
    assert option("user_mask").name == "mask"
    assert option("n_outputs").cli_flag == "--outputs"
    mask = np.zeros((4, 4), bool)
    assert CorrectionOptions.from_kwargs(user_mask=mask).mask is mask


def test_command_line_arguments_come_from_the_options():
    proc = subprocess.run(
        [str(BIN / "bgdnoise"), "correct", "--help"], capture_output=True, text=True, check=True
    )
    text = " ".join(proc.stdout.split())
    for declared in OPTIONS:
        assert declared.cli_flag in text, declared.name
        assert " ".join(declared.help.split()[:3]) in text, declared.name


def test_step_spec_comes_from_the_options():
    from bgdnoise import BgdNoiseStep

    spec = step_spec()
    for declared in OPTIONS:
        assert (f"\n{declared.step_name} = " in "\n" + spec) == declared.in_step
    step = BgdNoiseStep()
    for declared in (o for o in OPTIONS if o.in_step):
        assert getattr(step, declared.step_name) == declared.default, declared.name


def test_docs_table_is_generated_and_fresh():
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        from make_options import PAGE, render
    finally:
        sys.path.pop(0)
    text = PAGE.read_text()
    assert render(text) == text, "run python docs/make_options.py"
    assert options_table_rst() in text


def test_array_functions_take_the_object_or_keywords():
    import bgdnoise

    data = np.random.default_rng(3).normal(1.0, 0.1, (32, 64)).astype(np.float32)
    by_object = bgdnoise.correct_array(
        data, "rows", options=CorrectionOptions(sigma=2.0, n_outputs=2)
    )
    by_keywords = bgdnoise.correct_array(data, "rows", sigma=2.0, n_outputs=2)
    np.testing.assert_array_equal(by_object, by_keywords)
    with pytest.raises(TypeError, match="unknown option 'sigmaa'"):
        bgdnoise.correct_array(data, "rows", sigmaa=2.0)


def test_dq_bits_match_stdatamodels():
    from stdatamodels.jwst.datamodels import dqflags as reference

    for name in ("DO_NOT_USE", "SATURATED", "JUMP_DET", "NON_SCIENCE", "DEAD", "HOT",
                 "MSA_FAILED_OPEN", "REFERENCE_PIXEL"):  # fmt: skip
        assert getattr(dqflags, name) == reference.pixel[name], name
