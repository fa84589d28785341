"""The README performance table is generated from the committed benchmark JSON."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_script():
    spec = importlib.util.spec_from_file_location(
        "make_table", ROOT / "benchmarks" / "make_table.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_table_matches_committed_results():
    make_table = load_script()
    results = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    readme = (ROOT / "README.md").read_text()
    assert make_table.update(readme, make_table.render(results)) == readme, (
        "README.md's table is stale: run `python benchmarks/make_table.py`"
    )


def test_table_reports_every_target():
    make_table = load_script()
    results = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    table = make_table.render(results)
    for needle in (
        "np.median",
        "jwst clean_flicker_noise",
        "datamodels open + save",
        "time per pixel",
        "Peak memory",
        "First call, empty numba cache",
        "First run, correct_file 2048x2048 _rate, empty numba cache",
        "JIT kernels (`BGDNOISE_AOT=0`), empty numba cache",
        "of which numba compiling",
        "1 thread",
    ):
        assert needle in table
