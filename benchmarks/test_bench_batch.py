"""A batch of K full-frame NIRCam _rate.fits with --jobs 2: serial (the
baseline), threads, and worker processes.

Two kinds of group. ``correct_files`` in this (warm) process, K = 2, 4, 8: each
call with ``executor="processes"`` starts its own spawn pool, so it pays what a
``bgdnoise correct --jobs`` run pays, a fresh interpreter per worker importing
numpy, astropy, stdatamodels and loading the cached kernels, while serial and
threads reuse this process's imports. The ``bgdnoise correct`` command end to
end, K = 8, 32 (slow): there every executor starts from a fresh interpreter, as
users run it. ``choose_executor("auto", ...)`` takes its rule from these
numbers (benchmarks/batch_results.md). The K inputs are one saved product under
K names (symlinks), all in the page cache.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from benchdata import product

from bgdnoise.batch import correct_files
from bgdnoise.io import correct_file

JOBS = 2
EXECUTORS = ["threads", "processes"]  # next to the serial baseline
SAYS = {"serial": "one at a time", "threads": f"in {JOBS} threads",
        "processes": f"in {JOBS} worker processes"}  # fmt: skip


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """``inputs(k)``: k input files, made once for the module."""
    directory = tmp_path_factory.mktemp("batch_in")
    first = product().save(directory / "jw01234001001_01101_00001_nrca1_rate.fits")
    correct_file(first, directory / "warm.fits")  # compile or load the cache, not timed
    made = [first]

    def files(k):
        while len(made) < k:
            link = directory / f"jw01234001001_01101_{len(made) + 1:05d}_nrca1_rate.fits"
            link.symlink_to(first.name)
            made.append(link)
        return made[:k]

    return files


def check_outputs(files, out):
    for path in files:
        assert (out / f"{path.name.removesuffix('.fits')}_bdgCorr.fits").is_file()
    shutil.rmtree(out)  # 48 MiB each


def run_batch(benchmark, files, out, executor):
    out.mkdir()
    options = {"output": out, "overwrite": True}
    benchmark.group = f"batch: {len(files)} NIRCam 2048x2048 _rate.fits, --jobs {JOBS}"
    benchmark.extra_info.update(files=len(files), jobs=JOBS, executor=executor)
    outcomes = benchmark.pedantic(
        lambda: list(correct_files(files, options, jobs=JOBS, executor=executor)),
        rounds=3,
        iterations=1,
    )
    assert [o.error for o in outcomes] == [None] * len(files)
    assert sorted(o.path for o in outcomes) == sorted(files)
    check_outputs(files, out)


BATCH_SIZES = [2, 4, pytest.param(8, marks=pytest.mark.slow)]


@pytest.mark.parametrize("k", BATCH_SIZES)
def test_baseline_serial(benchmark, inputs, tmp_path, k):
    run_batch(benchmark, inputs(k), tmp_path / "out", "serial")


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("k", BATCH_SIZES)
def test_bgdnoise_batch(benchmark, inputs, tmp_path, k, executor):
    run_batch(benchmark, inputs(k), tmp_path / "out", executor)


def bgdnoise_command():
    script = Path(sys.executable).with_name("bgdnoise")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bgdnoise.cli"]


def run_cli(benchmark, files, out, executor):
    command = [*bgdnoise_command(), "correct", *map(str, files), "-o", str(out),
               "--jobs", str(JOBS), "--executor", executor, "--overwrite"]  # fmt: skip
    benchmark.group = f"CLI end to end: bgdnoise correct {len(files)} files --jobs {JOBS}"
    benchmark.extra_info.update(files=len(files), jobs=JOBS, executor=executor)
    proc = benchmark.pedantic(
        subprocess.run,
        args=(command,),
        kwargs={"capture_output": True, "text": True, "timeout": 900},
        rounds=3,
        iterations=1,
    )
    assert proc.returncode == 0, proc.stderr
    # The run says which executor it used.
    assert f"correcting {len(files)} files {SAYS[executor]}" in proc.stderr
    check_outputs(files, out)


CLI_SIZES = [pytest.param(8, marks=pytest.mark.slow), pytest.param(32, marks=pytest.mark.slow)]


@pytest.mark.parametrize("k", CLI_SIZES)
def test_baseline_cli_serial(benchmark, inputs, tmp_path, k):
    run_cli(benchmark, inputs(k), tmp_path / "out", "serial")


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("k", CLI_SIZES)
def test_bgdnoise_cli(benchmark, inputs, tmp_path, k, executor):
    run_cli(benchmark, inputs(k), tmp_path / "out", executor)
