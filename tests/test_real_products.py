"""Every public entry point on products built on real and documented JWST headers.

The headers carry what archive products carry and synthetic ones lack:
keywords outside the datamodel schema, blank and CONTINUE cards, COMMENT
cards, no NOUTPUTS card (FGS), NOUTPUTS = 5 (NIRSpec IRS2).
"""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from realproducts import FIXTURES, build_product, line_residual, read_header

from bgdnoise.asn import corrected_name, rewrite_association
from bgdnoise.io import BgdNoiseWarning, correct_file

BIN = Path(sys.executable).parent
# Cards a datamodel save rewrites (DATE, FILENAME) and the record bgdnoise adds.
REWRITTEN = {"DATE", "FILENAME"}
OURS = {
    "S_BDGCOR", "BDGEMPTY", "HISTORY", "BDGMASKF", "BDGMGROW", "BDGBKG", "BDGNFALL", "BDGSKYX",
    "BDGREFS", "BDGSTRB", "BDGSTRA",
}  # fmt: skip


@pytest.fixture(scope="module")
def products(tmp_path_factory):
    """One product per fixture, in one directory."""
    folder = tmp_path_factory.mktemp("real")
    built = {}
    for seed, name in enumerate(FIXTURES):
        suffix = "rateints" if "subgrism" in name else "rate"
        built[name] = build_product(name, folder / f"jw0{seed}_{name}_{suffix}.fits", seed=seed)
    return built


def cards(header, skip=()):
    """(keyword, value) of every card but blank ones, sorted.

    A datamodel save writes the schema's keywords in the schema's order
    under its own section titles: order and blank cards are not kept.
    """
    kept = [(c.keyword, str(c.value)) for c in header.cards if c.keyword not in skip]
    return sorted(c for c in kept if c[0])


def correct_quietly(path, product, **kwargs):
    """correct_file; spectroscopic modes warn (trace masks), which is expected here."""
    with warnings.catch_warnings():
        if product.fixture.spectroscopic:
            warnings.filterwarnings("ignore", "exposure type .* spectral traces", BgdNoiseWarning)
        return correct_file(path, **kwargs)


def assert_headers_kept(source: Path, output: Path) -> None:
    """Every input card is in the output with its value; only ours added."""
    with fits.open(source) as before, fits.open(output) as after:
        old = cards(before[0].header, REWRITTEN)
        new = cards(after[0].header, REWRITTEN)
        assert [c for c in new if c[0] not in OURS] == old
        assert after[0].header["S_BDGCOR"] == "COMPLETE"
        assert after[0].header["FILENAME"] == output.name
        for hdu in before[1:]:
            # A save adds EXTVER; extensions keep their names, not their order.
            kept = cards(after[hdu.name].header, {"EXTVER"})
            assert kept == cards(hdu.header, {"EXTVER"}), hdu.name
            if hdu.name != "SCI":
                np.testing.assert_array_equal(after[hdu.name].data, hdu.data)


@pytest.mark.parametrize("name", list(FIXTURES))
def test_headers_have_what_archive_products_have(name):
    text = read_header(name, "primary")
    keywords = [c.keyword for c in text.cards]
    assert "" in keywords  # blank section-title cards
    if name.endswith("-rate"):  # the documented headers: COMMENT and CONTINUE cards too
        assert "COMMENT" in keywords
        raw = (Path(__file__).parent / "data" / "headers" / f"{name}.primary.txt").read_text()
        assert "\nCONTINUE" in raw


@pytest.mark.parametrize("name", list(FIXTURES))
def test_correct_file_on_every_header(products, name, tmp_path):
    product = products[name]
    output, result = correct_quietly(product.path, product, output=tmp_path)
    assert output.name == corrected_name(product.path.name)
    assert (result.geometry.axis, result.geometry.n_outputs) == (
        product.fixture.axis,
        product.fixture.n_outputs,
    )
    assert_headers_kept(product.path, output)
    before = fits.getdata(product.path, "SCI").astype(np.float64)
    after = fits.getdata(output, "SCI").astype(np.float64)
    residual, injected = line_residual(before - after, product)
    assert residual < 0.2 * injected


def test_irs2_five_outputs_mean_four_bands(products, tmp_path):
    product = products["nirspec-nrs1-full-irs2-rate"]
    assert product.primary["NOUTPUTS"] == 5
    _, result = correct_quietly(product.path, product, output=tmp_path, save_model=True)
    assert result.geometry.n_outputs == 4
    model = fits.getdata(tmp_path / product.path.name.replace(".fits", "_bdgModel.fits"), "SCI")
    # Columns are the lines: each output's level is one value over its 512 rows.
    # (Science pixels only: the 4-pixel reference border is left alone.)
    science = model[:, 4:-4]
    for start in range(0, 2048, 512):
        band = science[max(start, 4) : min(start + 512, 2044)]
        assert np.all(np.ptp(band, axis=0) <= 1e-6 * np.max(np.abs(science)))
    # and the levels change at the output boundaries (five bands would cut at row 409).
    assert np.ptp(science[500:520], axis=0).max() > 0


def test_command_line_on_a_directory_of_real_products(products, tmp_path):
    folder = next(iter(products.values())).path.parent
    out = tmp_path / "new" / "corrected"  # -o is created
    proc = subprocess.run(
        [str(BIN / "bgdnoise"), "correct", str(folder), "-o", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"{len(products)} corrected, 0 failed" in proc.stdout
    for product in products.values():
        assert_headers_kept(product.path, out / corrected_name(product.path.name))


def test_association_of_real_products(products, tmp_path):
    from jwst.associations.asn_from_list import asn_from_list
    from jwst.associations.lib.rules_level2_base import DMSLevel2bBase

    names = [p.path.name for p in products.values()]
    asn = asn_from_list(names, rule=DMSLevel2bBase, product_name="real")
    asn_path = tmp_path / "real_asn.json"
    asn_path.write_text(asn.dump(format="json")[1])
    corrected = tmp_path / "corrected"
    corrected.mkdir()
    for product in products.values():
        correct_quietly(product.path, product, output=corrected)
    output, replaced = rewrite_association(asn_path, corrected / "asn.json", search_dir=corrected)
    assert replaced == len(products)
    members = [
        m["expname"] for p in json.loads(output.read_text())["products"] for m in p["members"]
    ]
    assert members == [corrected_name(n) for n in names]
    assert all((corrected / m).is_file() for m in members)
