"""Writes that lose nothing: full disks, read-only directories, killed writers, umask."""

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from astropy.io import fits

from bgdnoise import _atomic
from bgdnoise._atomic import OutputWriteError
from bgdnoise.io import correct_file
from bgdnoise.simulate import make_product

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    folder = tmp_path_factory.mktemp("src")
    return make_product("NRCB1", "rate", (256, 512), seed=40).save(folder / "jw40_nrcb1_rate.fits")


def mount_tmpfs(where: Path, options: str) -> Path:
    """A small or read-only file system of its own (root only), or skip."""
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a test file system needs root")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    return where


@pytest.fixture
def full_disk(tmp_path):
    disk = mount_tmpfs(tmp_path / "full", "size=256k")
    yield disk
    subprocess.run(["umount", str(disk)], check=False)


@pytest.fixture
def read_only_dir(tmp_path):
    disk = mount_tmpfs(tmp_path / "ro", "ro,size=64k")
    yield disk
    subprocess.run(["umount", str(disk)], check=False)


def test_full_disk_is_one_clear_error_and_leaves_nothing(source, full_disk):
    with pytest.raises(OutputWriteError) as info:
        correct_file(source, full_disk, save_model=True)
    message = str(info.value)
    assert "\n" not in message
    assert str(full_disk / "jw40_nrcb1_rate_bdgCorr.fits") in message
    assert "No space left on device" in message
    assert os.listdir(full_disk) == []  # no temporary, no half pair


def test_command_line_on_a_full_disk(source, full_disk):
    proc = subprocess.run(
        [str(BIN / "bgdnoise"), "correct", str(source), "-o", str(full_disk)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 1 and "No space left on device" in errors[0]
    assert os.listdir(full_disk) == []


def test_read_only_directory(source, read_only_dir):
    with pytest.raises(OSError, match=f"{read_only_dir}"):
        correct_file(source, read_only_dir)
    assert os.listdir(read_only_dir) == []


def test_save_model_writes_both_or_neither(source, tmp_path, monkeypatch):
    real = correct_file.__globals__["fits_writer"]

    def failing_second(model, target):
        write = real(model, target)
        if target.name.endswith("_bdgModel.fits"):

            def write(tmp):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        return write

    monkeypatch.setitem(correct_file.__globals__, "fits_writer", failing_second)
    with pytest.raises(OutputWriteError, match="_bdgModel.fits: No space left"):
        correct_file(source, tmp_path, save_model=True)
    assert os.listdir(tmp_path) == []


def test_stale_temporaries_of_dead_writers_are_removed(source, tmp_path):
    target = tmp_path / "jw40_nrcb1_rate_bdgCorr.fits"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp_path / f".{target.name}.bgdnoise-{dead.stdout.strip()}.x1y2.tmp"
    stale.mkdir()
    (stale / target.name).write_bytes(b"half a file")
    alive = tmp_path / f".{target.name}.bgdnoise-{os.getppid()}.a1b2.tmp"
    alive.mkdir()  # a writer still running: not ours to remove
    other = tmp_path / ".unrelated.bgdnoise-1.tmp"
    other.write_text("")
    correct_file(source, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [target.name, alive.name, other.name]
    )


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_output_mode_follows_the_umask(source, tmp_path, umask):
    old = os.umask(umask)
    try:
        output, _ = correct_file(source, tmp_path, save_model=True)
    finally:
        os.umask(old)
    for path in (output, tmp_path / "jw40_nrcb1_rate_bdgModel.fits"):
        assert (path.stat().st_mode & 0o777) == 0o666 & ~umask
    assert _atomic._umask() == old


def test_outputs_are_valid_after_the_rename(source, tmp_path):
    output, _ = correct_file(source, tmp_path)
    assert fits.getheader(output)["FILENAME"] == output.name
