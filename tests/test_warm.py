"""``bgdnoise warm``: after it, a correction in a new process compiles nothing.

The first test compiles every kernel into an empty cache (30-60 s on two
busy cores; the suite's slowest test, kept in ``make test`` because it is
the only guard that the warm-up still covers every kernel a correction uses:
a new kernel or signature it misses fails here, not in a user's container).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from numba_events import LISTENER

import bgdnoise
from bgdnoise import _numba_cache, cli

BIN = Path(sys.executable).parent

# Run after LISTENER: corrections on sizes the warm-up never saw, each along a
# path it took.
AFTER_WARM = r"""
import numpy as np
import bgdnoise

rng = np.random.default_rng(7)
frame = rng.normal(1.0, 0.1, (96, 320)).astype(np.float32)
dq = np.zeros(frame.shape, np.uint32)
dq[:, :4] = bgdnoise.REFERENCE_PIXEL
cube = rng.normal(1.0, 0.1, (4, 80, 384)).astype(np.float32)
plain = {"mask_sources": False, "background_method": None}
calls = [
    ("defaults", lambda: bgdnoise.correct_array(frame, "rows")),
    ("n_outputs=4", lambda: bgdnoise.correct_array(frame, "rows", n_outputs=4)),
    ("odd_even", lambda: bgdnoise.correct_array(frame, "rows", n_outputs=4, odd_even=True)),
    ("columns", lambda: bgdnoise.correct_array(frame, "columns")),
    ("plain", lambda: bgdnoise.correct_array(frame, "rows", **plain)),
    ("plain, columns, DQ", lambda: bgdnoise.correct_array(frame, "columns", dq=dq, **plain)),
    ("DQ, model", lambda: bgdnoise.correct_array(frame, "rows", dq=dq, return_model=True)),
    ("cube", lambda: bgdnoise.correct_array(cube, "rows", n_outputs=4)),
    ("float64", lambda: bgdnoise.correct_array(frame.astype(np.float64), "columns")),
]
found = {}
for name, call in calls:
    before = len(compiled)
    call()
    found[name] = [c for c in compiled[before:] if c.startswith("bgdnoise.")]
print(json.dumps(found))
"""


# Run after LISTENER: ``bgdnoise warm``, and the compilations numba did for
# literal arguments.
WARM_WATCHED = r"""
from bgdnoise import cli

code = cli.main(["warm"])
print(json.dumps([c for c in compiled if "Literal" in c]))
sys.exit(code)
"""


def _env(cache: Path) -> dict[str, str]:
    # The JIT kernels only: the ahead-of-time ones (tests/test_aot.py) would hide what
    # the warm-up missed.
    return dict(os.environ, NUMBA_CACHE_DIR=str(cache), BGDNOISE_AOT="0")


def test_warm_then_nothing_compiles(tmp_path):
    cache = tmp_path / "numba-cache"
    warm = subprocess.run(
        # -P: the installed bgdnoise (as `bgdnoise warm` below), not a source tree in the cwd,
        # whose kernels numba would cache under other paths.
        [sys.executable, "-P", "-c", LISTENER + WARM_WATCHED], capture_output=True, text=True,
        env=_env(cache), timeout=900, check=False,
    )  # fmt: skip
    assert warm.returncode == 0, warm.stderr
    # A kernel handed a bare constant is compiled twice (see _kernels/__init__.py).
    assert json.loads(warm.stdout.strip().splitlines()[-1]) == []
    assert str(cache) in warm.stdout
    summary = re.search(r"compiled (\d+) kernel signatures in ([\d.]+) s", warm.stdout)
    assert summary, warm.stdout
    assert int(summary[1]) > 30 and float(summary[2]) > 0
    assert "float64" in warm.stdout and "read-only" in warm.stdout

    after = subprocess.run(
        [sys.executable, "-P", "-c", LISTENER + AFTER_WARM], capture_output=True, text=True,
        env=_env(cache), timeout=900, check=False,
    )  # fmt: skip
    assert after.returncode == 0, after.stderr
    found = json.loads(after.stdout.strip().splitlines()[-1])
    assert len(found) == 9
    assert found == {name: [] for name in found}, found

    again = subprocess.run(
        [str(BIN / "bgdnoise"), "warm"], capture_output=True, text=True, env=_env(cache),
        timeout=900, check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "the cache was already warm: nothing compiled" in again.stdout


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ("temporary", "only a temporary one, removed at exit"),
        ("disabled", "(none)"),
        ("no-jit", "NUMBA_DISABLE_JIT is set"),
    ],
)
def test_warm_refuses_a_cache_that_does_not_last(monkeypatch, capsys, status, message):
    monkeypatch.setattr(_numba_cache, "cache_status", status)
    assert cli.main(["warm"]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_warm_cache_is_public():
    from bgdnoise.warm import warm_cache, warm_cases

    assert bgdnoise.warm_cache is warm_cache
    assert "warm_cache" in bgdnoise.__all__
    cases = warm_cases()
    assert {c.dtype.name for c in cases} == {"float32", "float64"}
    assert {c.axis for c in cases} == {"rows", "columns"}
    assert any(c.planes for c in cases) and any(c.readonly for c in cases)
