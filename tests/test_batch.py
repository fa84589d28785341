"""Batches: a dying worker costs only its file; executors; reported outcomes."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from bgdnoise.batch import MIN_FILES_PER_THREAD, choose_executor
from bgdnoise.io import correct_file
from bgdnoise.simulate import make_product

BIN = Path(sys.executable).parent

# Loaded by every Python process started with it on PYTHONPATH: in worker
# processes only, the file called "victim" kills its worker, as the OOM
# killer would.
KILLER = """
import os, signal, sys
if "--multiprocessing-fork" in sys.argv:
    import bgdnoise.batch as batch
    real = batch.correct_one
    def correct_one(path, options):
        if "victim" in str(path):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(path, options)
    batch.correct_one = correct_one
"""


def run(*args, env=None):
    command = [str(BIN / "bgdnoise"), *map(str, args)]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=600, check=False, env=env
    )


@pytest.fixture(scope="module")
def six(tmp_path_factory):
    folder = tmp_path_factory.mktemp("six")
    names = ["jw1", "jw2", "victim", "jw4", "jw5", "jw6"]
    return [
        make_product("NRCB1", "rate", (64, 128), seed=50 + i).save(folder / f"{n}_nrcb1_rate.fits")
        for i, n in enumerate(names)
    ]


def fresh(paths, folder):
    folder.mkdir()
    return [Path(shutil.copy(p, folder / p.name)) for p in paths]


def test_a_killed_worker_costs_only_its_file(six, tmp_path):
    files = fresh(six, tmp_path / "in")
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(KILLER)
    import os

    env = dict(os.environ, PYTHONPATH=str(hooks))
    proc = run("correct", *files, "--jobs", "2", "--executor", "processes", env=env)
    assert proc.returncode == 1
    assert "in 2 worker processes" in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("bgdnoise: error")]
    assert len(errors) == 1 and "victim" in errors[0] and "killed by SIGKILL" in errors[0]
    assert "5 corrected, 1 failed" in proc.stdout
    written = sorted(p.name for p in (tmp_path / "in").glob("*_bdgCorr.fits"))
    assert written == sorted(
        f.name.replace(".fits", "_bdgCorr.fits") for f in files if "victim" not in f.name
    )


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_parallel_executors_match_serial(six, tmp_path, executor):
    serial = fresh(six[:3], tmp_path / "serial")
    parallel = fresh(six[:3], tmp_path / "parallel")
    assert run("correct", *serial).returncode == 0
    proc = run("correct", *parallel, "--jobs", "2", "--executor", executor)
    assert proc.returncode == 0, proc.stderr
    assert {"threads": "in 2 threads", "processes": "in 2 worker processes"}[
        executor
    ] in proc.stderr
    for a, b in zip(serial, parallel, strict=True):
        name = a.name.replace(".fits", "_bdgCorr.fits")
        np.testing.assert_array_equal(
            fits.getdata(a.parent / name, "SCI"), fits.getdata(b.parent / name, "SCI")
        )


def test_executor_rule():
    assert choose_executor("auto", 1, 4) == "serial"
    assert choose_executor("auto", 10, 1) == "serial"
    assert choose_executor("auto", MIN_FILES_PER_THREAD * 2 - 1, 2) == "serial"
    assert choose_executor("auto", MIN_FILES_PER_THREAD * 2, 2) == "threads"
    assert choose_executor("threads", 3, 2) == "threads"
    with pytest.raises(ValueError, match="executor must be one of"):
        choose_executor("cluster", 3, 2)


# --------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rate")
    return make_product("NRCB1", "rate", (256, 512), seed=60).save(folder / "jw60_nrcb1_rate.fits")


def test_truncated_files_are_named_truncated(rate, tmp_path):
    data = rate.read_bytes()
    cut_inside = tmp_path / "inside_rate.fits"
    cut_inside.write_bytes(data[: len(data) - 5000])
    with pytest.raises(ValueError, match="truncated or damaged.*copy or download it again"):
        correct_file(cut_inside)
    # Cut exactly at the end of an extension: the ASDF extension is missing too.
    cut_between = tmp_path / "between_rate.fits"
    with fits.open(rate) as hdul:
        info = hdul["SCI"].fileinfo()
    cut_between.write_bytes(data[: info["datLoc"] + info["datSpan"]])
    with pytest.raises(ValueError, match="no .*DQ extension.*no ASDF extension.*truncated"):
        correct_file(cut_between)


def test_dq_shape_message_shows_the_files_shapes(rate, tmp_path):
    broken = Path(shutil.copy(rate, tmp_path / "jw61_nrcb1_rate.fits"))
    with fits.open(broken, mode="update") as hdul:
        hdul["DQ"].data = np.zeros((256, 256), np.uint32)
    with pytest.raises(
        ValueError, match=r"DQ array has shape \(256, 256\) but SCI has \(256, 512\)"
    ):
        correct_file(broken)


def test_all_masked_planes_are_reported(tmp_path):
    product = make_product("NRCB1", "rateints", (64, 128), nints=3, seed=62)
    product.model.dq[1] |= 1  # integration 2: every pixel DO_NOT_USE
    source = product.save(tmp_path / "jw62_nrcb1_rateints.fits")
    output, result = correct_file(source)
    assert result.empty_planes == (1,) and result.status == "COMPLETE"
    assert "NOT CORRECTED in 1 of 3" in result.summary()
    header = fits.getheader(output)
    assert (header["S_BDGCOR"], header["BDGEMPTY"]) == ("COMPLETE", 1)
    np.testing.assert_array_equal(fits.getdata(output, "SCI")[1], fits.getdata(source, "SCI")[1])
    proc = run("correct", source, "--overwrite")
    assert proc.returncode == 3 and "planes left uncorrected" in proc.stdout

    product.model.dq[:] |= 1  # nothing usable at all
    source = product.save(tmp_path / "jw63_nrcb1_rateints.fits")
    output, result = correct_file(source)
    assert result.status == "SKIPPED"
    assert fits.getheader(output)["S_BDGCOR"] == "SKIPPED"
    assert correct_file(output, tmp_path / "again.fits")  # not marked as corrected


def test_threads_keep_each_files_warnings_and_leave_the_process_as_it_was(monkeypatch):
    # Two files corrected at once in threads, each warning while the other is
    # inside its correction too (a barrier makes them overlap): each outcome
    # must note its own warning only, and the warnings machinery must be as
    # before the batch. (warnings.catch_warnings per thread put both warnings
    # in one file's notes, and its nested exits are not thread-safe.)
    import threading
    import warnings
    from types import SimpleNamespace

    import bgdnoise.io
    from bgdnoise.batch import correct_files

    both_inside = threading.Barrier(2, timeout=30)
    both_warned = threading.Barrier(2, timeout=30)

    def fake_correct_file(path, **options):
        both_inside.wait()
        warnings.warn(f"about {Path(path).name}", UserWarning, stacklevel=1)
        both_warned.wait()
        return None, SimpleNamespace(summary=lambda: "ok", empty_planes=())

    monkeypatch.setattr(bgdnoise.io, "correct_file", fake_correct_file)
    shown_before, filters_before = warnings.showwarning, list(warnings.filters)
    outcomes = list(correct_files([Path("a.fits"), Path("b.fits")], {}, jobs=2,
                                  executor="threads"))  # fmt: skip
    notes = {o.path.name: o.notes for o in outcomes}
    assert notes == {"a.fits": ("a.fits: about a.fits",), "b.fits": ("b.fits: about b.fits",)}
    assert warnings.showwarning is shown_before
    assert warnings.filters == filters_before
    with pytest.warns(UserWarning, match="after the batch"):  # not swallowed
        warnings.warn("after the batch", UserWarning, stacklevel=1)


def test_damage_inside_a_header_or_after_the_last_extension_is_named(rate, tmp_path):
    data = rate.read_bytes()
    with fits.open(rate) as hdul:
        dq_header_start = hdul["DQ"].fileinfo()["hdrLoc"]
    cut_in_header = tmp_path / "header_rate.fits"
    cut_in_header.write_bytes(data[: dq_header_start + 1000])  # mid-way through DQ's header
    extra = tmp_path / "extra_rate.fits"
    extra.write_bytes(data + b"garbage" * 500)
    for damaged in (cut_in_header, extra):
        with pytest.raises(ValueError, match="truncated or damaged.*copy or download it again"):
            correct_file(damaged)


def test_reading_a_files_structure_leaves_the_warnings_machinery_alone(rate, monkeypatch):
    # catch_warnings swaps process-wide state: threads opening files at once
    # (a Dask worker) would restore each other's filters.
    import warnings

    from bgdnoise._files import read_structure

    def no_catch_warnings(*args, **kwargs):
        raise AssertionError("read_structure used warnings.catch_warnings")

    monkeypatch.setattr(warnings, "catch_warnings", no_catch_warnings)
    header, present, last = read_structure(rate)
    assert {"SCI", "DQ"} <= present and last in present and header["INSTRUME"] == "NIRCAM"
