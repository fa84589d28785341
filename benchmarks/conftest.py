"""Benchmark fixtures."""

import sys
from pathlib import Path

import numba
import pytest

# The registry of independent references lives with the tests; the
# benchmarks time the same pairs.
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))


@pytest.fixture
def threads():
    """Set numba's thread count for one benchmark, restore it after."""
    before = numba.get_num_threads()
    yield numba.set_num_threads
    numba.set_num_threads(before)


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record the versions that the README table's footnote names."""
    from importlib.metadata import version

    machine_info["packages"] = {
        name: version(name) for name in ("bgdnoise", "numpy", "numba", "astropy", "jwst")
    }
    machine_info["numba_threads"] = numba.get_num_threads()
