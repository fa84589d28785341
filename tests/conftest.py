"""Shared fixtures: seeded generators, and the jobs started when the session starts."""

import numpy as np
import pytest
from early import Jobs

_early_jobs = Jobs()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    # The tests that wait on an early job run last, when it has had the whole
    # suite's time to finish (a stable sort: the rest keep their order).
    items.sort(key=lambda item: item.get_closest_marker("early_job") is not None)


def pytest_collection_finish(session):
    # Start what the collected tests will wait on (tests/early.py).
    if session.config.option.collectonly:
        return
    for item in session.items:
        for marker in item.iter_markers("early_job"):
            _early_jobs.start(marker.args[0])


def pytest_sessionfinish(session, exitstatus):
    _early_jobs.stop()


@pytest.fixture
def early_job(request):
    """The result of the job the test waits on (``@waits_on(job)``, tests/early.py)."""
    marker = request.node.get_closest_marker("early_job")
    assert marker is not None, "the early_job fixture needs @waits_on(job)"
    return _early_jobs.result(marker.args[0])


@pytest.fixture
def rng():
    return np.random.default_rng(20261124)
