"""Command-line habits: output directories, directory arguments, help text."""

import subprocess
import sys
from pathlib import Path

import pytest
from astropy.io import fits

from bgdnoise.simulate import make_product

BIN = Path(sys.executable).parent


def run(*args):
    command = [str(BIN / "bgdnoise"), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A directory of products of every kind plus unrelated files."""
    folder = tmp_path_factory.mktemp("products")
    make_product("NRCB1", "rate", (64, 128), seed=30).save(folder / "jw1_nrcb1_rate.fits")
    make_product("NRCB1", "rateints", (64, 128), nints=2, seed=31).save(
        folder / "jw1_nrcb1_rateints.fits"
    )
    make_product("NRCB1", "cal", (64, 128), seed=32).save(folder / "jw2_nrcb1_cal.fits")
    make_product("NRCB2", "ramp", (64, 128), ngroups=3, seed=33).save(
        folder / "jw3_nrcb2_ramp.fits"
    )
    (folder / "notes.txt").write_text("not a product")
    (folder / "jw4_nrcb1_uncal.fits").write_text("not a product bgdnoise corrects")
    return folder


def test_directory_argument_means_its_products_and_o_is_created(folder, tmp_path):
    out = tmp_path / "a" / "b"
    proc = run("correct", folder, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert "4 corrected, 0 failed" in proc.stdout
    written = sorted(p.name for p in out.iterdir())
    assert written == [
        "jw1_nrcb1_rate_bdgCorr.fits",
        "jw1_nrcb1_rateints_bdgCorr.fits",  # _rate and _rateints do not collide
        "jw2_nrcb1_cal_bdgCorr.fits",
        "jw3_nrcb2_ramp_bdgCorr.fits",
    ]
    assert all(fits.getheader(out / n)["S_BDGCOR"] == "COMPLETE" for n in written)


def test_earlier_outputs_are_skipped_with_a_note(folder, tmp_path):
    proc = run("correct", folder / "jw1_nrcb1_rate.fits", "-o", tmp_path, "--save-model")
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "jw1_nrcb1_rate.fits").write_bytes((folder / "jw1_nrcb1_rate.fits").read_bytes())
    proc = run("correct", str(tmp_path / "*.fits"))
    assert proc.returncode == 1  # the copied input's output exists: no --overwrite
    assert "skipping 2 earlier bgdnoise output(s)" in proc.stderr
    assert "0 corrected, 1 failed" in proc.stdout
    proc = run("correct", str(tmp_path / "*.fits"), "--overwrite")
    assert proc.returncode == 0 and "1 corrected, 0 failed" in proc.stdout
    # Only our outputs: nothing to correct is a usage error.
    (tmp_path / "jw1_nrcb1_rate.fits").unlink()
    proc = run("correct", tmp_path)
    assert proc.returncode == 2 and "no product to correct" in proc.stderr


def test_output_directory_that_cannot_be_created(folder, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = run("correct", folder / "jw1_nrcb1_rate.fits", "-o", blocker / "sub")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "cannot create the output directory" in proc.stderr


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("correct", ["(default: 3.0)", "(default: auto)", "(default: global)", "example"]),
        ("asn", ["example", "bgdnoise asn "]),
        ("info", ["example", "bgdnoise info "]),
        ("demo", ["(default: bgdnoise_demo)", "bgdnoise demo "]),
    ],
)
def test_help_shows_defaults_and_an_example(command, expected):
    proc = run(command, "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    for piece in expected:
        assert piece in text, piece
