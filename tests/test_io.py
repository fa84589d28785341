"""The file layer on synthetic stdatamodels products: geometry, files, errors."""

import hashlib
import os

import numpy as np
import pytest
from astropy.io import fits

from bgdnoise.io import AlreadyCorrectedError, BgdNoiseWarning, correct_file
from bgdnoise.simulate import make_product, stripe_residual_rms

FULL = (2048, 2048)

# What a correction adds to the primary header besides its marker (docs/algorithm.rst).
QUALITY_CARDS = {
    "BDGMASKF",
    "BDGMGROW",
    "BDGBKG",
    "BDGNFALL",
    "BDGSKYX",
    "BDGREFS",
    "BDGSTRB",
    "BDGSTRA",
}


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def removed_stripes(source, output, product):
    """What the correction subtracted, scored against the injected stripes."""
    before = fits.getdata(source, "SCI").astype(np.float64)
    after = fits.getdata(output, "SCI").astype(np.float64)
    use = ~product.reference & np.isfinite(before)
    removed = np.where(use, before - after, 0.0)
    return (
        stripe_residual_rms(removed, product.stripes, where=use),
        stripe_residual_rms(np.zeros_like(removed), product.stripes, where=use),
    )


# --------------------------------------------------------------------------
# Full-frame products of each instrument
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("detector", "axis"),
    [("NRCA1", "rows"), ("NIS", "columns"), ("NRS1", "columns"), ("NRS2", "columns"),
     ("GUIDER1", "columns"), ("MIRIMAGE", "columns")],
)  # fmt: skip
def test_full_frame_products(tmp_path, detector, axis):
    exp_type = {"NRS1": "NRS_MSASPEC", "NRS2": "NRS_MSASPEC"}.get(detector)
    product = make_product(detector, "rate", FULL, source_fraction=0.05, seed=3, exp_type=exp_type)
    source = product.save(tmp_path / f"jw01_{detector.lower()}_rate.fits")
    digest = sha256(source)
    mask = None
    if exp_type:
        mask = np.zeros(FULL, bool)  # an (empty) trace mask silences the warning
    output, result = correct_file(source, mask=mask)
    assert output == tmp_path / f"jw01_{detector.lower()}_rate_bdgCorr.fits"
    assert result.geometry.axis == axis
    assert result.geometry.n_outputs == (1 if detector == "MIRIMAGE" else 4)
    residual, injected = removed_stripes(source, output, product)
    # 4 outputs: 512 pixels per band and line; 1.5 sigma / sqrt(N) per level.
    n_per_level = 2040 / result.geometry.n_outputs
    assert residual <= 1.5 * 0.01 / np.sqrt(0.9 * n_per_level)
    assert injected > 20 * residual
    assert sha256(source) == digest  # the input is never modified
    assert (result.rms_after < result.rms_before).all()


def test_outputs_keep_everything_else(tmp_path):
    product = make_product("NRCA1", "rate", FULL, source_fraction=0.05, seed=4)
    source = product.save(tmp_path / "jw02_nrca1_rate.fits")
    output, _ = correct_file(source)
    with fits.open(source) as before, fits.open(output) as after:
        assert [h.name for h in before] == [h.name for h in after]
        for old, new in zip(before, after, strict=True):
            if old.name == "ASDF":
                continue  # rewritten by any datamodel save
            skip = (
                {"DATE", "FILENAME", "S_BDGCOR", "BDGEMPTY", "HISTORY"} | QUALITY_CARDS
                if old.name == "PRIMARY"
                else set()
            )
            old_cards = [(c.keyword, c.value) for c in old.header.cards if c.keyword not in skip]
            new_cards = [(c.keyword, c.value) for c in new.header.cards if c.keyword not in skip]
            assert old_cards == new_cards, old.name
            if old.name != "SCI" and old.data is not None:
                np.testing.assert_array_equal(old.data, new.data)
        sci = after["SCI"].data
        assert sci.dtype == np.dtype(">f4")
        assert after[0].header["S_BDGCOR"] == "COMPLETE"
        assert after[0].header["FILENAME"] == output.name
        history = "".join(str(h) for h in after[0].header["HISTORY"])
        assert "bgdnoise" in history and "n_outputs=4" in history
        assert np.isnan(sci[np.isnan(before["SCI"].data)]).all()
        ref = product.reference
        np.testing.assert_array_equal(sci[ref], before["SCI"].data[ref])


def test_second_run_refuses_without_force(tmp_path):
    product = make_product("NRCB1", "rate", (256, 512), seed=5)
    source = product.save(tmp_path / "jw03_nrcb1_rate.fits")
    output, _ = correct_file(source)
    with pytest.raises(AlreadyCorrectedError, match="force"):
        correct_file(output)
    with pytest.warns(BgdNoiseWarning, match="again"):
        again, _ = correct_file(output, force=True)
    assert again.name == "jw03_nrcb1_rate_bdgCorr_bdgCorr.fits"


def test_a_second_correction_leaves_no_card_of_the_first(tmp_path):
    """Cards of the first correction that the second does not write (the plain path has no
    mask growth, sky across or reference pixels' check) are gone, not left stale."""
    product = make_product("NRCB1", "rate", (256, 512), seed=5)
    source = product.save(tmp_path / "jw03_nrcb1_rate.fits")
    output, _ = correct_file(source)
    first = fits.getheader(output, 0)
    assert {"BDGMGROW", "BDGSKYX", "BDGREFS"} <= set(first)
    with pytest.warns(BgdNoiseWarning, match="again"):
        again, _ = correct_file(output, force=True, mask_sources=False, background_method=None)
    second = fits.getheader(again, 0)
    assert not {"BDGMGROW", "BDGSKYX", "BDGREFS"} & set(second)
    assert second["BDGBKG"] == "NONE"


def test_jwst_cleaned_data_refused(tmp_path):
    product = make_product("NRCB1", "rate", (256, 512), seed=6)
    product.model.meta.cal_step.clean_flicker_noise = "COMPLETE"
    source = product.save(tmp_path / "jw04_nrcb1_rate.fits")
    with pytest.raises(AlreadyCorrectedError, match="S_CLNFNS"):
        correct_file(source)


@pytest.mark.parametrize("noutputs", [4, 1])
def test_subgrism_rateints(tmp_path, noutputs):
    product = make_product(
        "NRCALONG", "rateints", (256, 2048), subarray="SUBGRISM256", n_outputs=noutputs,
        nints=3, exp_type="NRC_TSGRISM", source_fraction=0.05, seed=7,
    )  # fmt: skip
    source = product.save(tmp_path / "jw05_nrcalong_rateints.fits")
    # The defaults find the trace; the plain path warns that it needs a mask.
    with pytest.warns(BgdNoiseWarning, match="NRC_TSGRISM.*mask"):
        correct_file(source, tmp_path / "plain.fits", mask_sources=False)
    output, result = correct_file(source, save_model=True)
    assert (result.geometry.axis, result.geometry.n_outputs) == ("rows", noutputs)
    assert result.rms_before.shape == (3,)
    before = fits.getdata(source, "SCI")
    after = fits.getdata(output, "SCI")
    model_path = tmp_path / "jw05_nrcalong_rateints_bdgModel.fits"
    model = fits.getdata(model_path, "SCI")
    with fits.open(model_path) as hdul:  # the stripes alone, as the 2D model
        assert "ERR" not in hdul and "DQ" not in hdul
    np.testing.assert_allclose(before - model, after, atol=1e-5, equal_nan=True)
    use = np.isfinite(before)
    residual = stripe_residual_rms(np.where(use, model, 0), product.stripes, where=use)
    assert (residual <= 1.5 * 0.01 / np.sqrt(0.9 * 2048 / noutputs)).all()


def test_ramp_slopes_match_truth(tmp_path):
    product = make_product(
        "NRCB2", "ramp", (128, 512), nints=2, ngroups=6, source_fraction=0.2, seed=8
    )
    source = product.save(tmp_path / "jw06_nrcb2_ramp.fits")
    output, result = correct_file(source)
    assert result.rms_after.shape == (2, 5)

    def slopes(path):
        data = fits.getdata(path, "SCI").astype(np.float64)
        gdq = fits.getdata(path, "GROUPDQ")
        good = (gdq & 2) == 0
        t = np.arange(data.shape[1])[None, :, None, None]
        w = good.astype(float)
        n = w.sum(1)
        tm = (w * t).sum(1) / n
        ym = (w * data).sum(1) / n
        return (w * (t - tm[:, None]) * (data - ym[:, None])).sum(1) / (
            w * (t - tm[:, None]) ** 2
        ).sum(1)

    truth = product.rate
    use = ~product.reference
    err_before = slopes(source)[:, use] - truth[use]
    err_after = slopes(output)[:, use] - truth[use]
    # The same ramp with the injected stripes taken out: the best any
    # correction can do is this ramp's own noise.
    sci = fits.getdata(source, "SCI").astype(np.float64)
    increments = np.diff(sci, axis=1) - product.stripes
    ideal = np.concatenate([sci[:, :1], sci[:, :1] + np.cumsum(increments, axis=1)], axis=1)
    ideal_path = tmp_path / "ideal.fits"
    fits.HDUList(
        [fits.PrimaryHDU(), fits.ImageHDU(ideal, name="SCI"),
         fits.ImageHDU(fits.getdata(source, "GROUPDQ"), name="GROUPDQ")]
    ).writeto(ideal_path)  # fmt: skip
    err_ideal = slopes(ideal_path)[:, use] - truth[use]
    assert np.std(err_before) > 2 * np.std(err_ideal)  # the stripes mattered
    assert np.std(err_after) < 1.05 * np.std(err_ideal)
    assert abs(np.mean(err_after)) < 0.1 * np.std(err_ideal)
    # Saturated pixels keep their saturated groups' values up to the correction.
    gdq = fits.getdata(output, "GROUPDQ")
    np.testing.assert_array_equal(gdq, fits.getdata(source, "GROUPDQ"))
    # Group 0 is the reference of the re-accumulation: untouched.
    np.testing.assert_array_equal(
        fits.getdata(output, "SCI")[:, 0], fits.getdata(source, "SCI")[:, 0]
    )


def test_cal_imaging_warns(tmp_path):
    product = make_product("NRCB1", "cal", (256, 512), seed=9)
    source = product.save(tmp_path / "jw07_nrcb1_cal.fits")
    with pytest.warns(BgdNoiseWarning, match="_rate"):
        correct_file(source)


def test_mask_as_array_and_file(tmp_path):
    product = make_product("NRCB1", "rate", (256, 512), source_fraction=0.3, seed=10)
    source = product.save(tmp_path / "jw08_nrcb1_rate.fits")
    mask = product.model.data > 0.25 + 0.02  # sky + 2 sigma: bright pixels
    out_a, _ = correct_file(source, tmp_path / "a.fits", mask=mask)
    fits.writeto(tmp_path / "mask.fits", mask.astype(np.uint8))
    out_b, _ = correct_file(source, tmp_path / "b.fits", mask=tmp_path / "mask.fits")
    np.testing.assert_array_equal(fits.getdata(out_a, "SCI"), fits.getdata(out_b, "SCI"))
    plain, _ = correct_file(source, tmp_path / "c.fits")
    assert not np.array_equal(fits.getdata(out_a, "SCI"), fits.getdata(plain, "SCI"))
    with pytest.raises(ValueError, match="mask has shape"):
        correct_file(source, tmp_path / "d.fits", mask=np.zeros((3, 3), bool))


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------
def test_not_fits(tmp_path):
    path = tmp_path / "notes_rate.fits"
    path.write_text("hello")
    with pytest.raises(ValueError, match="not a FITS file"):
        correct_file(path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        correct_file(tmp_path / "missing_rate.fits")


def test_wrong_products(tmp_path):
    plain = tmp_path / "plain_rate.fits"
    fits.writeto(plain, np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match="no DATAMODL keyword: not a JWST pipeline product"):
        correct_file(plain)
    from stdatamodels.jwst import datamodels

    dark = datamodels.DarkModel((2, 8, 8))
    dark.meta.instrument.name = "NIRCAM"
    dark.meta.instrument.detector = "NRCA1"
    dark.save(str(tmp_path / "dark.fits"))
    with pytest.raises(ValueError, match=r"DarkModel is not supported; bgdnoise corrects _rate"):
        correct_file(tmp_path / "dark.fits")


@pytest.mark.parametrize("model_name", ["SlitModel", "IFUImageModel", "MultiSlitModel"])
def test_spectroscopic_cal_refused(tmp_path, model_name):
    from stdatamodels.jwst import datamodels

    cls = getattr(datamodels, model_name)
    model = cls() if model_name == "MultiSlitModel" else cls((32, 32))
    if model_name == "MultiSlitModel":
        model.slits.append(datamodels.SlitModel((16, 16)))
    model.meta.instrument.name = "NIRSPEC"
    model.meta.instrument.detector = "NRS1"
    path = tmp_path / "jw09_nrs1_cal.fits"
    model.save(str(path))
    with pytest.raises(ValueError, match=f"{model_name} is not supported.*_rate"):
        correct_file(path)


def test_miri_mrs_and_unknown_detector_refused(tmp_path):
    product = make_product("MIRIFULONG", "rate", (256, 256), exp_type="MIR_MRS", seed=11)
    source = product.save(tmp_path / "jw10_mirifulong_rate.fits")
    with pytest.raises(ValueError, match="MIRI MRS"):
        correct_file(source)
    product = make_product("NRCB1", "rate", (64, 64), seed=12)
    source = product.save(tmp_path / "jw11_nrcb5_rate.fits")
    fits.setval(source, "DETECTOR", value="NRCB5")  # the schema would refuse it
    with pytest.raises(ValueError, match="unknown NIRCAM detector 'NRCB5'"):
        correct_file(source)


def test_missing_dq(tmp_path):
    product = make_product("NRCB1", "rate", (64, 64), seed=13)
    source = product.save(tmp_path / "jw12_nrcb1_rate.fits")
    with fits.open(source) as hdul:
        del hdul["DQ"]
        hdul.writeto(tmp_path / "jw12b_nrcb1_rate.fits")
    with pytest.raises(ValueError, match="no DQ extension"):
        correct_file(tmp_path / "jw12b_nrcb1_rate.fits")


def test_existing_output_and_unwritable_directory(tmp_path, monkeypatch):
    product = make_product("NRCB1", "rate", (64, 64), seed=14)
    source = product.save(tmp_path / "jw13_nrcb1_rate.fits")
    output, _ = correct_file(source)
    digest = sha256(output)
    with pytest.raises(FileExistsError, match="overwrite"):
        correct_file(source)
    assert sha256(output) == digest
    correct_file(source, overwrite=True)
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # Root ignores permission bits, so the check itself is what is tested here.
    monkeypatch.setattr(
        os, "access", lambda p, m: False if str(p) == str(locked) else real_access(p, m)
    )
    with pytest.raises(PermissionError, match="cannot write"):
        correct_file(source, locked)
    assert list(locked.iterdir()) == []
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


# --------------------------------------------------------------------------
# Overrides and IRS2
# --------------------------------------------------------------------------
def test_correct_file_with_overrides_where_the_header_fails(tmp_path):
    product = make_product("NRCB1", "rate", (64, 128), seed=15)
    source = product.save(tmp_path / "jw14_nrcb1_rate.fits")
    with fits.open(source, mode="update") as hdul:  # a detector name outside the table
        hdul[0].header["DETECTOR"] = "N/A"
        del hdul[0].header["FASTAXIS"], hdul[0].header["SLOWAXIS"]
    digest = sha256(source)
    with pytest.raises(ValueError, match="unknown NIRCAM detector 'N/A'.*axis='rows'"):
        correct_file(source)
    output, result = correct_file(source, axis="rows", n_outputs=1)
    assert (result.geometry.axis, result.geometry.n_outputs) == ("rows", 1)
    assert "n_outputs=1" in "".join(str(h) for h in fits.getheader(output)["HISTORY"])
    residual, injected = removed_stripes(source, output, product)
    assert residual < 0.2 * injected
    assert sha256(source) == digest


def test_schema_errors_are_one_short_message(tmp_path):
    product = make_product("NRCB1", "rate", (64, 128), seed=16)
    source = product.save(tmp_path / "jw15_nrcb1_rate.fits")
    fits.setval(source, "NOUTPUTS", value=3)  # not a value the schema allows
    with pytest.raises(ValueError) as info:
        correct_file(source, n_outputs=1)
    message = str(info.value)
    assert "could not be opened" in message and "3 is not one of" in message
    assert "\n" not in message


def test_the_corrected_values_go_into_the_products_own_array_only_where_safe(tmp_path, monkeypatch):
    # correct_file writes the corrected values back into the SCI array of the
    # product it opened itself (not held twice while saving), never into an
    # array a file is mapped under; correct_model replaces a user's array.
    from stdatamodels.jwst import datamodels

    import bgdnoise.io as io_module
    from bgdnoise.io import _in_memory_float32, correct_model

    assert _in_memory_float32(np.zeros((4, 4), np.float32))
    assert _in_memory_float32(np.zeros((4, 4), ">f4")[1:])
    assert not _in_memory_float32(np.zeros((4, 4)))  # float64: a new float32 array
    read_only = np.zeros((4, 4), np.float32)
    read_only.flags.writeable = False
    assert not _in_memory_float32(read_only)
    mapped = np.memmap(tmp_path / "m.dat", np.float32, mode="w+", shape=(4, 4))
    assert not _in_memory_float32(mapped) and not _in_memory_float32(mapped[1:])

    product = make_product("NRCA1", "rate", (256, 512), seed=7)
    source = product.save(tmp_path / "jw02_nrca1_rate.fits")
    digest = sha256(source)
    written_back = []
    real = io_module._in_memory_float32

    def spy(array):
        written_back.append(real(array))
        return written_back[-1]

    monkeypatch.setattr(io_module, "_in_memory_float32", spy)
    output, _ = correct_file(source)
    assert written_back == [True]  # the file's SCI array (big-endian) took the values
    assert sha256(source) == digest
    with datamodels.open(source) as model:
        original = model.data  # big-endian, as read from the file: replaced by a copy
        kept = original.copy()
        correct_model(model)
        assert model.data is not original
        np.testing.assert_array_equal(original, kept)
        with fits.open(output) as written:  # the same values either way
            np.testing.assert_array_equal(written["SCI"].data, model.data)
    # A native float32 array is corrected in place (correct_model's docstring).
    with datamodels.open(source) as model:
        native = np.ascontiguousarray(model.data, dtype=np.float32)
        model.data = native
        correct_model(model)
        assert model.data is native
        with fits.open(output) as written:
            np.testing.assert_array_equal(written["SCI"].data, native)


def test_outputs_given_by_hand_must_split_the_lines_equally(tmp_path):
    # A product's NOUTPUTS always divides its lines; 3 on 128 would put band
    # edges where no output starts. Arrays (correct_array) may be cutouts.
    source = make_product("NRCB1", "rate", (64, 128), seed=9).save(tmp_path / "jw9_nrcb1_rate.fits")
    with pytest.raises(ValueError, match="n_outputs=3 does not divide the product's line length"):
        correct_file(source, tmp_path / "three.fits", n_outputs=3)
    assert not (tmp_path / "three.fits").exists()
    output, result = correct_file(source, tmp_path / "two.fits", n_outputs=2)
    assert result.geometry.n_outputs == 2 and output.exists()
