"""Jobs started when the test session starts, for tests that wait on them.

A few tests need a process that compiled every kernel afresh: minutes of one
core on a slow machine. A test decorated with ``@waits_on(job)`` gets
``job``'s result from the ``early_job`` fixture; ``conftest.py`` starts every
job a collected test asks for as soon as collection ends, in a thread, so
its child processes run on the second core beside the rest of the suite,
and runs the tests that wait on one last. Tests that name the same job share one run.

A job is a function ``job(run, workdir)``: ``run`` is
:meth:`Jobs.run` (``subprocess.run`` with output captured as text, whose
children are killed when the session ends) and ``workdir`` an empty
directory removed at the end of the session.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

Job = Callable[[Callable[..., subprocess.CompletedProcess], Path], Any]


def waits_on(job: Job) -> pytest.MarkDecorator:
    """Mark a test that takes ``job``'s result from the ``early_job`` fixture."""
    # with_args: a lone callable given to a marker would be taken for the decorated test.
    return pytest.mark.early_job.with_args(job)


class Jobs:
    """The session's early jobs: started once each, run one after another."""

    def __init__(self) -> None:
        self._futures: dict[Job, Future] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._root: Path | None = None
        self._children: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._stopping = False

    def start(self, job: Job) -> None:
        """Queue ``job`` unless it was already started."""
        if job in self._futures:
            return
        if self._pool is None:
            # One at a time: each job's children take one core, and the suite the other.
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="early-job")
            self._root = Path(tempfile.mkdtemp(prefix="bgdnoise-early-jobs-"))
            self._root.chmod(0o755)  # a job may run children as another user (test_install)
        workdir = self._root / job.__name__
        workdir.mkdir()
        self._futures[job] = self._pool.submit(job, self.run, workdir)

    def result(self, job: Job) -> Any:
        """``job``'s result, once it ends (started now if no collected test asked for it)."""
        self.start(job)
        return self._futures[job].result()

    def run(self, args: list[str], *, timeout: float, **kwargs: Any) -> subprocess.CompletedProcess:
        """``subprocess.run(args, capture_output=True, text=True)``, killed at the session's end."""
        with self._lock:
            if self._stopping:
                raise RuntimeError("the test session ended before this job ran")
            child = subprocess.Popen(
                args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
            )
            self._children.add(child)
        try:
            stdout, stderr = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            stdout, stderr = child.communicate()
            stderr += f"\n(killed after {timeout} s)"
        finally:
            with self._lock:
                self._children.discard(child)
        return subprocess.CompletedProcess(args, child.returncode, stdout, stderr)

    def stop(self) -> None:
        """Kill what still runs (an interrupted or ``-x`` session) and remove the work."""
        with self._lock:
            self._stopping = True
            for child in self._children:
                child.kill()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._root is not None:
            _make_writable(self._root)  # a job may have left read-only directories
            shutil.rmtree(self._root, ignore_errors=True)


def _make_writable(path: Path) -> None:
    for directory, _, _ in os.walk(path):
        os.chmod(directory, os.stat(directory).st_mode | stat.S_IWUSR)
