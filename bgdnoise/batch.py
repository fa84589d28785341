"""Correct many files: one at a time, in threads, or in worker processes.

A worker process that dies (killed for lack of memory, a crash in a library)
costs only the file it was correcting: that file is reported as failed, a new
worker takes its place and the batch goes on.

Which executor ``"auto"`` picks comes from ``benchmarks/test_bench_batch.py``
run on this kind of machine (2 cores; ``benchmarks/batch_results.md``):
threads from 4 files per job on (0.75-0.93x the serial time), one at a time
below. Worker processes never won there: each pays 3-7 s of start-up (a
fresh interpreter, asdf's extensions on the first open, the kernels), and on
2 busy cores a second process adds no speed. They stay an explicit choice,
for batches where a dying worker must cost only its own file.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path

__all__ = ["EXECUTORS", "Outcome", "choose_executor", "correct_files"]

EXECUTORS = ("auto", "serial", "threads", "processes")
# From this many files per job on, threads beat one at a time (measured).
MIN_FILES_PER_THREAD = 4


@dataclass
class Outcome:
    """What happened to one file."""

    path: Path
    summary: str = ""
    notes: tuple[str, ...] = ()
    error: str | None = None
    incomplete: bool = False  # written, but some plane had no usable pixel


class _ThreadWarnings:
    """The warnings of each thread of a batch, kept apart.

    ``warnings.catch_warnings`` swaps process-wide state: entered and left by
    several threads in turn, one thread's exit restores the state another
    saved, so warnings land in the wrong file's notes and the process can be
    left with a finished batch's recorder, silencing every later warning
    (before Python 3.14's context-aware warnings). A threaded batch installs
    one hook for all its threads instead (:meth:`installed`), and each file
    records what its own thread raises (:meth:`recording`).
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self._fallback = warnings.showwarning

    def _show(self, message, category, filename, lineno, file=None, line=None) -> None:
        records = getattr(self._local, "records", None)
        if records is None:  # a thread that is not correcting a file
            self._fallback(message, category, filename, lineno, file, line)
        else:
            records.append(warnings.WarningMessage(message, category, filename, lineno, file, line))

    @contextmanager
    def installed(self) -> Iterator[_ThreadWarnings]:
        """Route warnings to the threads' records, for the length of the batch."""
        with warnings.catch_warnings():  # entered and left once, by one thread
            warnings.simplefilter("always")
            self._fallback = warnings.showwarning
            warnings.showwarning = self._show
            yield self

    @contextmanager
    def recording(self) -> Iterator[list]:
        """The warnings this thread raises until the block ends."""
        self._local.records = records = []
        try:
            yield records
        finally:
            self._local.records = None


def _settle_warning_hooks() -> None:
    """Import astropy before warnings are recorded or routed.

    Importing astropy replaces ``warnings.showwarning`` with its logger's.
    Done inside a recording (the first file of a command), that replacement
    would take the file's warnings away from the recording: they would reach
    stderr as astropy's log lines instead of the file's notes.
    """
    import astropy.logger  # noqa: F401


@contextmanager
def _own_warnings() -> Iterator[list]:
    """Record warnings in a process that corrects one file at a time."""
    _settle_warning_hooks()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def correct_one(path: Path, options: dict, *, thread_warnings: _ThreadWarnings | None = None
                ) -> Outcome:  # fmt: skip
    """Correct one file; every error becomes the outcome's one-line message.

    With ``options["plot"]`` a PNG is drawn after the correction is written;
    a plot that fails is a note of the outcome, never a lost correction.
    ``thread_warnings``: in a threaded batch, where this thread's warnings
    are recorded (else ``warnings.catch_warnings``, for one file at a time).
    """
    from ._files import naming_the_file
    from .io import correct_file

    options = dict(options)  # shared by the files of a batch
    plot = options.pop("plot", False)
    recording = _own_warnings() if thread_warnings is None else thread_warnings.recording()
    with recording as caught:
        try:
            _, result = correct_file(path, **options)
        except Exception as exc:  # reported per file; the others go on
            return Outcome(path, error=naming_the_file(path, exc))
    notes = tuple(
        f"{path.name}: {w.message}"
        for w in caught
        if not issubclass(w.category, DeprecationWarning)
    )
    if plot and (failure := _plot(result, overwrite=options.get("overwrite", False))):
        notes += (f"{path.name}: {failure}",)
    return Outcome(path, result.summary(), notes, incomplete=bool(result.empty_planes))


def png_path_for(output: str | Path) -> Path:
    """The PNG of ``--plot``: ``<output stem>.png`` beside the corrected file."""
    return Path(output).with_suffix(".png")


def _plot(result, *, overwrite: bool) -> str | None:
    """Draw the PNG of a written correction; None, or why there is none."""
    from .plot import plot_files

    png = png_path_for(result.output)
    mask = result.report.source_mask if result.report is not None else None
    try:
        plot_files(
            result.input, result.output, png, mask, axis=result.geometry.axis,
            n_outputs=result.geometry.n_outputs, overwrite=overwrite,
        )  # fmt: skip
    except Exception as exc:  # the correction is written: only the picture is lost
        return f"no plot written ({png.name}): {exc}; the correction was written"
    return None


def choose_executor(executor: str, n_files: int, jobs: int) -> str:
    """The executor to use: the one asked for, or by the benchmarked rule."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}.")
    if jobs == 1 or n_files == 1:
        return "serial"
    if executor != "auto":
        return executor
    return "threads" if n_files >= MIN_FILES_PER_THREAD * jobs else "serial"


def correct_files(
    files: Sequence[Path], options: dict, *, jobs: int = 1, executor: str = "serial"
) -> Iterator[Outcome]:
    """Correct ``files``, yielding each outcome as it is known (any order)."""
    if executor == "serial" or jobs == 1:
        for path in files:
            yield correct_one(path, options)
    elif executor == "threads":
        from concurrent.futures import ThreadPoolExecutor, as_completed

        _settle_warning_hooks()
        with _ThreadWarnings().installed() as routed, ThreadPoolExecutor(jobs) as pool:
            futures = [
                pool.submit(correct_one, path, options, thread_warnings=routed) for path in files
            ]
            for future in as_completed(futures):
                yield future.result()
    else:
        yield from _in_processes(files, options, jobs)


def _worker(conn) -> None:
    """A worker process: one numba thread, files in, outcomes out, until None."""
    import numba

    numba.set_num_threads(1)
    while (task := conn.recv()) is not None:
        conn.send(correct_one(*task))


def _died(path: Path, exitcode: int | None) -> Outcome:
    how = f"exit code {exitcode}"
    if exitcode is not None and exitcode < 0:
        how = f"killed by {signal.Signals(-exitcode).name}"
    return Outcome(
        path,
        error=f"{path}: the worker correcting it died ({how}; out of memory?); "
        "the other files went on. Retry it alone or with fewer --jobs.",
    )


def _in_processes(files: Sequence[Path], options: dict, jobs: int) -> Iterator[Outcome]:
    # spawn: a fork after an OpenMP kernel ran can hang.
    context = multiprocessing.get_context("spawn")

    def start():
        parent, child = context.Pipe()
        process = context.Process(target=_worker, args=(child,), daemon=True)
        process.start()
        child.close()
        return parent, process

    queue = deque(files)
    idle = [start() for _ in range(min(jobs, len(files)))]
    busy: dict = {}  # connection -> (process, path)
    try:
        while queue or busy:
            while queue and idle:
                conn, process = idle.pop()
                path = queue.popleft()
                conn.send((path, options))
                busy[conn] = (process, path)
            ready = set(wait([*busy, *(p.sentinel for p, _ in busy.values())]))
            for conn in list(busy):
                process, path = busy[conn]
                outcome = None
                if conn in ready:
                    try:
                        outcome = conn.recv()
                        idle.append((conn, process))
                    except (EOFError, OSError):
                        pass
                if outcome is None and (conn in ready or process.sentinel in ready):
                    process.join()
                    outcome = _died(path, process.exitcode)
                    conn.close()
                    if queue:
                        idle.append(start())
                if outcome is not None:
                    del busy[conn]
                    yield outcome
    finally:
        for conn, _ in idle:
            try:
                conn.send(None)
            except OSError:  # that worker is gone already
                pass
        for process in [p for _, p in idle] + [p for p, _ in busy.values()]:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
