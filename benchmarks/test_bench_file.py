"""correct_file on a synthetic full-frame _rate.fits next to a bare open+save,
and peak memory (in subprocesses) as the increment over that bare open+save."""

import json
import subprocess
import sys

import pytest
from benchdata import product

from bgdnoise.io import correct_file

GROUP = "file: NIRCam 2048x2048 _rate.fits (open, correct, write)"


@pytest.fixture(scope="module")
def rate_file(tmp_path_factory):
    return product().save(tmp_path_factory.mktemp("bench") / "jw01_nrca1_rate.fits")


@pytest.fixture(scope="module")
def cube_file(tmp_path_factory):
    p = product("NRCALONG", "rateints", (256, 2048), nints=50)
    p.model.meta.subarray.name = "SUBGRISM256"
    return p.save(tmp_path_factory.mktemp("bench") / "jw02_nrcalong_rateints.fits")


def bare_open_save(path, output):
    from stdatamodels.jwst import datamodels

    with datamodels.open(str(path)) as model:
        model.save(str(output))


@pytest.mark.benchmark(group=GROUP)
def test_bgdnoise_correct_file(benchmark, rate_file, tmp_path):
    correct_file(rate_file, tmp_path / "warm.fits")  # compile or load the cache
    out = tmp_path / "out.fits"
    _, result = benchmark.pedantic(
        correct_file, args=(rate_file, out), kwargs={"overwrite": True}, rounds=5
    )
    assert result.geometry.n_outputs == 4


@pytest.mark.benchmark(group=GROUP)
def test_baseline_datamodels_open_save(benchmark, rate_file, tmp_path):
    benchmark.pedantic(bare_open_save, args=(rate_file, tmp_path / "bare.fits"), rounds=5)


MEMORY_SCRIPT = """
import json, resource, sys
from pathlib import Path
path, mode, out = sys.argv[1], sys.argv[2], sys.argv[3]
if mode == "bare":
    from stdatamodels.jwst import datamodels
    with datamodels.open(path) as model:
        model.save(out)
else:
    from bgdnoise.io import correct_file
    correct_file(path, out, overwrite=True)
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))
"""


def peak_bytes(path, mode, out):
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(path), mode, str(out)],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("which", ["rate_file", "cube_file"])
@pytest.mark.benchmark(group="memory: correct_file peak above a bare open+save")
def test_bgdnoise_peak_memory(benchmark, which, request, tmp_path):
    from astropy.io import fits

    path = request.getfixturevalue(which)
    peak_bytes(path, "correct", tmp_path / "warm.fits")  # fill the numba cache first
    sci_bytes = fits.getdata(path, "SCI").nbytes
    measured = {}

    def measure():
        measured["bare"] = peak_bytes(path, "bare", tmp_path / "bare.fits")
        measured["ours"] = peak_bytes(path, "correct", tmp_path / "ours.fits")

    benchmark.pedantic(measure, rounds=1)
    increment = measured["ours"] - measured["bare"]
    benchmark.extra_info.update(
        sci_bytes=sci_bytes,
        bare_peak_bytes=measured["bare"],
        peak_bytes=measured["ours"],
        increment_over_sci=increment / sci_bytes,
    )
    assert measured["ours"] > 0 and measured["bare"] > 0
