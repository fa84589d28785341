"""``bgdnoise warm``: after it, a correction in a new process compiles nothing.

The first test checks ``tests/fresh_jit.py``'s run, which compiles every
kernel into an empty cache (30 s to 4 minutes of one core, by machine; started
with the session, beside the other tests). It stays in ``make test`` because
it is the only guard that the warm-up still covers every kernel a correction
uses: a new kernel or signature it misses fails here, not in a user's
container.
"""

from __future__ import annotations

import json
import re

import pytest
from early import waits_on
from fresh_jit import fresh_jit_run

import bgdnoise
from bgdnoise import _numba_cache, cli


@waits_on(fresh_jit_run)
def test_warm_then_nothing_compiles(early_result):
    warm = early_result.warm
    assert warm.returncode == 0, warm.stderr
    # A kernel handed a bare constant is compiled twice (see _kernels/__init__.py).
    assert json.loads(warm.stdout.strip().splitlines()[-1])["literal"] == []
    assert str(early_result.cache) in warm.stdout
    summary = re.search(r"compiled (\d+) kernel signatures in ([\d.]+) s", warm.stdout)
    assert summary, warm.stdout
    assert int(summary[1]) > 30 and float(summary[2]) > 0
    assert "float64" in warm.stdout and "read-only" in warm.stdout

    after = early_result.after_warm
    assert after.returncode == 0, after.stderr
    found = json.loads(after.stdout.strip().splitlines()[-1])
    assert len(found) == 9
    assert found == {name: [] for name in found}, found

    again = early_result.warm_again
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
