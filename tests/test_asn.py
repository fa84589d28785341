"""The association rewrite on malformed input, its output place and its input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bgdnoise.asn import corrected_name, rewrite_association

BIN = Path(sys.executable).parent


def run(*args):
    command = [str(BIN / "bgdnoise"), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def association(members):
    return {"asn_type": "image2", "products": [{"name": "p", "members": members}]}


def write(path: Path, content) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a readable association JSON file"),
        ([1, 2], "no 'products' list"),
        ({"products": {"a": 1}}, "no 'products' list"),
        ({"products": ["x"]}, r"products\[0\] is a str, not an object"),
        ({"products": [{"members": {"expname": "a"}}]}, r"products\[0\].members is a dict"),
        ({"products": [{"members": [3]}]}, r"products\[0\].members\[0\] is a int"),
        ({"products": [{"members": [{"exptype": "science"}]}]}, "has no expname file name"),
        ({"products": [{"members": [{"expname": 7}]}]}, r"has no expname file name \(got 7\)"),
    ],
)
def test_malformed_associations_are_one_line(tmp_path, content, message):
    path = write(tmp_path / "bad_asn.json", content)
    with pytest.raises(ValueError, match=message):
        rewrite_association(path, allow_missing=True)
    proc = run("asn", path, "--allow-missing")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "bad_asn_bdgCorr.json").exists()


def test_refuses_to_write_over_its_input(tmp_path):
    (tmp_path / "jw1_rate.fits").write_text("")
    (tmp_path / corrected_name("jw1_rate.fits")).write_text("")
    path = write(tmp_path / "in_asn.json", association([{"expname": "jw1_rate.fits"}]))
    original = path.read_text()
    with pytest.raises(ValueError, match="is the input association"):
        rewrite_association(path, path, overwrite=True)
    proc = run("asn", path, "-o", path, "--overwrite")
    assert proc.returncode == 1 and "is the input association" in proc.stderr
    assert path.read_text() == original


def test_member_names_resolve_from_the_output_directory(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("jw1_rate.fits", "jw2_rate.fits"):
        (raw / name).write_text("")
    (raw / corrected_name("jw1_rate.fits")).write_text("")
    members = [{"expname": "jw1_rate.fits"}, {"expname": "jw2_rate.fits"}]
    path = write(raw / "in_asn.json", association(members))
    elsewhere = tmp_path / "elsewhere" / "deeper"
    elsewhere.mkdir(parents=True)
    output, replaced = rewrite_association(path, elsewhere / "out.json", allow_missing=True)
    assert replaced == 1
    written = json.loads(output.read_text())["products"][0]["members"]
    for member, name in zip(written, ["jw1_rate_bdgCorr.fits", "jw2_rate.fits"], strict=True):
        resolved = (output.parent / member["expname"]).resolve()
        assert resolved == (raw / name).resolve()


def test_demo_into_a_file_is_a_usage_error(tmp_path):
    target = write(tmp_path / "demo.fits", "x")
    proc = run("demo", target)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "is a file" in proc.stderr
    assert target.read_text() == "x"


def test_members_the_step_does_not_correct_are_kept(tmp_path):
    """A WFSS stage-2 association lists catalogues and direct images: no counterpart needed."""
    for name in ("jw1_rate.fits", "jw2_rate.fits", "cat.ecsv", "jw3_i2d.fits"):
        (tmp_path / name).write_text("")
    for name in ("jw1_rate.fits", "jw2_rate.fits"):
        (tmp_path / corrected_name(name)).write_text("")
    members = [
        {"expname": "jw1_rate.fits", "exptype": "science"},
        {"expname": "jw2_rate.fits", "exptype": "background"},
        {"expname": "cat.ecsv", "exptype": "sourcecat"},
        {"expname": "jw3_i2d.fits", "exptype": "direct_image"},
    ]
    path = write(tmp_path / "in_asn.json", association(members))
    output, replaced = rewrite_association(path)  # no allow_missing needed
    assert replaced == 2
    written = [m["expname"] for m in json.loads(output.read_text())["products"][0]["members"]]
    assert written == ["jw1_rate_bdgCorr.fits", "jw2_rate_bdgCorr.fits", "cat.ecsv", "jw3_i2d.fits"]
    # A science member without its counterpart still fails.
    (tmp_path / corrected_name("jw1_rate.fits")).unlink()
    with pytest.raises(ValueError, match="jw1_rate.fits"):
        rewrite_association(path, tmp_path / "again.json")


def test_a_member_without_exptype_is_science_and_absolute_names_resolve(tmp_path):
    """A member without ``exptype`` needs its counterpart; names resolve from a search dir."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("jw1_rate.fits", "jw2_rate.fits", "cat.ecsv"):
        (data / name).write_text("")
    members = [
        {"expname": "jw1_rate.fits"},
        {"expname": str(data / "jw2_rate.fits"), "exptype": "science"},
        {"expname": str(data / "cat.ecsv"), "exptype": "sourcecat"},
    ]
    path = write(data / "in_asn.json", association(members))
    with pytest.raises(ValueError, match=r"2 member\(s\).*jw1_rate.fits"):
        rewrite_association(path, tmp_path / "refused.json")
    assert not (tmp_path / "refused.json").exists()
    corrected = tmp_path / "corrected"
    corrected.mkdir()
    for name in ("jw1_rate.fits", "jw2_rate.fits"):
        (corrected / corrected_name(name)).write_text("")
    output, replaced = rewrite_association(path, tmp_path / "out.json", search_dir=corrected)
    assert replaced == 2
    written = [m["expname"] for m in json.loads(output.read_text())["products"][0]["members"]]
    resolved = [(output.parent / name).resolve() for name in written[:2]]
    expected = [corrected / corrected_name(n) for n in ("jw1_rate.fits", "jw2_rate.fits")]
    assert resolved == [p.resolve() for p in expected]
    assert written[2] == str(data / "cat.ecsv")  # an absolute name stays as it was
