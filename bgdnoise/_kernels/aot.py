"""Kernels compiled ahead of time, when bgdnoise is installed.

Numba compiles a kernel on its first call. bgdnoise's default correction
calls about 85 numba functions; compiling them takes 20-25 s on 2 cores
(numba's typing and lowering are 2/3 of it, LLVM the rest, and both grow
with every kernel), four times what a fresh process importing jwst needs
to run ``clean_flicker_noise`` once. Every new user, container, CI job and
cluster worker would pay that before its first result.

So the entry points, the kernels that Python calls (about 20 functions in
about 45 signatures, :data:`._aot_entries.ENTRIES`), are also compiled
when the package is built (``setup.py``'s ``build_ext``, through numba's
``pycc``) into the extension module ``bgdnoise._kernels._compiled``, from
the same source and with the GIL released as the JIT versions do. At run
time :func:`launch` calls the compiled export whose argument types match
the call exactly and falls back to the numba dispatcher (JIT, cached)
otherwise. The two give the same bits (``tests/test_aot.py``): the same
IR and optimisation level, no fastmath.

The extension is used only if it was built from exactly these kernel
sources (a hash of ``bgdnoise/_kernels/*.py`` is part of it): after an
edit the JIT versions run until it is rebuilt (``make compiled``). It is
not used with ``NUMBA_DISABLE_JIT=1`` (the kernels run as Python, for
coverage) or with ``BGDNOISE_AOT=0``. ``bgdnoise warm`` fills numba's own
cache for when the extension cannot be built (no C compiler).

The entry list is regenerated from the calls :func:`bgdnoise.warm.warm_cases`
make (``python -m bgdnoise._kernels record``); ``tests/test_aot.py``
checks that those calls need no JIT fallback.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import sys
import sysconfig
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numba
import numpy as np
from numba.core import types
from numba.core.registry import CPUDispatcher

__all__ = [
    "MODULE",
    "build",
    "default_output",
    "jit_only",
    "launch",
    "recording",
    "resolve",
    "source_hash",
    "status",
]

#: Name of the extension module, inside ``bgdnoise._kernels``.
MODULE = "_compiled"
_ENV = "BGDNOISE_AOT"
_CPU_ENV = "BGDNOISE_AOT_CPU"
_HERE = Path(__file__).resolve().parent

_lock = threading.Lock()
_table: dict[Any, dict[tuple, Callable]] | None = None
_memo: dict[Any, dict[tuple, Callable]] = {}
_status: str | None = None
_jit_only = 0
_recorded: set[tuple[str, str, tuple[str, ...]]] | None = None


def source_hash() -> str:
    """SHA-256 of the kernel sources and the entry list, hex.

    Every ``bgdnoise/_kernels/*.py`` but this module and ``__main__.py``,
    whose code is not compiled (a change to :func:`build` itself needs
    ``make compiled`` by hand).
    """
    digest = hashlib.sha256()
    for path in sorted(_HERE.glob("*.py")):
        if path.name in ("aot.py", "__main__.py"):
            continue
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _hash_symbol(hex_digest: str) -> str:
    return "source_" + hex_digest[:32]


def _decode(text: str) -> types.Type:
    """A numba type from its ``repr`` (as :func:`_encode` wrote it)."""
    namespace = {k: v for k, v in vars(types).items() if not k.startswith("_")}
    namespace["bool"] = types.boolean
    decoded = eval(text, {"__builtins__": {}}, namespace)  # our own generated table
    if repr(decoded) != text:
        raise ValueError(f"numba type {text!r} does not round-trip (read as {decoded})")
    return decoded


def _encode(numba_type: types.Type) -> str:
    return repr(numba_type)


def _key(args: tuple) -> tuple:
    return tuple(numba.typeof(a) for a in args)


def _load() -> tuple[dict[Any, dict[tuple, Callable]], str]:
    if os.environ.get(_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return {}, "disabled"
    if numba.config.DISABLE_JIT:
        return {}, "no-jit"
    try:
        compiled = importlib.import_module(f"{__package__}.{MODULE}")
    except ImportError:
        return {}, "missing"
    if not hasattr(compiled, _hash_symbol(source_hash())):
        return {}, "stale"
    from ._aot_entries import ENTRIES

    table: dict[Any, dict[tuple, Callable]] = {}
    for index, (module, name, args, _) in enumerate(ENTRIES):
        kernel = getattr(importlib.import_module(f"{__package__}.{module}"), name)
        key = tuple(_decode(a) for a in args)
        table.setdefault(kernel, {})[key] = getattr(compiled, f"k{index}")
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
        ``"ok"`` (in use), ``"missing"`` (not built: no C compiler at install,
        or an install from a source tree without ``build_ext``), ``"stale"``
        (built from other kernel sources), ``"disabled"`` (``BGDNOISE_AOT=0``)
        or ``"no-jit"`` (``NUMBA_DISABLE_JIT=1``).
    """
    _get_table()
    assert _status is not None
    return _status


def resolve(kernel: Callable, args: tuple) -> Callable:
    """The compiled export of ``kernel`` for ``args``' types, else ``kernel``."""
    if _recorded is not None and isinstance(kernel, CPUDispatcher):
        function = kernel.py_func
        if function.__module__.startswith(f"{__package__}."):
            module = function.__module__.rsplit(".", 1)[1]
            _recorded.add((module, function.__qualname__, tuple(map(_encode, _key(args)))))
    if _jit_only:
        return kernel
    variants = _get_table().get(kernel)
    if not variants:
        return kernel
    # numba.typeof costs ~5 us an array; what decides an array's numba type
    # costs a fifth of that, and a correction launches kernels ~50 times.
    fingerprint = _fingerprint(args)
    if fingerprint is None:
        return variants.get(_key(args), kernel)
    memo = _memo.setdefault(kernel, {})
    found = memo.get(fingerprint)
    if found is None:
        found = memo[fingerprint] = variants.get(_key(args), kernel)
    return found


def _fingerprint(args: tuple) -> tuple | None:
    """What decides ``numba.typeof`` of each argument, or None if unsure."""
    parts: list[Any] = []
    for a in args:
        kind = type(a)
        if kind is np.ndarray:
            f = a.flags
            parts.append((a.dtype, a.ndim, f.c_contiguous, f.f_contiguous, f.writeable, f.aligned))
        elif kind is tuple:
            inner = _fingerprint(a)
            if inner is None:
                return None
            parts.append(inner)
        elif kind is int:
            parts.append((int, -(2**63) <= a < 2**63))
        elif kind in (bool, float) or isinstance(a, np.generic):
            parts.append(kind)
        else:
            return None
    return tuple(parts)


def launch(kernel: Callable, *args: Any) -> Any:
    """Call ``kernel(*args)``, through its compiled export where there is one."""
    return resolve(kernel, args)(*args)


@contextlib.contextmanager
def jit_only() -> Iterator[None]:
    """Run the numba dispatchers (JIT, cached) instead of the compiled exports.

    For :func:`bgdnoise.warm.warm_cache`, whose job is numba's cache, and for
    tests comparing the two. Not thread-safe against concurrent corrections.
    """
    global _jit_only
    _jit_only += 1
    try:
        yield
    finally:
        _jit_only -= 1


@contextlib.contextmanager
def recording() -> Iterator[set[tuple[str, str, tuple[str, ...]]]]:
    """Collect ``(module, function, argument types)`` of every kernel launched."""
    global _recorded
    seen: set[tuple[str, str, tuple[str, ...]]] = set()
    _recorded = seen
    try:
        yield seen
    finally:
        _recorded = None


# --- build time ---------------------------------------------------------------------------


def record_entries() -> list[tuple[str, str, tuple[str, ...], str]]:
    """Run :func:`bgdnoise.warm.warm_cases` with the JIT kernels and list the entries.

    Returns
    -------
    list of (module, function, argument types, return type)
        Sorted; types as numba writes them.
    """
    from ..warm import warm_cache

    with jit_only(), recording() as seen:
        warm_cache()
    entries = []
    for module, name, args in sorted(seen):
        kernel = getattr(importlib.import_module(f"{__package__}.{module}"), name)
        overload = kernel.overloads[tuple(_decode(a) for a in args)]
        entries.append((module, name, args, _encode(overload.signature.return_type)))
    return entries


def write_entries(entries: list[tuple[str, str, tuple[str, ...], str]]) -> Path:
    """Write :data:`._aot_entries.ENTRIES`."""
    lines = [
        '"""Kernel signatures compiled ahead of time (:mod:`.aot`).',
        "",
        "Generated by ``python -m bgdnoise._kernels record``: the kernels Python",
        "calls in :func:`bgdnoise.warm.warm_cases`, with their argument and return types.",
        '"""',
        "",
        "ENTRIES = (",
    ]
    for module, name, args, returns in entries:
        lines.append(f"    ({json.dumps(module)}, {json.dumps(name)}, (")
        lines += [f"        {json.dumps(a)}," for a in args]
        lines.append(f"    ), {json.dumps(returns)}),")
    lines.append(")")
    path = _HERE / "_aot_entries.py"
    path.write_text("\n".join(lines) + "\n")
    return path


@contextlib.contextmanager
def _releasing_gil() -> Iterator[None]:
    # pycc compiles its exports with default flags, which hold the GIL; the
    # kernels run in threads (:func:`.threads.run_ranges`) and must not.
    import numba.pycc.compiler as pycc_compiler

    original = pycc_compiler.Flags

    class Flags(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.release_gil = True

    pycc_compiler.Flags = Flags
    try:
        yield
    finally:
        pycc_compiler.Flags = original


def default_output() -> Path:
    """The extension's file next to the kernel sources (an in-place build)."""
    return _HERE / (MODULE + sysconfig.get_config_var("EXT_SUFFIX"))


def build(output: str | os.PathLike | None = None, cpu: str | None = None) -> Path:
    """Compile :data:`._aot_entries.ENTRIES` into the extension file ``output``.

    Parameters
    ----------
    output : path, optional
        The extension module's file (its name ends in the interpreter's
        extension suffix, ``_compiled.cpython-311-x86_64-linux-gnu.so``);
        by default :func:`default_output`.
    cpu : str, optional
        LLVM CPU name to compile for: ``"host"`` (the default, or
        ``BGDNOISE_AOT_CPU``) for the machine installing the package; a
        generic name (``"x86-64"``, ``"x86-64-v3"``) for wheels that run
        elsewhere.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", numba.NumbaPendingDeprecationWarning)
        from numba.pycc import CC

    from ._aot_entries import ENTRIES

    output = Path(default_output() if output is None else output).resolve()
    cc = CC(MODULE)
    cc.output_dir = str(output.parent)
    cc.output_file = output.name
    cc.target_cpu = cpu or os.environ.get(_CPU_ENV, "host")
    for index, (module, name, args, returns) in enumerate(ENTRIES):
        kernel = getattr(importlib.import_module(f"{__package__}.{module}"), name)
        signature = _decode(returns)(*(_decode(a) for a in args))
        cc.export(f"k{index}", signature)(kernel.py_func)
    cc.export(_hash_symbol(source_hash()), "int64()")(_zero)
    with _releasing_gil():
        cc.compile()
    return output


def _zero() -> int:
    return 0


_USAGE = "usage: python -m bgdnoise._kernels record | check | build [OUTPUT [CPU]]"


def main(argv: list[str] | None = None) -> int:
    """``python -m bgdnoise._kernels``: ``record`` the entries, ``check`` the
    extension is current (exit 1 if not; 0 if ``BGDNOISE_AOT=0``), ``build`` it."""
    argv = sys.argv[1:] if argv is None else argv
    command, rest = (argv[0], argv[1:]) if argv else ("", [])
    if command == "record" and not rest:
        print(write_entries(record_entries()))
        return 0
    if command == "check" and not rest:
        found = status()
        print(f"ahead-of-time kernels: {found}")
        return 0 if found in ("ok", "disabled") else 1
    if command == "build" and len(rest) <= 2:
        print(build(*rest))
        return 0
    print(_USAGE, file=sys.stderr)
    return 2
