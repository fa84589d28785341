"""Correction quality: every method on the same simulated frames, scored against the truth.

The registry :data:`METHODS` maps a name to a :class:`Method`, a callable
``method(sim) -> corrected`` (float32, shape of ``sim.data``) split into an
untimed ``prepare(sim)`` (build the input a user would have: a datamodel
opened from the product, the geometry read from its header) and a timed
``run(prepared)``. Each :class:`Case` simulates one frame (seeded) on the
header of a real product where one fits; :func:`run_case` runs every method
on it and scores each with :func:`bgdnoise.sim.score`.

``"bgdnoise"`` is the default correction (source mask and a smooth background
fitted with the line levels); ``"bgdnoise plain"`` the per-line correction
without them (``mask_sources=False, background_method=None``). Add another
bgdnoise variant by name with options (passed to ``correct_array`` beside the
geometry read from the product's header)::

    METHODS["bgdnoise no background"] = bgdnoise_method(background_method=None)

``benchmarks/make_quality_table.py`` runs all cases and methods and writes
the tables and figures; ``tests/test_quality.py`` runs :data:`SMALL_CASES`.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from bgdnoise.sim import Readout, Score, SimulatedRate, readout_for, score, simulate_rate

ROOT = Path(__file__).resolve().parent.parent
HEADERS = ROOT / "tests" / "data" / "headers"
#: One-bit flags of the DQ array that mark a pixel without data.
DO_NOT_USE = 1


# --- the frames ------------------------------------------------------------------------------


@dataclass
class Frame(SimulatedRate):
    """A simulation with the headers of the product it is written as.

    ``primary`` and ``sci`` are None for the simulator's synthetic header.
    """

    primary: Any = None
    sci: Any = None

    @property
    def planes(self) -> int:
        """Frames (integrations) in the data."""
        return 1 if self.data.ndim == 2 else self.data.shape[0]

    def product_header(self):
        """The primary header the product is written with (real or synthetic)."""
        from bgdnoise.sim.products import synthetic_header

        if self.primary is not None:
            return self.to_hdulist(self.primary, self.sci)[0].header
        return synthetic_header(self, **_SYNTHETIC_CARDS.get(self.scene_name, {}))

    def write(self, path: Path) -> Path:
        """Write the product (``..._rate.fits`` or ``..._rateints.fits``) to ``path``."""
        return self.save(path, self.product_header(), self.sci)


# A NIRISS SOSS-like product for the curved trace when no real header fits.
_SYNTHETIC_CARDS = {"curved_trace": {"INSTRUME": "NIRISS", "DETECTOR": "NIS"}}


def read_header(name: str, part: str):
    """The ``primary`` or ``sci`` header of a fixture in ``tests/data/headers``."""
    from astropy.io import fits

    text = (HEADERS / f"{name}.{part}.txt").read_text()
    return fits.Header.fromstring(text, sep="\n")


@dataclass(frozen=True)
class Case:
    """One simulated frame (or cube) of the comparison.

    Attributes
    ----------
    key : str
        Identifier (JSON key, figure name).
    label : str
        What the table calls it.
    scene : str
        A scene of :data:`bgdnoise.sim.SCENES`.
    shape : tuple of int
        ``(ny, nx)``.
    axis : {"rows", "columns"}
        Lines along rows or columns.
    n_outputs : int
        Outputs of the readout.
    nints : int or None
        Integrations (a ``_rateints`` cube) or None (a ``_rate``).
    header : str or None
        Fixture in ``tests/data/headers`` whose primary and SCI headers the
        product is written with (its readout, ramp included, is simulated);
        None: the simulator's synthetic header, 5 groups.
    seed : int
        Seed of the simulation.
    """

    key: str
    label: str
    scene: str
    shape: tuple[int, int]
    axis: str
    n_outputs: int
    nints: int | None = None
    header: str | None = None
    seed: int = 0

    def simulate(self) -> Frame:
        """The frame, seeded: equal cases give equal frames."""
        primary = sci = None
        if self.header:
            primary, sci = read_header(self.header, "primary"), read_header(self.header, "sci")
            readout = readout_for(primary)
        else:
            readout = Readout.for_axis(self.axis, self.n_outputs)
        if (readout.axis, readout.n_outputs) != (self.axis, self.n_outputs):
            raise ValueError(
                f"{self.key}: the header {self.header} reads {readout.axis} with "
                f"{readout.n_outputs} outputs, the case says {self.axis} with {self.n_outputs}."
            )
        sim = simulate_rate(
            self.scene, shape=self.shape, nints=self.nints, seed=self.seed, readout=readout
        )
        values = {f.name: getattr(sim, f.name) for f in fields(SimulatedRate)}
        return Frame(**values, primary=primary, sci=sci)

    def describe(self) -> dict:
        """The case as JSON-ready values."""
        return {
            "key": self.key, "label": self.label, "scene": self.scene,
            "shape": list(self.shape), "axis": self.axis, "n_outputs": self.n_outputs,
            "nints": self.nints, "header": self.header, "seed": self.seed,
        }  # fmt: skip


FULL = "nircam-nrca2-full-coron-uncal"
GRISM_1 = "nircam-nrcalong-subgrism256-1out-rate"
GRISM_4 = "nircam-nrcalong-subgrism256-4out-rate"

#: The comparison of the README and docs: full-size frames on real headers where one fits.
CASES = (
    Case("sparse", "sparse field, 2048x2048, 4 outputs", "sparse", (2048, 2048), "rows", 4,
         header=FULL, seed=1),
    Case("crowded", "crowded field, 2048x2048, 4 outputs", "crowded", (2048, 2048), "rows", 4,
         header=FULL, seed=2),
    Case("galaxy", "large galaxy, 2048x2048, 4 outputs", "galaxy", (2048, 2048), "rows", 4,
         header=FULL, seed=3),
    Case("sky_gradient", "sky gradient along the lines, 2048x2048, 4 outputs", "sky_gradient",
         (2048, 2048), "rows", 4, header=FULL, seed=8),
    Case("sky_gradient_across", "sky gradient across the lines, 2048x2048, 4 outputs",
         "sky_gradient_across", (2048, 2048), "rows", 4, header=FULL, seed=9),
    Case("grism_trace_1out", "grism trace, 256x2048, 1 output", "grism_trace", (256, 2048),
         "rows", 1, header=GRISM_1, seed=4),
    Case("grism_trace_4out", "grism trace, 256x2048, 4 outputs", "grism_trace", (256, 2048),
         "rows", 4, header=GRISM_4, seed=5),
    Case("curved_trace", "curved trace, 256x2048, columns, 1 output", "curved_trace",
         (256, 2048), "columns", 1, seed=6),
    Case("grism_trace_cube", "grism trace rateints, 3x256x2048, 1 output", "grism_trace",
         (256, 2048), "rows", 1, nints=3, header=GRISM_1, seed=7),
)  # fmt: skip

#: The same comparison on smaller frames (synthetic headers, 5 groups), for ``make test``.
#: Lines of 1024 pixels: two 512-pixel bands. Square fields, so that the galaxy (r_e 6% of
#: the side) covers as much of its lines as on a full frame.
SMALL_CASES = (
    Case("sparse", "sparse field, 1024x1024, 4 outputs", "sparse", (1024, 1024), "rows", 4,
         seed=11),
    Case("crowded", "crowded field, 1024x1024, 4 outputs", "crowded", (1024, 1024), "rows", 4,
         seed=12),
    Case("galaxy", "large galaxy, 1024x1024, 4 outputs", "galaxy", (1024, 1024), "rows", 4,
         seed=13),
    Case("sky_gradient", "sky gradient along the lines, 1024x1024, 4 outputs", "sky_gradient",
         (1024, 1024), "rows", 4, seed=18),
    Case("sky_gradient_across", "sky gradient across the lines, 1024x1024, 4 outputs",
         "sky_gradient_across", (1024, 1024), "rows", 4, seed=19),
    Case("grism_trace_1out", "grism trace, 128x1024, 1 output", "grism_trace", (128, 1024),
         "rows", 1, seed=14),
    Case("grism_trace_4out", "grism trace, 128x1024, 4 outputs", "grism_trace", (128, 1024),
         "rows", 4, seed=15),
    Case("curved_trace", "curved trace, 128x1024, columns, 1 output", "curved_trace",
         (128, 1024), "columns", 1, seed=16),
    Case("grism_trace_cube", "grism trace rateints, 3x128x1024, 1 output", "grism_trace",
         (128, 1024), "rows", 1, nints=3, seed=17),
)  # fmt: skip


# --- the methods -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    """A correction as a user would call it.

    Attributes
    ----------
    description : str
        What is called, for the docs.
    run : callable
        ``run(prepared) -> corrected``: the correction, timed.
    prepare : callable
        ``prepare(sim) -> prepared``: its input (untimed); default the
        simulation itself.
    """

    description: str
    run: Callable[[Any], np.ndarray]
    prepare: Callable[[Frame], Any] = field(default=lambda sim: sim)

    def __call__(self, sim: Frame) -> np.ndarray:
        """The corrected data, float32, shape of ``sim.data``."""
        return np.asarray(self.run(self.prepare(sim)), dtype=np.float32)


def bgdnoise_method(**options: Any) -> Method:
    """bgdnoise's ``correct_array`` with ``options``, on the geometry ``correct_file`` reads.

    ``correct_file`` reads the stripe direction and the outputs from the
    product's header (:func:`bgdnoise.readout_geometry`) and leaves every
    other option at its default; so does this, with ``options`` on top.
    """
    import bgdnoise

    def prepare(sim: Frame):
        geometry = bgdnoise.readout_geometry(sim.product_header())
        kwargs = {"n_outputs": geometry.n_outputs, **options}
        return sim.data, geometry.axis, sim.dq, kwargs

    def run(prepared):
        data, axis, dq, kwargs = prepared
        return bgdnoise.correct_array(data, axis, dq=dq, **kwargs)

    text = ", ".join(f"{k}={v!r}" for k, v in options.items())
    return Method(
        "bgdnoise.correct_array(sci, axis, dq=dq, n_outputs=...) with the axis and outputs "
        "correct_file reads from the header" + (f", {text}" if text else "") + ".",
        run,
        prepare,
    )


def _astropy_run(sim: Frame) -> np.ndarray:
    from astropy.stats import sigma_clipped_stats

    data = sim.data
    mask = ((sim.dq & DO_NOT_USE) != 0) | ~np.isfinite(data)
    along = -1 if sim.axis == "rows" else -2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # lines with no usable pixel
        _, median, _ = sigma_clipped_stats(data, mask=mask, axis=along)
    median = np.asarray(median, dtype=np.float64)
    levels = median - np.nanmedian(median, axis=-1, keepdims=True)
    levels = np.nan_to_num(levels, nan=0.0)
    return (data - np.expand_dims(levels, along)).astype(np.float32)


ASTROPY = Method(
    "astropy.stats.sigma_clipped_stats(sci, mask=DO_NOT_USE | NaN, axis=<along the line>) "
    "(sigma 3, 5 iterations): each line's clipped median, minus their median, subtracted.",
    _astropy_run,
)


def _jwst_model(sim: Frame):
    """The product as a user has it: written on its header, opened with stdatamodels."""
    from stdatamodels.jwst import datamodels

    suffix = "rateints" if sim.data.ndim == 3 else "rate"
    with tempfile.TemporaryDirectory() as directory:
        path = sim.write(Path(directory) / f"jw99999001001_01101_00001_sim_{suffix}.fits")
        model = datamodels.open(str(path))
        for name in ("data", "dq", "err"):
            getattr(model, name)  # load before the file goes
    return model


def jwst_method(**options: Any) -> Method:
    """jwst ``clean_flicker_noise.do_correction(model, fit_method="median", **options)``."""

    def run(model):
        from jwst.clean_flicker_noise.clean_flicker_noise import do_correction

        for name in ("jwst", "stpipe"):
            logging.getLogger(name).setLevel(logging.ERROR)
        output, *_, status = do_correction(model, fit_method="median", **options)
        if status != "COMPLETE":
            raise RuntimeError(f"clean_flicker_noise {options} returned {status}.")
        return output.data

    text = ", ".join(f"{k}={v!r}" for k, v in options.items())
    return Method(
        f'jwst clean_flicker_noise.do_correction(model, fit_method="median", {text}) on the '
        "ImageModel/CubeModel opened from the product; other parameters default "
        "(mask_science_regions=False, n_sigma=2, single_mask=True).",
        run,
        _jwst_model,
    )


#: name -> method, in the tables' order.
METHODS: dict[str, Method] = {
    "bgdnoise": bgdnoise_method(),
    "bgdnoise plain": bgdnoise_method(mask_sources=False, background_method=None),
    "astropy": ASTROPY,
    "jwst median": jwst_method(background_method="median"),
    "jwst median by channel": jwst_method(background_method="median", fit_by_channel=True),
    "jwst model": jwst_method(background_method="model"),
}

#: The methods of the small comparison run by ``make test``.
#: Thresholds guard "bgdnoise" only; the others are recorded beside it.
SMALL_METHODS = ("bgdnoise", "bgdnoise plain", "astropy")


# --- running ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One method on one frame: its score and what it returned."""

    score: Score
    corrected: np.ndarray


def _timed_call(method: Method, sim: Frame) -> float:
    """Seconds of one call of ``method`` on ``sim`` (its inputs prepared first)."""
    prepared = method.prepare(sim)
    start = time.perf_counter()
    method.run(prepared)
    return time.perf_counter() - start


def _wants_more(times: list[float], repeats: int, budget: float) -> bool:
    """Up to ``repeats`` timed calls, fewer once ``budget`` seconds are spent (at least one)."""
    return len(times) < repeats and (not times or sum(times) < budget)


def _outcome(sim: Frame, corrected: np.ndarray, times: list[float]) -> Outcome:
    seconds = statistics.median(times) / sim.planes if times else None
    return Outcome(score(sim, corrected, seconds), corrected)


def run_method(method: Method, sim: Frame, repeats: int = 7, budget: float = 2.0) -> Outcome:
    """Run ``method`` on ``sim``: score the first call, time the next ones.

    The first call (scored, not timed) also warms up: numba's cache, jwst's
    imports. Then up to ``repeats`` timed calls, fewer once ``budget``
    seconds are spent (at least one); the median per frame is reported.
    ``repeats=0``: no timing (``seconds`` None).
    """
    corrected = method(sim)
    times: list[float] = []
    while _wants_more(times, repeats, budget):
        times.append(_timed_call(method, sim))
    return _outcome(sim, corrected, times)


def run_case(
    case: Case,
    methods: Iterable[str] | None = None,
    *,
    repeats: int = 7,
    budget: float = 2.0,
    registry: dict[str, Method] | None = None,
) -> tuple[Frame, dict[str, Outcome]]:
    """Simulate ``case`` and run the named methods (default all) on it.

    Each method is scored on a first call (as :func:`run_method`); the timed
    calls then go in rounds, one call of each method that wants more per
    round (up to ``repeats``, within ``budget`` seconds each), so that a
    busy spell of the shared machine falls on every method of the case
    alike rather than on one (the table reads their times as ratios).
    """
    registry = METHODS if registry is None else registry
    sim = case.simulate()
    names = list(registry) if methods is None else list(methods)
    corrected = {name: registry[name](sim) for name in names}
    times: dict[str, list[float]] = {name: [] for name in names}
    while wanting := [n for n in names if _wants_more(times[n], repeats, budget)]:
        for name in wanting:
            times[name].append(_timed_call(registry[name], sim))
    return sim, {name: _outcome(sim, corrected[name], times[name]) for name in names}
