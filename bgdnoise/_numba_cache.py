"""Make sure numba can cache bgdnoise's kernels, or get by without a cache.

The kernels (``bgdnoise._kernels``) are ``@njit(cache=True)``. Numba picks a
function's cache directory when the function is *decorated*, that is while
its module is imported, from the directory of its source file, trying in turn:

1. ``NUMBA_CACHE_DIR`` (``numba.config.CACHE_DIR``), if set;
2. the ``__pycache__`` directory next to the source file;
3. the user-wide cache, ``$XDG_CACHE_HOME/numba`` or ``~/.cache/numba``.

A directory counts if numba can create it and write a file in it. Where none
does (a read-only site-packages, as in many containers, with no writable
home), numba raises ``RuntimeError: cannot cache function ...: no locator
available`` and ``import bgdnoise`` fails. This module runs before the kernels
are imported (``bgdnoise/__init__.py`` imports it first). For every directory
of the package that holds source files it asks numba's own cache machinery
whether a cache directory would be found, which costs a few file-system calls
and compiles nothing, and if one would not be:

* it points numba at a new temporary directory (``NUMBA_CACHE_DIR`` for this
  process and the processes it starts, such as ``bgdnoise correct --jobs``
  workers), removed when the process exits; or, if not even that can be made,
* it turns caching off for bgdnoise's functions only,

and emits one :class:`NumbaCacheWarning`. Either way the kernels are compiled
again in every new process (several seconds); set ``NUMBA_CACHE_DIR`` to a
writable directory to keep them (docs/install.rst).
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import sys
import tempfile
import types
import warnings
from pathlib import Path

import numba

__all__ = ["NumbaCacheWarning", "cache_status", "configure_numba_cache"]

_PACKAGE = Path(os.path.abspath(__file__)).parent
_PREFIX = "bgdnoise-numba-cache-"

#: What :func:`configure_numba_cache` found and did: ``"ok"`` (numba has a
#: writable cache directory), ``"temporary"`` (a temporary directory was
#: set up), ``"disabled"`` (bgdnoise's kernels are not cached),
#: ``"no-jit"`` (``NUMBA_DISABLE_JIT``), or ``None`` before it ran.
cache_status: str | None = None


class NumbaCacheWarning(UserWarning):
    """Numba cannot write its cache: the kernels are compiled in every new process."""


def _source_files() -> list[Path]:
    """One source file per directory of the package (numba's choice depends
    only on a file's directory, and on the file existing)."""
    files = []
    for directory, dirs, names in os.walk(_PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
        sources = sorted(n for n in names if n.endswith(".py"))
        if sources:
            files.append(Path(directory, "__init__.py" if "__init__.py" in sources else sources[0]))
    return files


def _probe_function(source: Path) -> types.FunctionType:
    """A function that numba's cache locators see as defined in ``source``.

    Only its code object's file name matters: numba looks up the cache of a
    function by the source file it comes from.
    """
    module = compile("def _bgdnoise_cache_probe():\n    pass\n", str(source), "exec")
    code = next(c for c in module.co_consts if isinstance(c, types.CodeType))
    return types.FunctionType(code, {"__name__": "bgdnoise._numba_cache"})


def _writable(path: str) -> bool:
    """What numba's ``_CacheLocator.ensure_cache_path`` checks."""
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return False
    return True


def _numba_finds_cache_dirs() -> bool:
    """Whether numba would find a cache directory for functions anywhere in bgdnoise.

    Asks numba's own locators (the call a ``cache=True`` decorator makes), so
    every locator numba has, and ``NUMBA_CACHE_LOCATOR_CLASSES``, count.
    Should that internal API ever change, checks the three places listed in
    the module docstring by hand.
    """
    for source in _source_files():
        try:
            from numba.core.caching import FunctionCache

            FunctionCache(_probe_function(source))
        except RuntimeError:
            return False
        except Exception:  # numba internals changed: check the usual places ourselves
            if not any(_writable(path) for path in _candidate_dirs(source.parent)):
                return False
    return True


def _user_wide_dir() -> str:
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(cache_home, "numba")


def _candidate_dirs(directory: Path) -> list[str]:
    """The directories numba tries for source files in ``directory``, in its order."""
    # as numba.core.caching._CacheLocator.get_suitable_cache_subpath
    subpath = f"{directory.name}_{hashlib.sha1(str(directory).encode()).hexdigest()}"
    dirs = []
    if numba.config.CACHE_DIR:
        dirs.append(os.path.join(numba.config.CACHE_DIR, subpath))
    dirs.append(str(directory / "__pycache__"))
    dirs.append(os.path.join(_user_wide_dir(), subpath))
    return dirs


def _tried() -> str:
    """The places numba tried, for the warning."""
    places = []
    if numba.config.CACHE_DIR:
        places.append(f"NUMBA_CACHE_DIR={numba.config.CACHE_DIR}")
    places += [str(source.parent / "__pycache__") for source in _source_files()]
    places.append(_user_wide_dir())
    return ", ".join(places)


def _remove_at_exit(path: str) -> None:
    owner = os.getpid()

    def remove() -> None:
        # A forked child that exits normally runs its parent's atexit handlers.
        if os.getpid() == owner:
            shutil.rmtree(path, ignore_errors=True)

    atexit.register(remove)


def _disable_caching_for_bgdnoise() -> None:
    """Make ``cache=True`` a no-op for functions defined in bgdnoise.

    ``@njit(cache=True)`` calls ``Dispatcher.enable_caching`` right after
    creating the dispatcher; skipped, the dispatcher keeps its ``NullCache``.
    Other packages' functions are left to numba.
    """
    from numba.core.dispatcher import Dispatcher

    original = Dispatcher.enable_caching
    if getattr(original, "_bgdnoise_skips", False):
        return

    def enable_caching(self):
        module = getattr(self.py_func, "__module__", None) or ""
        if module == "bgdnoise" or module.startswith("bgdnoise."):
            return None
        return original(self)

    enable_caching._bgdnoise_skips = True
    Dispatcher.enable_caching = enable_caching


def _warn(message: str) -> None:
    """Warn, pointing at the code that imported bgdnoise (not at this module)."""
    package = str(_PACKAGE)
    frame, level = sys._getframe(0), 1
    while frame is not None:
        filename = frame.f_code.co_filename
        if "importlib" in filename and "_bootstrap" in filename:
            pass  # warnings.warn skips import machinery frames itself
        elif filename.startswith(package):
            level += 1
        else:
            break
        frame = frame.f_back
    warnings.warn(message, NumbaCacheWarning, stacklevel=level if frame is not None else 1)


def configure_numba_cache() -> str:
    """Check that numba can cache bgdnoise's kernels; set up a fallback if not.

    Called once when bgdnoise is imported, before the kernels are. Returns
    (and stores in :data:`cache_status`) what it found and did.
    """
    global cache_status
    if numba.config.DISABLE_JIT:
        cache_status = "no-jit"
        return cache_status
    if _numba_finds_cache_dirs():
        cache_status = "ok"
        return cache_status

    tried = _tried()
    advice = (
        "kernels not compiled at install (python -m bgdnoise._kernels check) will be "
        "compiled again in every new process (several seconds); set NUMBA_CACHE_DIR to a "
        "writable directory to keep them"
    )
    try:
        path = tempfile.mkdtemp(prefix=_PREFIX)
    except OSError:
        path = None
    if path is not None:
        configured = numba.config.CACHE_DIR
        numba.config.CACHE_DIR = path
        if _numba_finds_cache_dirs():
            # Also in the environment: numba re-reads NUMBA_* variables when they
            # change, and worker processes then share this cache.
            os.environ["NUMBA_CACHE_DIR"] = path
            _remove_at_exit(path)
            cache_status = "temporary"
            _warn(
                f"bgdnoise: numba cannot write a cache for bgdnoise's kernels (tried {tried}); "
                f"using the temporary directory {path}, removed at exit: {advice}."
            )
            return cache_status
        shutil.rmtree(path, ignore_errors=True)
        numba.config.CACHE_DIR = configured

    _disable_caching_for_bgdnoise()
    cache_status = "disabled"
    _warn(
        f"bgdnoise: numba cannot write a cache for bgdnoise's kernels (tried {tried}, "
        f"and no temporary directory could be made): caching is off and {advice}."
    )
    return cache_status


configure_numba_cache()
