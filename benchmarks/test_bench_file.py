"""correct_file on a synthetic full-frame _rate.fits next to a bare open+save
and to correct_array on the same SCI and DQ with the options correct_file
takes from the header (issue 13: correct_file at most correct_array plus 1.5x
the bare open+save), and peak memory (in subprocesses) as the increment over
that bare open+save."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from benchdata import product, warm

from bgdnoise import correct_array
from bgdnoise.instruments import readout_geometry
from bgdnoise.io import correct_file

GROUP = "file: NIRCam 2048x2048 _rate.fits (open, correct, write)"


@pytest.fixture(scope="module")
def rate_file(memory_dir):
    return product().save(memory_dir / "jw01_nrca1_rate.fits")


@pytest.fixture(scope="module")
def cube_file(tmp_path_factory):
    p = product("NRCALONG", "rateints", (256, 2048), nints=50)
    p.model.meta.subarray.name = "SUBGRISM256"
    return p.save(tmp_path_factory.mktemp("bench") / "jw02_nrcalong_rateints.fits")


def bare_open_save(path, output):
    from stdatamodels.jwst import datamodels

    with datamodels.open(str(path)) as model:
        model.save(str(output))


@pytest.fixture(scope="module")
def memory_dir():
    """A folder in memory (tmpfs) where there is one, else on disk.

    The file layer's own work is timed, not the disk's: on ext4, renaming a
    fresh file over an existing one (how correct_file replaces a file
    atomically) makes the kernel flush the new file's data at once
    (``auto_da_alloc``: 30-80 ms for a 64 MiB product here), which a bare
    save that truncates the old file does not pay, and writing new files
    each round times the disk's write-back (a bare save then took 67-162 ms).
    """
    shm = Path("/dev/shm")
    # The rate file and three outputs take about 300 MB (a container's default
    # /dev/shm is 64 MiB): on disk where tmpfs is missing, small or read-only.
    usable = shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 1 << 30
    folder = Path(tempfile.mkdtemp(dir=shm if usable else None))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.benchmark(group=GROUP)
def test_bgdnoise_correct_file(benchmark, rate_file, memory_dir):
    correct_file(rate_file, memory_dir / "warm.fits")  # compile or load the cache
    out = memory_dir / "out.fits"
    _, result = benchmark.pedantic(
        correct_file, args=(rate_file, out), kwargs={"overwrite": True}, rounds=5
    )
    assert result.geometry.n_outputs == 4


@pytest.mark.benchmark(group=GROUP)
def test_baseline_datamodels_open_save(benchmark, rate_file, memory_dir):
    benchmark.pedantic(bare_open_save, args=(rate_file, memory_dir / "bare.fits"), rounds=5)


@pytest.fixture(scope="module")
def rate_arrays(rate_file):
    """SCI and DQ of the file as datamodels reads them (big-endian, as
    correct_file gets them) and the readout geometry correct_file uses."""
    from stdatamodels.jwst import datamodels

    with datamodels.open(str(rate_file)) as model:
        return np.array(model.data), np.array(model.dq), readout_geometry(model)


@pytest.mark.benchmark(group=GROUP)
def test_bgdnoise_correct_array_same_data(benchmark, rate_arrays):
    sci, dq, geometry = rate_arrays
    # What correct_file passes: axis and n_outputs from the header, defaults otherwise.
    options = {"dq": dq, "n_outputs": geometry.n_outputs}
    corrected = benchmark.pedantic(
        warm(correct_array, sci, geometry.axis, **options),
        args=(sci, geometry.axis),
        kwargs=options,
        rounds=5,
    )
    assert geometry.axis == "rows" and geometry.n_outputs == 4
    assert corrected.shape == sci.shape and corrected.dtype == np.float32


MEMORY_SCRIPT = """
import gc, json, sys
path, warm, mode, out = sys.argv[1:5]

def run(path):
    if mode == "bare":
        from stdatamodels.jwst import datamodels
        with datamodels.open(path) as model:
            model.save(out)
    else:
        from bgdnoise.io import correct_file
        correct_file(path, out, overwrite=True)

def kib(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

run(warm)  # imports, schemas, numba cache: loaded on a small file, not measured
gc.collect()
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # resets the peak (VmHWM) to the current resident size
base = kib("VmRSS")
run(path)
print(json.dumps({"base": base, "peak": kib("VmHWM")}))
"""


def peak_increment(path, warm, mode, out):
    """Peak resident memory of one operation above the process's size before it."""
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(path), str(warm), mode, str(out)],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["peak"] - result["base"]


@pytest.mark.parametrize("which", ["rate_file", "cube_file"])
@pytest.mark.benchmark(group="memory: correct_file peak above a bare open+save")
def test_bgdnoise_peak_memory(benchmark, which, request, tmp_path):
    from astropy.io import fits

    from bgdnoise.simulate import make_product

    path = request.getfixturevalue(which)
    sci_bytes = fits.getdata(path, "SCI").nbytes
    # The same kind of product, small: warms the process up before measuring.
    kind = "rate" if which == "rate_file" else "rateints"
    warm = make_product("NRCA1", kind, (64, 64), nints=2, seed=1).save(tmp_path / "warm.fits")
    measured = {}

    def measure():
        measured["bare"] = peak_increment(path, warm, "bare", tmp_path / "bare.fits")
        measured["ours"] = peak_increment(path, warm, "correct", tmp_path / "ours.fits")

    benchmark.pedantic(measure, rounds=1)
    benchmark.extra_info.update(
        sci_bytes=sci_bytes,
        bare_peak_bytes=measured["bare"],
        peak_bytes=measured["ours"],
        increment_over_sci=(measured["ours"] - measured["bare"]) / sci_bytes,
    )
    # A bare open+save holds at least the SCI array; so does a correction.
    assert measured["bare"] > sci_bytes and measured["ours"] > sci_bytes
