"""Kernels compiled ahead of time, when bgdnoise is installed.

Numba compiles a kernel on its first call. bgdnoise's default correction
calls about 85 numba functions; compiling them takes 20-25 s on 2 cores
(numba's typing and lowering are 2/3 of it, LLVM the rest, and both grow
with every kernel), four times what a fresh process importing jwst needs
to run ``clean_flicker_noise`` once. Every new user, container, CI job and
cluster worker would pay that before its first result.

So the entry points, the kernels that Python calls (about 30 functions in
60 signatures, :data:`._aot_entries.ENTRIES`), are also compiled when the
package is built (``setup.py``'s ``build_ext`` runs :mod:`._aot_build`,
through numba's ``pycc``) into the extension module
``bgdnoise._kernels._compiled``, from the same source, releasing the GIL
(:func:`.threads.run_ranges` runs them in threads). At run time
:func:`launch` calls the compiled export whose argument types match the
call exactly and falls back to the numba dispatcher (JIT, cached)
otherwise. The two give the same bits (``tests/test_aot.py``): the same IR
and optimisation level, no fastmath.

The extension is used only if it was built from exactly these kernel
sources (a hash of ``bgdnoise/_kernels/*.py`` but this module and
``__main__.py``, whose code is not compiled, is part of it) and, if built
for the installing machine's CPU (the default), only on a CPU of the same
name and features. After an edit the JIT versions run until it is rebuilt
(``make compiled``). It is not used with ``NUMBA_DISABLE_JIT=1`` (the
kernels run as Python, for coverage) or with ``BGDNOISE_AOT=0``.
``bgdnoise warm`` fills numba's own cache for when it cannot be used.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numba
import numpy as np
from numba.core import types
from numba.core.errors import NumbaError
from numba.core.registry import CPUDispatcher
from numba.core.utils import bit_length

__all__ = ["MODULE", "jit_only", "launch", "recording", "resolve", "source_hash", "status"]

#: Name of the extension module, inside ``bgdnoise._kernels``.
MODULE = "_compiled"
#: Symbol of an extension built for any CPU of its architecture.
ANY_CPU = "cpu_any"
_ENV = "BGDNOISE_AOT"
_NOT_COMPILED = ("aot.py", "__main__.py")
_HERE = Path(__file__).resolve().parent

_lock = threading.Lock()
_table: dict[Any, dict[tuple, Callable]] | None = None
_status: str | None = None
_memo: dict[Any, dict[tuple, Callable]] = {}
_jit_only = 0
_recorded: set[tuple[str, str, tuple[str, ...]]] | None = None


def opted_out() -> bool:
    """Whether ``BGDNOISE_AOT`` turns the compiled kernels off (``0``, ``off``, ...)."""
    return os.environ.get(_ENV, "1").strip().lower() in ("0", "false", "no", "off")


def source_hash() -> str:
    """SHA-256 (hex) of the compiled kernel sources: ``bgdnoise/_kernels/*.py``
    but ``aot.py`` and ``__main__.py``, the entry list and the build code included."""
    digest = hashlib.sha256()
    for path in sorted(_HERE.glob("*.py")):
        if path.name not in _NOT_COMPILED:
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def hash_symbol(hex_digest: str) -> str:
    """The extension's symbol that names the sources it was built from."""
    return "source_" + hex_digest[:32]


def host_cpu_symbol() -> str:
    """The extension's symbol for code built for this machine's CPU (name and features)."""
    import llvmlite.binding as llvm

    host = llvm.get_host_cpu_name() + ";" + llvm.get_host_cpu_features().flatten()
    return "cpu_" + hashlib.sha256(host.encode()).hexdigest()[:32]


def decode(text: str) -> types.Type:
    """A numba type from its ``repr`` (as :func:`encode` wrote it)."""
    namespace = {k: v for k, v in vars(types).items() if not k.startswith("_")}
    namespace["bool"] = types.boolean
    decoded = eval(text, {"__builtins__": {}}, namespace)  # our own generated table
    if repr(decoded) != text:
        raise ValueError(f"numba type {text!r} does not round-trip (read as {decoded!r})")
    return decoded


def encode(numba_type: types.Type) -> str:
    """``repr`` of a numba type, which :func:`decode` reads back."""
    return repr(numba_type)


def argument_types(args: tuple) -> tuple:
    """numba's types of ``args``, as its dispatchers see them."""
    return tuple(numba.typeof(a) for a in args)


def _load() -> tuple[dict[Any, dict[tuple, Callable]], str]:
    """The exports by kernel and argument types, and :func:`status`'s answer."""
    if opted_out():
        return {}, "disabled"
    if numba.config.DISABLE_JIT:
        return {}, "no-jit"
    try:
        compiled = importlib.import_module(f"{__package__}.{MODULE}")
    except ImportError:
        return {}, "missing"
    if not hasattr(compiled, hash_symbol(source_hash())):
        return {}, "stale"
    try:
        built_for_this_cpu = hasattr(compiled, ANY_CPU) or hasattr(compiled, host_cpu_symbol())
    except Exception:  # no way to tell this CPU: do not run code built for another
        built_for_this_cpu = False
    if not built_for_this_cpu:
        return {}, "other-cpu"
    try:
        from ._aot_entries import ENTRIES

        table: dict[Any, dict[tuple, Callable]] = {}
        for index, (module, name, args, _) in enumerate(ENTRIES):
            kernel = getattr(importlib.import_module(f"{__package__}.{module}"), name)
            key = tuple(decode(a) for a in args)
            table.setdefault(kernel, {})[key] = getattr(compiled, f"k{index}")
    except Exception:  # anything unreadable: the JIT kernels still work
        return {}, "unreadable"
    return table, "ok"


def _get_table() -> dict[Any, dict[tuple, Callable]]:
    global _table, _status
    if _table is None:
        with _lock:
            if _table is None:
                _table, _status = _load()
    return _table


def _reset() -> None:
    """Forget the loaded table (tests: after changing the environment)."""
    global _table, _status
    with _lock:
        _table, _status = None, None
        _memo.clear()


def status() -> str:
    """Whether the ahead-of-time kernels are in use, and if not, why.

    Returns
    -------
    str
        ``"ok"`` (in use); else the JIT kernels run: ``"missing"`` (not
        built: no C/C++ compiler at install, or a source tree without
        ``build_ext``), ``"stale"`` (built from other kernel sources),
        ``"other-cpu"`` (built for another processor), ``"unreadable"``
        (the entry list does not match the module), ``"disabled"``
        (``BGDNOISE_AOT=0``) or ``"no-jit"`` (``NUMBA_DISABLE_JIT=1``).
    """
    _get_table()
    assert _status is not None
    return _status


def resolve(kernel: Callable, args: tuple) -> Callable:
    """The compiled export of ``kernel`` for ``args``' types, else ``kernel``.

    Parameters
    ----------
    kernel : callable
        A numba dispatcher of :mod:`bgdnoise._kernels` (anything else, such
        as a test's stand-in, is returned as it is).
    args : tuple
        The arguments the call will pass.

    Returns
    -------
    callable
        The export compiled for exactly ``args``' numba types, or ``kernel``.
    """
    if _recorded is not None and isinstance(kernel, CPUDispatcher):
        function = kernel.py_func
        if function.__module__.startswith(f"{__package__}."):
            module = function.__module__.rsplit(".", 1)[1]
            signature = tuple(map(encode, argument_types(args)))
            _recorded.add((module, function.__qualname__, signature))
    if _jit_only:
        return kernel
    variants = _get_table().get(kernel)
    if not variants:
        return kernel
    # numba.typeof costs ~5 us an array; what decides an array's numba type
    # costs a fifth of that, and a correction launches kernels ~50 times.
    fingerprint = _fingerprint(args)
    memo = _memo.setdefault(kernel, {})
    found = memo.get(fingerprint) if fingerprint is not None else None
    if found is None:
        try:
            found = variants.get(argument_types(args), kernel)
        except (ValueError, NumbaError):  # not typeable: the dispatcher says why
            return kernel
        if fingerprint is not None:
            memo[fingerprint] = found
    return found


def launch(kernel: Callable, *args: Any) -> Any:
    """Call ``kernel(*args)``, through its compiled export where there is one.

    Parameters
    ----------
    kernel : callable
        A numba dispatcher of :mod:`bgdnoise._kernels`.
    *args
        Its arguments.

    Returns
    -------
    object
        What the kernel returns.
    """
    return resolve(kernel, args)(*args)


def _fingerprint(args: tuple) -> tuple | None:
    """What decides ``numba.typeof`` of each argument, or None if unsure."""
    parts: list[Any] = []
    for a in args:
        kind = type(a)
        if kind is np.ndarray:
            f = a.flags
            # dtype (with byte order), ndim, layout, read-only: numba's Array type.
            parts.append((a.dtype, a.ndim, f.c_contiguous, f.f_contiguous, f.writeable))
        elif kind is tuple:
            inner = _fingerprint(a)
            if inner is None:
                return None
            parts.append(inner)
        elif kind is int:
            parts.append((int, _int_class(a)))
        elif kind in (bool, float):
            parts.append(kind)
        elif isinstance(a, np.generic):
            parts.append((np.generic, a.dtype))  # numba types a numpy scalar by its dtype
        else:
            return None
    return tuple(parts)


def _int_class(value: int) -> int:
    """Which numba type a Python int gets (numba's ``typeof``: intp, int64,
    uint64, or none), by its bit length as numba counts it."""
    bits = bit_length(value)
    if bits < 32:
        return 0
    if bits < 64:
        return 1
    return 2 if bits == 64 and value >= 0 else 3


@contextlib.contextmanager
def jit_only() -> Iterator[None]:
    """Run the numba dispatchers (JIT, cached) instead of the compiled exports.

    For :func:`bgdnoise.warm.warm_cache`, whose job is numba's cache, and for
    tests comparing the two. Process-wide: corrections in other threads
    meanwhile also run the JIT kernels.
    """
    global _jit_only
    with _lock:
        _jit_only += 1
    try:
        yield
    finally:
        with _lock:
            _jit_only -= 1


@contextlib.contextmanager
def recording() -> Iterator[set[tuple[str, str, tuple[str, ...]]]]:
    """Collect ``(module, function, argument types)`` of every kernel launched.

    For :func:`._aot_build.record_entries` and the tests; not nested.
    """
    global _recorded
    if _recorded is not None:
        raise RuntimeError("recording() does not nest")
    seen: set[tuple[str, str, tuple[str, ...]]] = set()
    _recorded = seen
    try:
        yield seen
    finally:
        _recorded = None
