"""The command line, the association rewrite and the jwst Step, as a user runs them."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from bgdnoise.asn import rewrite_association
from bgdnoise.simulate import make_product

BIN = Path(sys.executable).parent


def run(*args, cwd=None, env=None):
    command = [str(BIN / "bgdnoise"), *map(str, args)]
    return subprocess.run(
        command, capture_output=True, text=True, cwd=cwd, env=env, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def rates(tmp_path_factory):
    """Two small NIRCam rate files and one NIRISS one."""
    folder = tmp_path_factory.mktemp("rates")
    paths = []
    for i, detector in enumerate(["NRCB1", "NRCB2", "NIS"]):
        product = make_product(detector, "rate", (128, 256), seed=20 + i)
        paths.append(product.save(folder / f"jw0100{i}_{detector.lower()}_rate.fits"))
    return paths


def fresh_copy(paths, folder):
    folder.mkdir(exist_ok=True)
    return [Path(shutil.copy(p, folder / p.name)) for p in paths]


def test_correct_several_files_with_a_glob(rates, tmp_path):
    files = fresh_copy(rates, tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    proc = run("correct", str(tmp_path / "in" / "*_rate.fits"), "-o", out, "--odd-even")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 4 and lines[-1].startswith("3 corrected, 0 failed")
    # stderr is a pipe, not a terminal: no progress bar's redraws in it.
    assert "\r" not in proc.stderr and "file/s" not in proc.stderr
    assert "rows, 1 output(s), stripe RMS" in lines[0]
    assert "columns" in lines[2]
    for f in files:
        corrected = out / f.name.replace(".fits", "_bdgCorr.fits")
        assert fits.getheader(corrected)["S_BDGCOR"] == "COMPLETE"


def test_failing_file_reported_and_others_go_on(rates, tmp_path):
    files = fresh_copy(rates[:2], tmp_path)
    bad = tmp_path / "broken_rate.fits"
    bad.write_text("not fits")
    proc = run("correct", files[0], bad, files[1])
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("bgdnoise: error")]
    assert len(errors) == 1 and "broken_rate.fits" in errors[0] and "not a FITS file" in errors[0]
    assert "2 corrected, 1 failed" in proc.stdout
    # Existing outputs: an error per file unless --overwrite.
    again = run("correct", files[0])
    assert again.returncode == 1 and "--overwrite" in again.stderr
    assert run("correct", files[0], "--overwrite").returncode == 0


def test_usage_errors_exit_2(tmp_path):
    assert run().returncode == 2
    assert run("correct").returncode == 2
    assert run("correct", "x.fits", "--scale", "median").returncode == 2
    assert run("correct", "x.fits", "--outputs", "three").returncode == 2
    proc = run("correct", str(tmp_path / "*.fits"))
    assert proc.returncode == 2 and "no file matches" in proc.stderr
    (tmp_path / "plain").write_text("")
    assert run("correct", "x.fits", "-o", tmp_path / "plain" / "sub").returncode == 2


def test_jobs_in_a_spawned_pool_match_serial(rates, tmp_path):
    serial = fresh_copy(rates, tmp_path / "serial")
    pooled = fresh_copy(rates, tmp_path / "pooled")
    assert run("correct", *serial).returncode == 0
    proc = run("correct", *pooled, "--jobs", "2")
    assert proc.returncode == 0, proc.stderr
    for a, b in zip(serial, pooled, strict=True):
        name = a.name.replace(".fits", "_bdgCorr.fits")
        np.testing.assert_array_equal(
            fits.getdata(a.parent / name, "SCI"), fits.getdata(b.parent / name, "SCI")
        )


def test_info_before_and_after(rates, tmp_path):
    (source,) = fresh_copy(rates[:1], tmp_path)
    proc = run("info", source)
    assert proc.returncode == 0
    assert "one level per row" in proc.stdout and "not corrected by bgdnoise" in proc.stdout
    assert "correctable: yes" in proc.stdout
    slits = tmp_path / "slits_cal.fits"
    shutil.copy(source, slits)
    fits.setval(slits, "DATAMODL", value="MultiSlitModel")
    refused = run("info", slits)
    assert refused.returncode == 0 and "correctable: no: MultiSlitModel is not supported" in (
        refused.stdout
    )
    run("correct", source)
    proc = run("info", tmp_path / source.name.replace(".fits", "_bdgCorr.fits"))
    assert "corrected by bgdnoise" in proc.stdout and "not corrected" not in proc.stdout
    assert "correctable: no: already corrected" in proc.stdout  # as correct would say
    bad = run("info", tmp_path / "missing.fits")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1


def test_demo_writes_and_corrects(tmp_path):
    proc = run("demo", tmp_path / "demo")
    assert proc.returncode == 0, proc.stderr
    # "... (line-mean RMS, after / before): 0.107 (source bias ...); the plain median
    # would leave 1.600 ..." on a galaxy spanning hundreds of lines.
    ours = float(proc.stdout.split("after / before): ")[1].split(" ")[0])
    plain = float(proc.stdout.split("would leave ")[1].split(" ")[0])
    assert ours < 0.3 and ours < 0.2 * plain
    assert "stripe excess" in proc.stdout
    assert len(list((tmp_path / "demo").glob("*_rate_bdgCorr.fits"))) == 1


# --------------------------------------------------------------------------
# Associations
# --------------------------------------------------------------------------
def make_asn(members, path):
    from jwst.associations.asn_from_list import asn_from_list
    from jwst.associations.lib.rules_level2_base import DMSLevel2bBase

    asn = asn_from_list([m.name for m in members], rule=DMSLevel2bBase, product_name="test")
    _, serialized = asn.dump(format="json")
    path.write_text(serialized)
    return path


def test_rewrite_association_points_at_corrected_files(rates, tmp_path):
    from jwst.associations import load_asn

    files = fresh_copy(rates[:2], tmp_path)
    asn_path = make_asn(files, tmp_path / "image2_asn.json")
    original = asn_path.read_text()
    with pytest.raises(ValueError, match="no corrected counterpart.*allow_missing"):
        rewrite_association(asn_path)
    run("correct", files[0])
    output, replaced = rewrite_association(asn_path, allow_missing=True)
    assert replaced == 1
    assert asn_path.read_text() == original  # input untouched
    with output.open() as fh:
        loaded = load_asn(fh)
    names = [m["expname"] for p in loaded["products"] for m in p["members"]]
    assert names == [files[0].name.replace(".fits", "_bdgCorr.fits"), files[1].name]
    before = json.loads(original)
    after = json.loads(output.read_text())
    before_members = [m for p in before["products"] for m in p["members"]]
    after_members = [m for p in after["products"] for m in p["members"]]
    for old, new in zip(before_members, after_members, strict=True):
        assert {k: v for k, v in old.items() if k != "expname"} == {
            k: v for k, v in new.items() if k != "expname"
        }
    assert {k: v for k, v in before.items() if k != "products"} == {
        k: v for k, v in after.items() if k != "products"
    }


def test_asn_command_with_search_dir(rates, tmp_path):
    files = fresh_copy(rates[:2], tmp_path / "raw")
    corrected = tmp_path / "clean"
    corrected.mkdir()
    assert run("correct", *files, "-o", corrected).returncode == 0
    asn_path = make_asn(files, tmp_path / "raw" / "asn.json")
    out = tmp_path / "clean" / "asn_clean.json"
    proc = run("asn", asn_path, "-o", out, "--search-dir", corrected)
    assert proc.returncode == 0, proc.stderr
    products = json.loads(out.read_text())["products"]
    assert [m["expname"] for p in products for m in p["members"]] == [
        f.name.replace(".fits", "_bdgCorr.fits") for f in files
    ]
    missing = run("asn", asn_path, "-o", tmp_path / "x.json")
    assert missing.returncode == 1 and "--allow-missing" in missing.stderr


# --------------------------------------------------------------------------
# Habits: output directories, directory arguments, help text
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def products_folder(tmp_path_factory):
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


def test_directory_argument_means_its_products_and_o_is_created(products_folder, tmp_path):
    out = tmp_path / "a" / "b"
    proc = run("correct", products_folder, "-o", out)
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


def test_earlier_outputs_are_skipped_with_a_note(products_folder, tmp_path):
    proc = run("correct", products_folder / "jw1_nrcb1_rate.fits", "-o", tmp_path, "--save-model")
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "jw1_nrcb1_rate.fits").write_bytes(
        (products_folder / "jw1_nrcb1_rate.fits").read_bytes()
    )
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


def test_output_directory_that_cannot_be_created(products_folder, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = run("correct", products_folder / "jw1_nrcb1_rate.fits", "-o", blocker / "sub")
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


def test_truncated_file_is_one_line_on_stderr(rates, tmp_path):
    # astropy, imported by the first file's correction inside the recording of
    # its warnings, took them over: three of its own log lines came first.
    data = rates[0].read_bytes()
    cut = tmp_path / "cut_rate.fits"
    cut.write_bytes(data[: len(data) - 5000])
    proc = run("correct", cut)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        line for line in proc.stderr.splitlines() if line.startswith("bgdnoise: error:")
    ]
    assert len(proc.stderr.splitlines()) == 1 and "truncated" in proc.stderr
    assert str(cut) in proc.stderr  # the path as given: which directory's file it was
    # A message that names the path as given is not led by it again.
    gone = run("correct", tmp_path / "gone_rate.fits")
    assert gone.returncode == 1 and gone.stderr.count("gone_rate.fits") == 1
    assert str(tmp_path / "gone_rate.fits") in gone.stderr and "no such file" in gone.stderr


def test_o_with_a_fits_name_is_the_output_file(rates, tmp_path):
    (source,) = fresh_copy(rates[:1], tmp_path / "in")
    target = tmp_path / "new" / "single.fits"
    proc = run("correct", source, "-o", target)
    assert proc.returncode == 0, proc.stderr
    assert target.is_file() and fits.getheader(target)["S_BDGCOR"] == "COMPLETE"
    # With a trailing slash the name is a directory's.
    folder = tmp_path / "into.fits"
    proc = run("correct", source, "-o", f"{folder}/")
    assert proc.returncode == 0, proc.stderr
    assert (folder / source.name.replace(".fits", "_bdgCorr.fits")).is_file()
    # Several inputs cannot share one output file: a usage error, nothing written.
    several = fresh_copy(rates[:2], tmp_path / "two")
    proc = run("correct", *several, "-o", tmp_path / "both.fits")
    assert proc.returncode == 2 and "names one output file" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "both.fits").exists()


def test_top_level_help_lists_every_command_example_once():
    proc = subprocess.run(
        [str(BIN / "bgdnoise"), "--help"], capture_output=True, text=True, timeout=300, check=False
    )
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and lines.count("examples:") == 1 and "example:" not in lines
    for command in ("correct", "asn", "info", "demo", "warm"):
        assert any(line.strip().startswith(f"bgdnoise {command}") for line in lines), command
