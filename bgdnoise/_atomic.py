"""Writes that lose nothing: every file bgdnoise writes goes through here.

Each output is written under its own name in a temporary directory beside it
(``.<name>.bgdnoise-<pid>.<random>.tmp/<name>``: a datamodel records the name
it is saved under) and renamed into place, so a reader never sees half a file
and an interrupted run leaves the old one. Several outputs of one input (a
corrected product and its stripe model) are renamed only once all of them are
written: both appear or neither. The temporary names carry the writer's
process id, so a later run removes those whose writer is gone.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["OutputWriteError", "write_atomically"]

_TMP_TAG = ".bgdnoise-"


class OutputWriteError(OSError):
    """An output could not be written; nothing was left behind."""


def _umask() -> int:
    """The process umask, read without changing it where Linux allows."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: read by setting, then restore
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's live process
        return True
    return True


def remove_stale_temporaries(target: Path) -> None:
    """Remove temporary files of ``target`` left by writers that died."""
    pattern = re.compile(re.escape(f".{target.name}{_TMP_TAG}") + r"(\d+)\.[^.]+\.tmp$")
    try:
        names = os.listdir(target.parent)
    except OSError:
        return
    for name in names:
        match = pattern.match(name)
        if match and int(match.group(1)) != os.getpid() and not _pid_alive(int(match.group(1))):
            shutil.rmtree(Path(target.parent, name), ignore_errors=True)


def _describe(exc: OSError) -> str:
    reason = exc.strerror or str(exc) or type(exc).__name__
    # astropy checks the free space itself and says so at length, with no errno.
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) or "space on disk" in reason
    if full and exc.errno is None:
        reason = os.strerror(errno.ENOSPC)
    if full:
        reason += " (free some space or write elsewhere with -o / output=)"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason += " (choose a directory you can write with -o / output=)"
    return reason


def write_atomically(
    outputs: Sequence[tuple[Path, Callable[[Path], None]]], *, overwrite: bool = False
) -> None:
    """Write every ``(target, write)`` pair; all targets appear, or none changes.

    Parameters
    ----------
    outputs : sequence of (Path, callable)
        Each callable writes the complete file at the path it is given (a
        temporary path with the target's file name).
    overwrite : bool
        Replace existing targets; otherwise an existing target is an error.

    Raises
    ------
    FileExistsError
        A target exists and ``overwrite`` is False.
    OutputWriteError
        The file system refused a write (full disk, read-only directory, ...):
        one line naming the target and the reason. Nothing is left behind.
    """
    for target, _ in outputs:
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists; pass overwrite=True (--overwrite).")
    mode = 0o666 & ~_umask()  # as any new file, not the 0600 of a temporary one
    written: list[tuple[Path, Path]] = []
    try:
        for target, write in outputs:
            remove_stale_temporaries(target)
            try:
                folder = tempfile.mkdtemp(
                    prefix=f".{target.name}{_TMP_TAG}{os.getpid()}.", suffix=".tmp",
                    dir=target.parent,
                )  # fmt: skip
            except OSError as exc:
                raise OutputWriteError(f"cannot write {target}: {_describe(exc)}") from exc
            tmp = Path(folder) / target.name
            written.append((tmp, target))
            try:
                write(tmp)
                os.chmod(tmp, mode)
            except OSError as exc:
                raise OutputWriteError(f"cannot write {target}: {_describe(exc)}") from exc
        for target, _ in outputs:  # appeared meanwhile
            if target.exists() and not overwrite:
                raise FileExistsError(f"{target} exists; pass overwrite=True (--overwrite).")
        _rename_all(written)
    finally:
        for tmp, _ in written:
            shutil.rmtree(tmp.parent, ignore_errors=True)


def _rename_all(written: list[tuple[Path, Path]]) -> None:
    """Rename temporaries into place; undo the earlier renames if one fails."""
    done: list[Path] = []
    try:
        for tmp, target in written:
            os.replace(tmp, target)
            done.append(target)
    except OSError as exc:
        for target in done:
            target.unlink(missing_ok=True)
        raise OutputWriteError(f"cannot write {written[len(done)][1]}: {_describe(exc)}") from exc
