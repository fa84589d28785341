"""First call in a fresh process: with an empty and with a warm numba cache.

Timed around a subprocess that imports bgdnoise and corrects one
2048x2048 frame, so compilation (cold) or cache loading (warm) is included.
"""

import os
import subprocess
import sys
import tempfile

import pytest

SCRIPT = """
import numpy as np, bgdnoise
data = np.random.default_rng(0).normal(1.0, 0.1, (2048, 2048)).astype(np.float32)
out = bgdnoise.correct_array(data, "rows")
assert out.dtype == np.float32 and np.isfinite(out).all()
"""


def _run(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    subprocess.run([sys.executable, "-c", SCRIPT], check=True, env=env)


@pytest.mark.benchmark(group="first call in a fresh process (import + 2048x2048 correct_array)")
def test_first_call_cold_cache(benchmark, tmp_path):
    dirs = iter(range(1000))

    def fresh_cache():
        return (str(tmp_path / f"cache{next(dirs)}"),), {}

    benchmark.pedantic(_run, setup=fresh_cache, rounds=2, iterations=1)


@pytest.mark.benchmark(group="first call in a fresh process (import + 2048x2048 correct_array)")
def test_first_call_warm_cache(benchmark):
    with tempfile.TemporaryDirectory() as cache:
        _run(cache)  # fills the cache
        benchmark.pedantic(_run, args=(cache,), rounds=3, iterations=1)


@pytest.mark.benchmark(group="first call in a fresh process (import + 2048x2048 correct_array)")
def test_baseline_python_startup(benchmark):
    # The floor: a bare interpreter importing numpy.
    benchmark.pedantic(
        subprocess.run,
        args=([sys.executable, "-c", "import numpy"],),
        kwargs={"check": True},
        rounds=3,
        iterations=1,
    )
