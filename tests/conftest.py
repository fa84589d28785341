"""Shared fixtures: seeded generators, and the jobs started when the tests start."""

import numpy as np
import pytest
from early import Jobs

_early_jobs = Jobs()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    # The tests that wait on an early job (tests/early.py) run last, when it has had
    # the rest of the suite's time to finish. Last among these hooks, so that no
    # other reordering (the fixtures' by scope) undoes it; the sort is stable.
    items.sort(key=lambda item: item.get_closest_marker("early_job") is not None)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session):
    # Here rather than at the end of collection: not for --collect-only, --fixtures
    # or a collection error, which run no test.
    if session.config.option.collectonly:
        return
    if session.testsfailed and not session.config.option.continue_on_collection_errors:
        return
    for item in session.items:
        for marker in item.iter_markers("early_job"):
            _early_jobs.start(marker.args[0])


def pytest_sessionfinish(session, exitstatus):
    _early_jobs.stop()


@pytest.fixture
def early_result(request):
    """The result of the job the test waits on (``@waits_on(job)``, tests/early.py)."""
    markers = list(request.node.iter_markers("early_job"))
    assert len(markers) == 1, "a test using early_result waits on one job: @waits_on(job)"
    return _early_jobs.result(markers[0].args[0])


@pytest.fixture
def rng():
    return np.random.default_rng(20261124)
