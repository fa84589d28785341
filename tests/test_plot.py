"""The PNG of a correction: its numbers, the file, ``--plot``, matplotlib missing."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bgdnoise.batch import correct_one, png_path_for
from bgdnoise.io import correct_file
from bgdnoise.plot import line_power_spectrum, plot_correction, plot_files, stripe_profile
from bgdnoise.simulate import make_product

BIN = Path(sys.executable).parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_png(path):
    """The image of a PNG file, checked to be one."""
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    return image


def without_matplotlib(monkeypatch):
    """Make every ``import matplotlib...`` fail, as where it is not installed."""
    for name in [n for n in sys.modules if n == "matplotlib" or n.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


@pytest.fixture(scope="module")
def products(tmp_path_factory):
    """A NIRCam rate (rows) and a NIRISS rateints (columns), small."""
    folder = tmp_path_factory.mktemp("products")
    return [
        make_product("NRCB1", "rate", (64, 128), seed=70).save(folder / "jw1_nrcb1_rate.fits"),
        make_product("NIS", "rateints", (64, 128), nints=2, seed=71).save(
            folder / "jw2_nis_rateints.fits"
        ),
    ]


# --------------------------------------------------------------------------
# The numbers drawn
# --------------------------------------------------------------------------
def test_stripe_profile_is_the_offset_removed_per_band():
    rng = np.random.default_rng(1)
    n_lines, length, n_outputs = 7, 10, 3  # bands 0:3, 3:6, 6:10, as the correction's
    offsets = rng.normal(0.0, 1.0, (n_outputs, n_lines))
    edges = [0, 3, 6, 10]
    stripes = np.zeros((n_lines, length))
    for band in range(n_outputs):
        stripes[:, edges[band] : edges[band + 1]] = offsets[band][:, None]
    after = rng.normal(5.0, 0.1, (n_lines, length)).astype(np.float32)
    before = after + stripes
    profile = stripe_profile(before, after, "rows", n_outputs)
    assert profile.shape == (n_outputs, n_lines)
    np.testing.assert_allclose(profile, offsets, atol=1e-5)
    # Columns readout: the same lines, transposed.
    np.testing.assert_allclose(stripe_profile(before.T, after.T, "columns", n_outputs), profile)
    # Non-finite pixels are left out; a band of a line with none is NaN.
    before[2, 0] = np.nan
    before[4, 6:] = np.inf
    profile = stripe_profile(before, after, "rows", n_outputs)
    np.testing.assert_allclose(profile[0, 2], offsets[0, 2], atol=1e-5)
    assert np.isnan(profile[2, 4]) and np.isfinite(np.delete(profile[2], 4)).all()


def test_power_spectrum_peaks_at_the_frequency_of_the_line_means():
    n_lines, cycles, amplitude = 256, 8, 0.3
    y = np.arange(n_lines)
    means = 2.0 + amplitude * np.sin(2 * np.pi * cycles * y / n_lines)
    plane = np.repeat(means[:, None], 16, axis=1)
    frequency, power = line_power_spectrum(plane, "rows")
    np.testing.assert_allclose(frequency, np.arange(1, n_lines // 2 + 1) / n_lines)
    peak = np.argmax(power)
    assert frequency[peak] == cycles / n_lines
    # |rfft| of a sine of amplitude A over n lines is A n / 2: power A**2 n / 4.
    np.testing.assert_allclose(power[peak], amplitude**2 * n_lines / 4)
    assert np.delete(power, peak).max() < 1e-20
    # Masked and non-finite pixels stay out of the line means.
    spoiled = plane.copy()
    mask = np.zeros(plane.shape, bool)
    mask[::3, 5] = True
    spoiled[mask] = 1e6
    spoiled[::5, 7] = np.nan
    _, power_masked = line_power_spectrum(spoiled, "rows", mask)
    np.testing.assert_allclose(power_masked, power, atol=1e-12)
    # Columns readout: the line means are those of the columns.
    _, power_columns = line_power_spectrum(plane.T, "columns")
    np.testing.assert_allclose(power_columns, power)


# --------------------------------------------------------------------------
# The PNG
# --------------------------------------------------------------------------
def test_plot_correction_writes_one_png(tmp_path):
    rng = np.random.default_rng(2)
    after = rng.normal(1.0, 0.05, (3, 48, 96)).astype(np.float32)
    before = after + rng.normal(0.0, 0.1, (3, 48, 1, 2)).repeat(48, axis=-1).reshape(3, 48, 96)
    mask = np.zeros((48, 96), bool)
    mask[10:14, 20:30] = True
    dq = np.zeros((48, 96), np.uint32)
    dq[:, :4] = 2**31  # reference pixels: left out
    png = plot_correction(
        before, after, tmp_path / "cube.png", axis="rows", n_outputs=2, mask=mask, dq=dq,
        title="cube",
    )  # fmt: skip
    assert png == tmp_path / "cube.png"
    read_png(png)
    assert [p.name for p in tmp_path.iterdir()] == ["cube.png"]  # no temporary left
    # Without a mask (a panel says so), columns readout, a 2D plane.
    read_png(plot_correction(before[0], after[0], tmp_path / "plane.png", axis="columns"))
    with pytest.raises(FileExistsError):
        plot_correction(before, after, png, axis="rows", overwrite=False)
    with pytest.raises(ValueError, match="mask has shape"):
        plot_correction(before, after, tmp_path / "x.png", axis="rows", mask=mask[1:])


def test_a_failed_plot_leaves_nothing(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def fail(*args, **kwargs):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(Figure, "savefig", fail)
    plane = np.ones((16, 16), np.float32)
    with pytest.raises(RuntimeError, match="drawing failed"):
        plot_correction(plane, plane, tmp_path / "x.png", axis="rows")
    assert list(tmp_path.iterdir()) == []


def test_plot_files_reads_geometry_and_mask_from_the_files(products, tmp_path):
    source = Path(shutil.copy(products[0], tmp_path / products[0].name))
    output, result = correct_file(source, save_mask=True)
    png = plot_files(source, output, tmp_path / "check.png", result.extra_outputs["mask"])
    read_png(png)


def test_missing_matplotlib_says_how_to_install(tmp_path, monkeypatch):
    without_matplotlib(monkeypatch)
    plane = np.ones((16, 16), np.float32)
    with pytest.raises(ImportError, match=r"pip install 'bgdnoise\[plot\]'"):
        plot_correction(plane, plane, tmp_path / "x.png", axis="rows")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_plot_is_a_note_not_a_lost_correction(products, tmp_path, monkeypatch):
    source = Path(shutil.copy(products[0], tmp_path / products[0].name))
    (tmp_path / "out").mkdir()
    without_matplotlib(monkeypatch)
    outcome = correct_one(source, {"plot": True, "output": tmp_path / "out"})
    assert outcome.error is None and outcome.summary
    output = tmp_path / "out" / "jw1_nrcb1_rate_bdgCorr.fits"
    assert output.exists() and not png_path_for(output).exists()
    notes = [n for n in outcome.notes if "no plot written" in n]
    assert len(notes) == 1 and "pip install 'bgdnoise[plot]'" in notes[0], outcome.notes


def test_command_writes_one_png_per_file(products, tmp_path):
    files = [Path(shutil.copy(p, tmp_path / p.name)) for p in products]
    out = tmp_path / "out"
    command = [str(BIN / "bgdnoise"), "correct", *map(str, files), "-o", str(out), "--plot"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "no plot written" not in proc.stderr
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["jw1_nrcb1_rate_bdgCorr.png", "jw2_nis_rateints_bdgCorr.png"]
    for name in pngs:
        read_png(out / name)
