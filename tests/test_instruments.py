"""Readout geometry: keywords, the detector table, MIRI, IRS2, overrides."""

import pytest

from bgdnoise import readout_geometry


# --------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("detector", "subarray", "noutputs", "axis", "outputs"),
    [
        ("NRCA1", "FULL", 4, "rows", 4),
        ("NRCB1", "SUBGRISM256", 1, "rows", 1),
        ("NRCALONG", "SUBGRISM256", 4, "rows", 4),
        ("NIS", "FULL", 4, "columns", 4),
        ("NRS1", "FULL", 4, "columns", 4),
        ("NRS2", "SUBS200A1", 1, "columns", 1),
        ("GUIDER1", "FULL", 4, "columns", 4),
        ("GUIDER2", "SUB32", None, "columns", 1),
        ("MIRIMAGE", "FULL", 4, "columns", 1),
    ],
)
def test_geometry_from_keywords_and_table(detector, subarray, noutputs, axis, outputs):
    from bgdnoise.instruments import DETECTORS

    instrument, fast, slow = DETECTORS[detector]
    header = {
        "INSTRUME": instrument, "DETECTOR": detector, "SUBARRAY": subarray,
        "NOUTPUTS": noutputs, "EXP_TYPE": "MIR_IMAGE" if instrument == "MIRI" else None,
    }  # fmt: skip
    from_table = readout_geometry(header)
    from_keywords = readout_geometry({**header, "FASTAXIS": fast, "SLOWAXIS": slow})
    for geometry in (from_table, from_keywords):
        assert (geometry.axis, geometry.n_outputs) == (axis, outputs)
    assert len(from_keywords.band_directions) == outputs
    if instrument != "MIRI":
        assert from_table.source == "detector table" and from_keywords.source == "keywords"


def test_keywords_win_over_the_table():
    geometry = readout_geometry(
        {"INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "SUBARRAY": "FULL", "FASTAXIS": 2,
         "SLOWAXIS": 1, "NOUTPUTS": 1}
    )  # fmt: skip
    assert (geometry.axis, geometry.n_outputs, geometry.fastaxis) == ("columns", 1, 2)


def test_miri_ignores_its_keywords_and_refuses_mrs():
    base = {"INSTRUME": "MIRI", "SUBARRAY": "FULL", "FASTAXIS": 1, "SLOWAXIS": 2}
    assert readout_geometry({**base, "DETECTOR": "MIRIMAGE", "EXP_TYPE": "MIR_IMAGE"}).axis == (
        "columns"
    )
    with pytest.raises(ValueError, match="MIRI MRS"):
        readout_geometry({**base, "DETECTOR": "MIRIFULONG", "EXP_TYPE": "MIR_MRS"})
    with pytest.raises(ValueError, match="only MIR_IMAGE"):
        readout_geometry({**base, "DETECTOR": "MIRIMAGE", "EXP_TYPE": "MIR_LRS-FIXEDSLIT"})


def test_unknown_instrument_or_detector_lists_known_ones():
    with pytest.raises(ValueError, match="known: NIRCAM, NIRISS.*axis="):
        readout_geometry({"INSTRUME": "WFC3", "DETECTOR": "IR"})
    with pytest.raises(ValueError, match="known: NRCA1.*NRCBLONG"):
        readout_geometry({"INSTRUME": "NIRCAM", "DETECTOR": "NRCC9"})


def test_irs2_noutputs_5_is_four_science_outputs():
    geometry = readout_geometry(
        {"INSTRUME": "NIRSPEC", "DETECTOR": "NRS1", "SUBARRAY": "FULL", "FASTAXIS": 2,
         "SLOWAXIS": 1, "NOUTPUTS": 5, "READPATT": "NRSIRS2RAPID"}
    )  # fmt: skip
    assert (geometry.axis, geometry.n_outputs, geometry.band_directions) == (
        "columns", 4, (1, -1, 1, -1)
    )  # fmt: skip


def test_overrides_apply_before_the_geometry_is_validated():
    unknown = {"INSTRUME": "NIRCAM", "DETECTOR": "N/A", "SUBARRAY": "FULL", "NOUTPUTS": 4}
    with pytest.raises(ValueError, match=r"axis='rows'.*or axis='columns'.*--axis rows\|columns"):
        readout_geometry(unknown)
    # With the read direction known, the message names the one override to use.
    with pytest.raises(ValueError, match=r"pass axis='columns' .* --axis columns to bgdnoise"):
        readout_geometry({**unknown, "FASTAXIS": 2})
    geometry = readout_geometry(unknown, axis="columns")
    assert (geometry.axis, geometry.n_outputs, geometry.source) == ("columns", 4, "user")
    geometry = readout_geometry({"INSTRUME": "WFC3"}, axis="rows", n_outputs="1")
    assert (geometry.axis, geometry.n_outputs) == ("rows", 1)
    for bad in (0, -1, 2.5, "four", True):
        with pytest.raises(ValueError, match="n_outputs must be 'auto' or a positive integer"):
            readout_geometry(unknown, axis="rows", n_outputs=bad)
    with pytest.raises(ValueError, match="axis must be"):
        readout_geometry(unknown, axis="diagonal")
    with pytest.raises(ValueError, match=r"NOUTPUTS='x'.*n_outputs=4.*--outputs 4"):
        readout_geometry({"INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "SUBARRAY": "FULL",
                          "NOUTPUTS": "x"})  # fmt: skip
