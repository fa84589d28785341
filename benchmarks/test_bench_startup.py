"""First call in a fresh process: with an empty and with a warm numba cache.

Timed around a subprocess that imports bgdnoise and corrects one
2048x2048 frame, so compilation (cold) or cache loading (warm) is included.
With the kernels compiled at install (``bgdnoise._kernels.aot``) a cold run
compiles nothing; the ``_jit`` variants set ``BGDNOISE_AOT=0`` and time what
numba's compilation on first use costs where that module is not built.

The first run on a file, as a new user, a fresh container or a new cluster
worker has it (issue 13's target: at most jwst's first run): a fresh process
with an empty ``NUMBA_CACHE_DIR`` that imports bgdnoise and runs
``correct_file`` with the defaults on a full-frame NIRCam ``_rate.fits``,
next to a fresh process that imports jwst and runs ``clean_flicker_noise``
once on the same file (opened with stdatamodels, the result saved). Each
subprocess reports its import, run and numba compile seconds (the outermost
``numba:compile`` events), kept in the benchmark's ``extra_info``. A third
benchmark makes the same first run on a cache filled by ``bgdnoise warm``
beforehand (a container image, a worker's setup). All three are slow (a cold
start is 30-60 s here): ``make bench`` only.
"""

import json
import os
import statistics
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


JIT_ONLY = {"BGDNOISE_AOT": "0"}


def _run(cache_dir, extra_env=None):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, **(extra_env or {}))
    subprocess.run([sys.executable, "-c", SCRIPT], check=True, env=env)


def _compiled_in_use():
    from bgdnoise._kernels import aot

    return aot.status() == "ok"


def _cold_first_calls(benchmark, tmp_path, extra_env):
    dirs = iter(range(1000))

    def fresh_cache():
        return (str(tmp_path / f"cache{next(dirs)}"), extra_env), {}

    benchmark.pedantic(_run, setup=fresh_cache, rounds=2, iterations=1)


@pytest.mark.slow
@pytest.mark.benchmark(group="first call in a fresh process (import + 2048x2048 correct_array)")
def test_first_call_cold_cache(benchmark, tmp_path):
    _cold_first_calls(benchmark, tmp_path, None)


# Slow: a cold compile (30-40 s here); tests/test_warm.py already compiles
# from an empty cache in `make test`.
@pytest.mark.slow
@pytest.mark.benchmark(group="first call in a fresh process (import + 2048x2048 correct_array)")
def test_first_call_cold_cache_jit(benchmark, tmp_path):
    _cold_first_calls(benchmark, tmp_path, JIT_ONLY)


@pytest.mark.slow
@pytest.mark.benchmark(group="first call in a fresh process (import + 2048x2048 correct_array)")
def test_first_call_warm_cache(benchmark):
    with tempfile.TemporaryDirectory() as cache:
        _run(cache, JIT_ONLY)  # fills the cache
        benchmark.pedantic(_run, args=(cache, JIT_ONLY), rounds=3, iterations=1)


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


# --- the first run on a file: bgdnoise with an empty cache vs jwst ---------------------------

FILE_GROUP = "first run on a 2048x2048 _rate.fits in a fresh process (cold numba cache vs jwst)"

# Numba's compile events: the outermost ones of each thread add up to the compile time.
COMPILE_TIMER = """
import threading, time
from numba.core import event

class CompileTimer(event.Listener):
    def __init__(self):
        self.seconds, self.signatures, self.local = 0.0, 0, threading.local()

    def on_start(self, ev):
        self.local.__dict__.setdefault("stack", []).append(time.perf_counter())

    def on_end(self, ev):
        stack = self.local.__dict__.setdefault("stack", [])
        elapsed = time.perf_counter() - stack.pop()
        module = getattr(ev.data["dispatcher"].py_func, "__module__", None) or ""
        self.signatures += module.startswith("bgdnoise.")
        if not stack:
            self.seconds += elapsed

timer = CompileTimer()
event.register("numba:compile", timer)
"""

FILE_BGDNOISE = (
    """
import json, sys, time
start = time.perf_counter()
"""
    + COMPILE_TIMER
    + """
import bgdnoise
imported = time.perf_counter()
bgdnoise.correct_file(sys.argv[1], sys.argv[2], overwrite=True)
print(json.dumps({"import_seconds": imported - start, "run_seconds": time.perf_counter() - imported,
                  "compile_seconds": timer.seconds, "compiled_signatures": timer.signatures}))
"""
)

# jwst does not import numba: no listener (importing numba for it would slow the baseline);
# compile_seconds is 0 unless numba was imported along the way (then unknown: None).
FILE_JWST = """
import json, logging, sys, time
start = time.perf_counter()
from jwst.clean_flicker_noise.clean_flicker_noise import do_correction
from stdatamodels.jwst import datamodels
imported = time.perf_counter()
for name in ("jwst", "stpipe"):
    logging.getLogger(name).setLevel(logging.ERROR)
with datamodels.open(sys.argv[1]) as model:
    output, *_, status = do_correction(model, fit_method="median", background_method="median")
    assert status == "COMPLETE", status
    output.save(sys.argv[2])
print(json.dumps({"import_seconds": imported - start, "run_seconds": time.perf_counter() - imported,
                  "compile_seconds": None if "numba" in sys.modules else 0.0}))
"""


@pytest.fixture(scope="module")
def full_frame_rate(tmp_path_factory):
    """A simulated sparse field on a real NIRCam full-frame header (4 outputs)."""
    from quality import FULL, read_header

    from bgdnoise.sim import readout_for, simulate_rate

    primary, sci = read_header(FULL, "primary"), read_header(FULL, "sci")
    sim = simulate_rate("sparse", shape=(2048, 2048), seed=1, readout=readout_for(primary))
    return sim.save(tmp_path_factory.mktemp("first-run") / "jw01_nrca2_rate.fits", primary, sci)


def _first_run(script, path, output, cache_dir, runs, extra_env=None):
    env = dict(os.environ, **(extra_env or {}))
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    proc = subprocess.run(
        [sys.executable, "-c", script, str(path), str(output)],
        check=True, capture_output=True, text=True, env=env,
    )  # fmt: skip
    runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))


def _keep(benchmark, runs):
    """Each round's seconds in ``extra_info``, and their medians."""
    benchmark.extra_info["runs"] = runs
    for key in runs[0]:
        values = [r[key] for r in runs if r[key] is not None]
        if values:
            benchmark.extra_info[key] = statistics.median(values)


def _cold_first_runs(benchmark, path, tmp_path, extra_env):
    runs, dirs = [], iter(range(1000))

    def fresh_cache():
        n = next(dirs)
        args = (FILE_BGDNOISE, path, tmp_path / f"out{n}_rate_bdgCorr.fits")
        return (*args, str(tmp_path / f"cache{n}"), runs, extra_env), {}

    benchmark.pedantic(_first_run, setup=fresh_cache, rounds=2, iterations=1)
    _keep(benchmark, runs)
    return runs


@pytest.mark.slow
@pytest.mark.benchmark(group=FILE_GROUP)
def test_first_run_correct_file_cold_cache(benchmark, full_frame_rate, tmp_path):
    """As installed: the kernels compiled at install, nothing to compile."""
    runs = _cold_first_runs(benchmark, full_frame_rate, tmp_path, None)
    compiled_in_use = _compiled_in_use()
    benchmark.extra_info["compiled_kernels"] = compiled_in_use
    assert all((r["compiled_signatures"] == 0) == compiled_in_use for r in runs)


@pytest.mark.slow
@pytest.mark.benchmark(group=FILE_GROUP)
def test_first_run_correct_file_cold_cache_jit(benchmark, full_frame_rate, tmp_path):
    """Numba's JIT kernels only (``BGDNOISE_AOT=0``, or no compiler at install)."""
    runs = _cold_first_runs(benchmark, full_frame_rate, tmp_path, JIT_ONLY)
    assert all(r["compiled_signatures"] > 0 for r in runs)


@pytest.mark.slow
@pytest.mark.benchmark(group=FILE_GROUP)
def test_first_run_correct_file_after_warm(benchmark, full_frame_rate, tmp_path):
    """The same first run on a cache filled by ``bgdnoise warm`` (run once, untimed)."""
    cache = str(tmp_path / "cache")
    bgdnoise = os.path.join(os.path.dirname(sys.executable), "bgdnoise")
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, **JIT_ONLY)
    subprocess.run([bgdnoise, "warm"], check=True, capture_output=True, env=env)
    runs = []
    out = tmp_path / "out_rate_bdgCorr.fits"
    args = (FILE_BGDNOISE, full_frame_rate, out, cache, runs, JIT_ONLY)
    benchmark.pedantic(_first_run, args=args, rounds=3, iterations=1)
    _keep(benchmark, runs)
    assert all(r["compiled_signatures"] == 0 for r in runs)


@pytest.mark.slow
@pytest.mark.benchmark(group=FILE_GROUP)
def test_baseline_jwst_first_run(benchmark, full_frame_rate, tmp_path):
    runs = []
    args = (FILE_JWST, full_frame_rate, tmp_path / "jwst_rate.fits", None, runs)
    benchmark.pedantic(_first_run, args=args, rounds=3, iterations=1)
    _keep(benchmark, runs)
