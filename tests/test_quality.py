"""Correction quality on smaller simulated frames: bgdnoise no worse than committed.

The comparison of ``benchmarks/quality.py`` (the README's quality table) on
``SMALL_CASES``: bgdnoise's line and band residual and |bias| on each must
stay within the thresholds of ``tests/data/quality_small.json``, which
``python benchmarks/make_quality_table.py --small`` writes from a measured
run (never edit it; regenerate it when the correction improves). The
astropy per-line median runs beside it as a check that the frames and the
score are still those the thresholds were measured on. Also: the quality
tables in README.md and docs/quality.rst are those of the committed JSON.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SMALL = ROOT / "tests" / "data" / "quality_small.json"
RESULTS = ROOT / "benchmarks" / "quality_results.json"
REGENERATE = "python benchmarks/make_quality_table.py --small"


def _load_script():
    spec = importlib.util.spec_from_file_location(
        "make_quality_table", ROOT / "benchmarks" / "make_quality_table.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_quality_table = _load_script()
quality = make_quality_table.quality
committed = json.loads(SMALL.read_text())


@pytest.fixture(scope="module")
def measured():
    """Every small case x method, scored (untimed): ``{case: {method: Score}}``."""
    out = {}
    for case in quality.SMALL_CASES:
        _, outcomes = quality.run_case(case, quality.SMALL_METHODS, repeats=0)
        out[case.key] = {name: o.score for name, o in outcomes.items()}
    return out


def test_thresholds_were_measured_on_these_cases():
    assert committed["cases"] == [c.describe() for c in quality.SMALL_CASES], (
        f"quality.SMALL_CASES changed: regenerate the thresholds with `{REGENERATE}`"
    )
    assert list(committed["methods"]) == list(quality.SMALL_METHODS)


def test_thresholds_follow_their_rule():
    """The thresholds are the rule applied to the scores next to them: not edited by hand."""
    for key, limits in committed["thresholds"].items():
        s = committed["scores"][key]["bgdnoise"]
        rule = make_quality_table.threshold
        expected = {"line": rule(s["line"]), "band": rule(s["band"]),
                    "abs_bias": rule(abs(s["bias"]))}  # fmt: skip
        assert limits == pytest.approx(expected), key


@pytest.mark.parametrize("key", [c.key for c in quality.SMALL_CASES])
def test_bgdnoise_is_no_worse_than_committed(measured, key):
    s, limits = measured[key]["bgdnoise"], committed["thresholds"][key]
    got = {"line": s.line, "band": s.band, "abs_bias": abs(s.bias)}
    worse = {name: (got[name], limit) for name, limit in limits.items() if not got[name] <= limit}
    assert not worse, (
        f"{key}: bgdnoise got worse than tests/data/quality_small.json allows "
        f"(measured, threshold): {worse}"
    )


@pytest.mark.parametrize("key", [c.key for c in quality.SMALL_CASES])
def test_frames_and_score_are_those_measured(measured, key):
    """The astropy baseline does not change with bgdnoise: if it moved, the frames did."""
    s, then = measured[key]["astropy"], committed["scores"][key]["astropy"]
    for name in ("line", "band", "bias"):
        assert math.isclose(getattr(s, name), then[name], rel_tol=0.02, abs_tol=0.01), (
            f"{key}: astropy's {name} is {getattr(s, name):.4g}, {then[name]:.4g} when the "
            f"thresholds were measured: the simulation or the score changed; `{REGENERATE}`"
        )


def test_quality_tables_are_fresh():
    results = json.loads(RESULTS.read_text())
    stale = make_quality_table.stale(results)
    assert not stale, (
        f"stale quality table in {[str(p.relative_to(ROOT)) for p in stale]}: run "
        "`python benchmarks/make_quality_table.py --render` (or the full run)"
    )


def test_quality_results_cover_every_case_and_method():
    results = json.loads(RESULTS.read_text())
    assert results["cases"] == [c.describe() for c in quality.CASES]
    for case in quality.CASES:
        assert list(results["scores"][case.key]) == list(quality.METHODS), case.key
        assert (ROOT / "docs" / "_static" / f"quality_{case.key}.png").is_file(), case.key
    table = make_quality_table.render_markdown(results)
    for needle in ("jwst median by channel", "jwst model", "astropy", "Bias (sigma)"):
        assert needle in table
