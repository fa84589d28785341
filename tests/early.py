"""Jobs started when the test session starts, for tests that wait on them.

A few tests need a process that compiled every kernel afresh: minutes of one
core on a slow machine. A test decorated with ``@waits_on(job)`` gets
``job``'s result from the ``early_result`` fixture; ``conftest.py`` starts
every job a collected test asks for as the tests start to run, one after
another in a thread, so that their child processes run on the second core
beside the rest of the suite, and runs the tests that wait on one last.
Tests that name the same job share one run.

A job is a function ``job(run, workdir, environ)``:

- ``run``: :meth:`Jobs.run`, ``subprocess.run`` with the output captured as
  text, whose children are killed when the session ends;
- ``workdir``: an empty directory of its own (readable by other users),
  removed at the end of the session;
- ``environ``: ``os.environ`` as it was when the jobs started; the tests
  running meanwhile may change the real one (``monkeypatch.setenv``).
"""

from __future__ import annotations

import os
import queue
import shutil
import stat
import subprocess
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

Job = Callable[..., Any]


def waits_on(job: Job) -> pytest.MarkDecorator:
    """Mark a test that takes ``job``'s result from the ``early_result`` fixture."""
    # with_args: a lone callable given to a marker would be taken for the decorated test.
    return pytest.mark.early_job.with_args(job)


class Jobs:
    """The session's early jobs: each started once, run one after another."""

    def __init__(self) -> None:
        self._futures: dict[Job, Future] = {}
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._root: Path | None = None
        self._children: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._stopping = False

    def start(self, job: Job) -> None:
        """Queue ``job`` unless it was already started."""
        if job in self._futures:
            return
        if self._thread is None:
            self._root = Path(tempfile.mkdtemp(prefix="bgdnoise-early-jobs-"))
            self._root.chmod(0o755)  # a job may run children as another user (test_install)
            # A daemon: an interpreter that exits without the session's end does not
            # wait for it.
            self._thread = threading.Thread(target=self._work, name="early-jobs", daemon=True)
            self._thread.start()
        workdir = Path(tempfile.mkdtemp(prefix=f"{job.__name__}-", dir=self._root))
        workdir.chmod(0o755)
        future: Future = Future()
        self._futures[job] = future
        self._queue.put((job, future, workdir, dict(os.environ)))

    def result(self, job: Job) -> Any:
        """``job``'s result once it ends (started now if no collected test asked for it).

        Raises what the job raised.
        """
        self.start(job)
        return self._futures[job].result()

    def run(self, args: list[str], *, timeout: float, **kwargs: Any) -> subprocess.CompletedProcess:
        """Run ``args`` to its end, or kill it after ``timeout`` seconds.

        Parameters
        ----------
        args : list of str
            The command.
        timeout : float
            Seconds; a child still running then is killed, and its stderr says so.
        **kwargs
            More arguments for :class:`subprocess.Popen` (``env``, ``cwd``, ``user``...).

        Returns
        -------
        subprocess.CompletedProcess
            With ``stdout`` and ``stderr`` as text.
        """
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
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=60)
        if self._root is not None:
            _make_writable(self._root)  # a job may have left read-only directories
            shutil.rmtree(self._root, ignore_errors=True)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            job, future, workdir, environ = item
            if self._stopping:
                future.cancel()
                continue
            future.set_running_or_notify_cancel()
            try:
                future.set_result(job(self.run, workdir, environ))
            except BaseException as exc:  # handed to the test that waits on it
                future.set_exception(exc)


def _make_writable(path: Path) -> None:
    for directory, _, _ in os.walk(path):
        os.chmod(directory, os.stat(directory).st_mode | stat.S_IWUSR)
