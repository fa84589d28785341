"""The jwst Step: strun, logging, marked inputs, containers, associations, naming, hooks."""

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from bgdnoise.simulate import make_product

BIN = Path(sys.executable).parent
BASE = "jw01000001001_02101_00001_nrcb1"  # one exposure: its _rate and its _rateints


@pytest.fixture(scope="module")
def products(tmp_path_factory):
    """A NIRCam rate and rateints of the same exposure, and a NIRISS rate."""
    folder = tmp_path_factory.mktemp("products")
    return {
        "rate": make_product("NRCB1", "rate", (128, 256), seed=30).save(
            folder / f"{BASE}_rate.fits"
        ),
        "rateints": make_product("NRCB1", "rateints", (128, 256), nints=2, seed=31).save(
            folder / f"{BASE}_rateints.fits"
        ),
        "nis": make_product("NIS", "rate", (128, 256), seed=32).save(
            folder / "jw01000001001_02101_00001_nis_rate.fits"
        ),
    }


def copy(paths, folder):
    folder.mkdir(exist_ok=True)
    return [Path(shutil.copy(p, folder / p.name)) for p in paths]


@pytest.fixture
def offline_crds(tmp_path):
    """Environment for strun with no network: an unreachable server and a local
    CRDS cache holding only the server configuration, which a pipeline needs to
    report its context; no reference file is ever fetched."""
    config = tmp_path / "crds" / "config" / "jwst"
    config.mkdir(parents=True)
    (config / "server_config").write_text(
        "{'observatory': 'jwst', 'operational_context': 'jwst_0000.pmap', "
        "'edit_context': 'jwst_0000.pmap', 'force_remote_mode': False, "
        "'bad_files_list': [], 'mappings': [], 'last_synced': 'never'}\n"
    )
    return dict(os.environ, CRDS_PATH=str(tmp_path / "crds"), CRDS_SERVER_URL="https://localhost")


def strun(*args, cwd, env):
    return subprocess.run(
        [str(BIN / "strun"), *map(str, args), "--disable-crds-steppars"],
        cwd=cwd, capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip


def history(path) -> str:
    return "".join(str(h) for h in fits.getheader(path)["HISTORY"])  # cut at 72 characters


def make_asn(members, path):
    from jwst.associations.asn_from_list import asn_from_list
    from jwst.associations.lib.rules_level2_base import DMSLevel2bBase

    asn = asn_from_list([m.name for m in members], rule=DMSLevel2bBase, product_name="test")
    _, serialized = asn.dump(format="json")
    path.write_text(serialized)
    return path


def marker(model):
    """The value of the S_BDGCOR card the model will write."""
    cards = [card for card in model.extra_fits.PRIMARY.header if card[0] == "S_BDGCOR"]
    assert len(cards) == 1, cards
    return cards[0][1]


def summaries(caplog):
    return [r.getMessage() for r in caplog.records if "stripe RMS" in r.getMessage()]


# --------------------------------------------------------------------------
# strun
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["bgdnoise", "bgdnoise.BgdNoiseStep"])
def test_strun_logs_the_summary_and_appends_the_suffix(products, tmp_path, offline_crds, name):
    (source,) = copy([products["rate"]], tmp_path)
    proc = strun(name, source.name, "--odd_even=True", cwd=tmp_path, env=offline_crds)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"bgdnoise.step - INFO - {source.name}: rows, 1 output(s), stripe RMS" in proc.stderr
    output = tmp_path / f"{BASE}_rate_bdgCorr.fits"
    assert sorted(p.name for p in tmp_path.glob("*_bdgCorr.fits")) == [output.name]
    assert fits.getheader(output)["S_BDGCOR"] == "COMPLETE"
    assert "odd_even=True" in history(output)


def test_strun_association_output_dir_and_overrides(products, tmp_path, offline_crds):
    """Every product of a stage-2 association; _rate and _rateints of one
    exposure keep distinct names; --axis/--n_outputs reach the correction."""
    from bgdnoise.asn import rewrite_association

    members = copy([products["rate"], products["rateints"]], tmp_path / "in")
    asn = make_asn(members, tmp_path / "in" / "image2_asn.json")
    proc = strun(
        "bgdnoise", asn, "--output_dir=out", "--axis=columns", "--n_outputs=2",
        cwd=tmp_path, env=offline_crds,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if "stripe RMS" in line]
    assert len(lines) == 2 and all("columns, 2 output(s)" in line for line in lines)
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == [f"{BASE}_rate_bdgCorr.fits", f"{BASE}_rateints_bdgCorr.fits"]
    for name in written:
        assert "axis=columns, n_outputs=2" in history(tmp_path / "out" / name)
    assert fits.getdata(tmp_path / "out" / written[1], "SCI").ndim == 3
    _, replaced = rewrite_association(asn, tmp_path / "new_asn.json", search_dir=tmp_path / "out")
    assert replaced == 2


def test_pre_hook_of_calwebb_image2_with_strun(products, tmp_path, offline_crds):
    """The documented hook syntax, offline: the other Image2 steps are skipped
    (they need CRDS references); stpipe runs a step's pre-hooks even so."""
    (source,) = copy([products["rate"]], tmp_path)
    skips = [f"--steps.{s}.skip=True" for s in ("bkg_subtract", "assign_wcs", "flat_field",
                                                 "photom", "resample")]  # fmt: skip
    proc = strun(
        "calwebb_image2", source.name, "--steps.assign_wcs.pre_hooks=bgdnoise.BgdNoiseStep,",
        *skips, cwd=tmp_path, env=offline_crds,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Step bgdnoise done" in proc.stderr
    assert "bgdnoise.step - INFO - " in proc.stderr and "stripe RMS" in proc.stderr
    cal = tmp_path / f"{BASE}_cal.fits"
    assert fits.getheader(cal)["S_BDGCOR"] == "COMPLETE"
    assert not np.array_equal(fits.getdata(cal, "SCI"), fits.getdata(source, "SCI"), equal_nan=True)


# --------------------------------------------------------------------------
# In process
# --------------------------------------------------------------------------
def test_step_lazy_attribute_and_in_memory_model(products):
    code = (
        "import sys, bgdnoise\n"
        "assert 'jwst' not in sys.modules\n"
        "step = bgdnoise.BgdNoiseStep\n"
        "assert step.class_alias == 'bgdnoise' and 'jwst' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    from stdatamodels.jwst import datamodels

    from bgdnoise import BgdNoiseStep

    with datamodels.open(str(products["rate"])) as model:
        result = BgdNoiseStep().run(model)  # run(): no CRDS parameter lookup
        assert not np.array_equal(result.data, model.data)  # the input model is kept
        assert marker(result) == "COMPLETE"


@pytest.mark.parametrize("marked_by", ["bgdnoise", "jwst"])
def test_marked_input_skipped_unless_force(products, caplog, marked_by):
    from stdatamodels.jwst import datamodels

    from bgdnoise import AlreadyCorrectedError, BgdNoiseStep, BgdNoiseWarning, correct_model

    with datamodels.open(str(products["rate"])) as model:
        if marked_by == "bgdnoise":
            correct_model(model)
        else:
            model.meta.cal_step.clean_flicker_noise = "COMPLETE"
        with caplog.at_level(logging.INFO, logger="bgdnoise"):
            skipped = BgdNoiseStep().run(model)
        warned = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warned) == 1 and "already corrected" in warned[0].getMessage()
        assert "--force" in warned[0].getMessage() and not summaries(caplog)
        assert marker(skipped) == "SKIPPED"
        np.testing.assert_array_equal(skipped.data, model.data)
        if marked_by == "bgdnoise":  # skipped, yet still known as corrected
            with pytest.raises(AlreadyCorrectedError):
                correct_model(skipped)

        with pytest.warns(BgdNoiseWarning, match="correcting again"):
            forced = BgdNoiseStep(force=True).run(model)
        assert marker(forced) == "COMPLETE"
        assert not np.array_equal(forced.data, model.data)


def test_model_container_saved_per_member(products, tmp_path, caplog):
    from jwst.datamodels import ModelContainer
    from stdatamodels.jwst import datamodels

    from bgdnoise import BgdNoiseStep

    models = [datamodels.open(str(products[k])) for k in ("rate", "rateints", "nis")]
    before = [m.data.copy() for m in models]
    container = ModelContainer(models)
    step = BgdNoiseStep(save_results=True, output_dir=str(tmp_path / "out"))
    with caplog.at_level(logging.INFO, logger="bgdnoise"):
        result = step.run(container)
    assert isinstance(result, ModelContainer) and len(result) == 3
    assert len(summaries(caplog)) == 3
    for model, data, corrected in zip(container, before, result, strict=True):
        np.testing.assert_array_equal(model.data, data)  # the inputs are kept
        assert marker(corrected) == "COMPLETE"
        assert not np.array_equal(corrected.data, data, equal_nan=True)
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(p.name.replace(".fits", "_bdgCorr.fits") for p in products.values())
    for m in [*models, *result]:
        m.close()


def test_file_input_output_dir_and_output_file(products, tmp_path):
    from bgdnoise import BgdNoiseStep

    out = tmp_path / "out"
    BgdNoiseStep(save_results=True, output_dir=str(out)).run(str(products["rateints"])).close()
    step = BgdNoiseStep(output_file="custom.fits", output_dir=str(out))
    step.run(str(products["rate"])).close()
    # --output_file, as in jwst steps, names the output with the suffix appended.
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{BASE}_rateints_bdgCorr.fits", "custom_bdgCorr.fits"]
    )


def test_save_mask_and_background_beside_the_product(products, tmp_path, caplog):
    # jwst's clean_flicker_noise has save_mask/save_background: the Step too,
    # named like every other bgdnoise output.
    from astropy.io import fits

    from bgdnoise import BgdNoiseStep

    out = tmp_path / "out"
    step = BgdNoiseStep(
        save_results=True, output_dir=str(out), save_mask=True, save_background=True
    )
    step.run(str(products["rate"])).close()
    stem = f"{BASE}_rate"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{stem}_bdgBkg.fits", f"{stem}_bdgCorr.fits", f"{stem}_bdgMask.fits"]
    )
    with (
        fits.open(out / f"{stem}_bdgMask.fits") as mask,
        fits.open(out / f"{stem}_bdgBkg.fits") as bkg,
    ):
        assert mask["SCI"].data.shape == bkg["SCI"].data.shape == (128, 256)
        assert set(np.unique(mask["SCI"].data)) <= {0.0, 1.0}
        assert mask[0].header["BDGPLANE"] == "mask" and bkg[0].header["BDGPLANE"] == "background"
    # Without the scene stage there is nothing to save: a warning in the log.
    plain = tmp_path / "plain"
    BgdNoiseStep(save_results=True, output_dir=str(plain), save_mask=True, mask_sources=False).run(
        str(products["rate"])
    ).close()
    assert sorted(p.name for p in plain.iterdir()) == [f"{stem}_bdgCorr.fits"]
    assert "no mask to save" in caplog.text


def test_geometry_overrides_passed_through(products, caplog):
    """--axis/--n_outputs let the Step correct what the geometry table refuses."""
    from stdatamodels.jwst import datamodels

    from bgdnoise import BgdNoiseStep

    with datamodels.open(str(products["rate"])) as model:
        model.meta.instrument.detector = "NIS"  # not a NIRCam detector
        with pytest.raises(ValueError, match="unknown NIRCAM detector"):
            BgdNoiseStep().run(model)
        with caplog.at_level(logging.INFO, logger="bgdnoise"):
            result = BgdNoiseStep(axis="rows", n_outputs="2").run(model)
        assert marker(result) == "COMPLETE"
        (line,) = summaries(caplog)
        assert "rows, 2 output(s)" in line
        with pytest.raises(ValueError, match="n_outputs must be 'auto' or a positive integer"):
            BgdNoiseStep(n_outputs="three").run(model)


def test_call_on_a_fits_product_without_an_asdf_extension(tmp_path, offline_crds, monkeypatch):
    # A product written by astropy alone (bgdnoise.sim, a user's script) has no
    # ASDF extension, from which jwst reads a file's parameters for CRDS:
    # Step.call raised a KeyError there before the step ran.
    from bgdnoise import BgdNoiseStep
    from bgdnoise.markers import primary_marker
    from bgdnoise.sim import simulate_rate, write_product

    sim = simulate_rate("sparse", (128, 256), "rows", 1, seed=33)
    path = write_product(sim, tmp_path / f"{BASE}_rate.fits")
    with fits.open(path) as hdul:
        assert "ASDF" not in hdul
    for key in ("CRDS_PATH", "CRDS_SERVER_URL"):
        monkeypatch.setenv(key, offline_crds[key])
    monkeypatch.setenv("STPIPE_DISABLE_CRDS_STEPPARS", "True")
    result = BgdNoiseStep.call(str(path))
    try:
        assert primary_marker(result)[0]  # marked as corrected
        stripes = np.median(sim.data - sim.scene, axis=1)
        left = np.median(result.data - sim.scene, axis=1)
        good = np.isfinite(stripes) & np.isfinite(left)
        assert np.std(left[good]) < 0.5 * np.std(stripes[good])
    finally:
        result.close()


def test_missing_and_non_fits_files_get_bgdnoise_messages(tmp_path):
    # As the command line says it, not astropy's "No SIMPLE card found" or a bare errno.
    from bgdnoise import BgdNoiseStep

    text = tmp_path / "notes_rate.fits"
    text.write_text("not a FITS file")
    with pytest.raises(ValueError, match="notes_rate.fits is not a FITS file; bgdnoise corrects"):
        BgdNoiseStep().run(str(text))
    with pytest.raises(FileNotFoundError, match="gone_rate.fits: no such file"):
        BgdNoiseStep().run(str(tmp_path / "gone_rate.fits"))
