"""Compile every kernel a correction uses into numba's on-disk cache.

The kernels are compiled by numba on their first call (tens of seconds with
an empty cache) and written to its cache, from which a later process loads
them in well under a second (docs/install.rst). :func:`warm_cache` makes
that first call ahead of time, for a container image, a cluster worker's
setup or a CI cache: it runs :func:`bgdnoise.correct_array` on small
synthetic arrays along every path that picks its kernels and their
signatures, so that a later correction of any size compiles nothing.

What picks a kernel's signature is the types of its arguments, never the
size of the data: the data's dtype (float32 or float64) and whether it is
writable, the DQ array's dtype (uint32 in JWST products), and the paths the
stages take in Python (lines along rows or columns, one output or several,
odd/even columns, the source mask and the modelled background or the plain
per-line path, a single plane or a cube). 64x256 planes take every path a
full frame takes: the extended sources are searched on lines binned by 4
(256-pixel rows, one output), by 2, and unbinned (64-pixel columns, four
outputs).
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba.core import event

from .dqflags import DO_NOT_USE, REFERENCE_PIXEL

__all__ = ["WarmCase", "WarmResult", "cache_dir", "warm_cache", "warm_cases"]

#: Plane shape of the synthetic data: small, yet every path of a full frame (the
#: source search's 40-pixel boxes, built from its 4-pixel cells, need 128 lines).
SHAPE = (128, 512)
#: Planes of the synthetic cube (the scene from their median).
CUBE_PLANES = 3
_DTYPES = (np.float32, np.float64)
_AXES = ("rows", "columns")


@dataclass(frozen=True)
class WarmCase:
    """One call of :func:`~bgdnoise.correct_array` made by :func:`warm_cache`.

    Attributes
    ----------
    label : str
        What the call covers, as printed.
    dtype : numpy.dtype
        dtype of the data.
    axis : {"rows", "columns"}
        Direction of the lines.
    planes : int
        0 for a 2D plane, else the planes of a cube.
    dq : numpy.dtype or None
        dtype of a DQ array to pass (reference pixels on the border), or
        None for none.
    mask : bool
        Pass a boolean mask of pixels to leave out.
    readonly : bool
        Pass the data as a read-only array.
    options : dict
        Keywords of ``correct_array``.
    """

    label: str
    dtype: np.dtype
    axis: str
    planes: int = 0
    dq: np.dtype | None = None
    mask: bool = False
    readonly: bool = False
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class WarmResult:
    """What :func:`warm_cache` did.

    Attributes
    ----------
    cases : list of (str, float)
        Each call's label and seconds.
    compiled : int
        Kernel signatures of bgdnoise that numba compiled (0: the cache was
        already warm).
    compile_seconds : float
        Seconds spent compiling (numba's ``numba:compile`` events).
    seconds : float
        Seconds in all.
    cache_dir : str or None
        Where numba writes bgdnoise's kernels; None when they are not cached.
    cache_status : str or None
        :data:`bgdnoise._numba_cache.cache_status`: ``"ok"`` for a cache that
        outlives the process, ``"temporary"`` (removed when the process
        exits), ``"disabled"`` or ``"no-jit"``.
    """

    cases: list[tuple[str, float]]
    compiled: int
    compile_seconds: float
    seconds: float
    cache_dir: str | None
    cache_status: str | None

    @property
    def persistent(self) -> bool:
        """Whether the compiled kernels outlive this process."""
        return self.cache_status == "ok"


def warm_cases() -> list[WarmCase]:
    """The calls :func:`warm_cache` makes, in order.

    Returns
    -------
    list of WarmCase
        For float32 and float64 data and both axes: the defaults (source
        mask, modelled background) with DQ, 4 outputs, odd/even and the
        model returned, and without DQ on one output; the median
        background; the plain path (``mask_sources=False,
        background_method=None``) with DQ and a mask on 4 outputs with
        odd/even, and without flags with ``scale="line"``. Then for each
        dtype a cube with the defaults and with the plain path, and
        read-only data along rows and along columns; last, DQ arrays of
        uint16 and uint8.
    """
    plain = {"mask_sources": False, "background_method": None}
    four = {"n_outputs": 4, "odd_even": True}
    dq32 = np.dtype(np.uint32)
    cases = []
    for dtype in map(np.dtype, _DTYPES):
        for axis in _AXES:
            cases += [
                WarmCase("defaults, DQ, 4 outputs, odd/even, model", dtype, axis, dq=dq32,
                         options={**four, "return_model": True}),
                WarmCase("defaults", dtype, axis),
                WarmCase("median background, DQ", dtype, axis, dq=dq32,
                         options={"background_method": "median"}),
                WarmCase("plain, DQ and mask, 4 outputs, odd/even", dtype, axis, dq=dq32,
                         mask=True, options={**plain, **four}),
                WarmCase("plain, scale=line", dtype, axis, options={**plain, "scale": "line"}),
            ]  # fmt: skip
        cases += [
            WarmCase("cube, defaults, DQ, 4 outputs", dtype, "rows", CUBE_PLANES, dq=dq32,
                     options={"n_outputs": 4}),
            WarmCase("cube, plain", dtype, "columns", CUBE_PLANES, options=plain),
            WarmCase("read-only data, defaults, DQ", dtype, "rows", dq=dq32, readonly=True),
            WarmCase("read-only data, defaults, DQ", dtype, "columns", dq=dq32, readonly=True),
        ]  # fmt: skip
    for dq in (np.uint16, np.uint8):
        cases.append(WarmCase(f"plain, {np.dtype(dq)} DQ", np.dtype(np.float32), "rows",
                              dq=np.dtype(dq), options=plain))  # fmt: skip
    return cases


def _synthetic(case: WarmCase, rng: np.random.Generator) -> dict[str, Any]:
    """Data (sky, noise, stripes, a few sources, NaNs), DQ and mask for ``case``."""
    ny, nx = SHAPE
    lead = (case.planes,) if case.planes else ()
    stripes = lead + ((ny, 1) if case.axis == "rows" else (1, nx))
    yy, xx = np.ogrid[:ny, :nx]
    sources = sum(
        flux * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * width**2))
        for y, x, flux, width in ((20, 40, 2.0, 1.5), (40, 150, 0.3, 5.0), (10, 220, 20.0, 1.0))
    )
    data = rng.normal(1.0, 0.05, lead + SHAPE) + rng.normal(0.0, 0.1, stripes) + sources
    data.reshape(-1)[rng.choice(data.size, 8, replace=False)] = np.nan
    data = data.astype(case.dtype)
    data.flags.writeable = not case.readonly
    inputs: dict[str, Any] = {"data": data}
    if case.dq is not None:
        dq = np.zeros(SHAPE, case.dq)
        if np.iinfo(case.dq).max >= REFERENCE_PIXEL:  # a full frame's border
            dq[:4] = dq[-4:] = dq[:, :4] = dq[:, -4:] = REFERENCE_PIXEL
        dq[5, 100:110] = DO_NOT_USE
        inputs["dq"] = dq
    if case.mask:
        mask = np.zeros(SHAPE, bool)
        mask[30:34, 60:64] = True
        inputs["mask"] = mask
    return inputs


class _CompileTimer(event.Listener):
    """A numba ``numba:compile`` listener: bgdnoise signatures compiled, seconds.

    Compiling a kernel compiles the kernels it calls within the same event:
    only the outermost events of each thread add to the seconds.
    """

    def __init__(self) -> None:
        self.compiled = 0
        self.seconds = 0.0
        self._local = threading.local()
        self._lock = threading.Lock()

    def _stack(self) -> list[float]:
        return self._local.__dict__.setdefault("stack", [])

    def on_start(self, ev: event.Event) -> None:
        """A compilation starts (in this thread)."""
        self._stack().append(time.perf_counter())

    def on_end(self, ev: event.Event) -> None:
        """A compilation ends: count it if it is bgdnoise's."""
        stack = self._stack()
        if not stack:  # started before the listener was installed
            return
        elapsed = time.perf_counter() - stack.pop()
        module = getattr(ev.data["dispatcher"].py_func, "__module__", None) or ""
        with self._lock:
            self.compiled += module.split(".")[0] == "bgdnoise"
            if not stack:
                self.seconds += elapsed


def cache_dir() -> str | None:
    """The directory numba writes bgdnoise's kernels to, or None if they are not cached."""
    from ._kernels.lines import _line_levels_range

    return getattr(getattr(_line_levels_range, "_cache", None), "_cache_path", None)


def warm_cache(*, report: Callable[[str], None] | None = None) -> WarmResult:
    """Compile every kernel signature a correction uses, into numba's cache.

    Runs :func:`bgdnoise.correct_array` on small synthetic arrays along
    every path (:func:`warm_cases`), so that later processes using the same
    cache load the kernels instead of compiling them, whatever the size of
    their data. Set ``NUMBA_CACHE_DIR`` first to choose the cache
    (docs/install.rst); already cached kernels are only loaded, so a second
    run takes a second or two.

    Parameters
    ----------
    report : callable, optional
        Called with one line of text per call made (what it covered, its
        seconds), e.g. ``print``.

    Returns
    -------
    WarmResult
        The calls, how many kernel signatures were compiled and in how
        many seconds, where the cache is.

    Notes
    -----
    Covered, and checked to compile nothing more afterwards: float32 and
    float64 data, writable or read-only (integer and big-endian data are
    converted to float32 or native order first), lines along rows and
    columns, with and without DQ (uint32 as in JWST products; uint16 and
    uint8, which have their own flag kernel; other dtypes are converted to
    uint32), masks and MaskedArrays, one or more outputs, odd/even columns,
    the defaults, the median background and the plain path, ``scale``
    global and line, 2D planes, cubes and 4D stacks, the stripe model
    returned or not; so also :func:`~bgdnoise.measure_levels`,
    :func:`~bgdnoise.source_mask` and :func:`~bgdnoise.correct_file` on
    ``_rate``, ``_rateints``, ``_cal`` and ``_ramp`` products, which run
    the same kernels.
    """
    from . import _numba_cache
    from ._kernels.aot import jit_only
    from .core import correct_array

    timer = _CompileTimer()
    rng = np.random.default_rng(2048)
    cases: list[tuple[str, float]] = []
    start = time.perf_counter()
    # The JIT kernels even where the ahead-of-time ones would run: this fills numba's cache.
    with event.install_listener("numba:compile", timer), warnings.catch_warnings(), jit_only():
        # Lines of the small synthetic planes left without a usable pixel: not news.
        warnings.simplefilter("ignore", RuntimeWarning)
        for case in warm_cases():
            inputs = _synthetic(case, rng)
            data = inputs.pop("data")
            began = time.perf_counter()
            correct_array(data, case.axis, **inputs, **case.options)
            seconds = time.perf_counter() - began
            shape = "x".join(map(str, data.shape))
            label = f"{data.dtype} {shape} {case.axis}: {case.label}"
            cases.append((label, seconds))
            if report is not None:
                report(f"  {label} ({seconds:.2f} s)")
    return WarmResult(
        cases=cases,
        compiled=timer.compiled,
        compile_seconds=timer.seconds,
        seconds=time.perf_counter() - start,
        cache_dir=cache_dir(),
        cache_status=_numba_cache.cache_status,
    )
