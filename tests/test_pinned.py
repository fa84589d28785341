"""The correction's results, bit for bit, as pinned before the refactor into stages."""

import json

import pytest
from pinned_cases import PINNED, compute

EXPECTED = json.loads(PINNED.read_text())


@pytest.fixture(scope="module")
def computed():
    return compute()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_results_are_bit_identical(computed, name):
    assert computed[name] == EXPECTED[name]
