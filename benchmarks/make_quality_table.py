"""Run the correction-quality comparison and write its table and figures.

Usage::

    python benchmarks/make_quality_table.py            # all cases x methods (a few minutes)
    python benchmarks/make_quality_table.py --check    # README/docs tables == the JSON?
    python benchmarks/make_quality_table.py --render   # rewrite the tables from the JSON
    python benchmarks/make_quality_table.py --small    # thresholds of tests/test_quality.py

The full run simulates every case of ``quality.CASES`` (seeded), runs every
method of ``quality.METHODS`` on it, writes ``benchmarks/quality_results.json``,
the scene x method table between the ``quality-table`` markers of README.md
and docs/quality.rst, the reading of that table against issue 12's targets
(:func:`check_targets`) between their ``quality-targets`` markers, and one
figure per case into ``docs/_static/quality_<case>.png`` (with matplotlib,
the ``plot`` extra; skipped with a message without it). Nothing of it is
edited by hand.

``--small`` runs ``quality.SMALL_CASES`` with ``quality.SMALL_METHODS``
(bgdnoise, its plain path, astropy) and writes ``tests/data/quality_small.json``:
what was measured and the thresholds ``tests/test_quality.py`` holds the
default bgdnoise (only) to, ``max(1.15 x, + 0.02)`` of the
measured line and band residual and |bias| (room for floating-point
differences between machines, not for a worse correction). Regenerate it
whenever the correction improves, so that the test guards the new level.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import math
import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "quality_results.json"
SMALL = ROOT / "tests" / "data" / "quality_small.json"
README = ROOT / "README.md"
DOCS = ROOT / "docs" / "quality.rst"
STATIC = ROOT / "docs" / "_static"
MD_START, MD_END = "<!-- quality-table:start -->", "<!-- quality-table:end -->"
RST_START, RST_END = ".. quality-table:start", ".. quality-table:end"
MD_TARGETS = "<!-- quality-targets:start -->", "<!-- quality-targets:end -->"
RST_TARGETS = ".. quality-targets:start", ".. quality-targets:end"
COMMAND = "python benchmarks/make_quality_table.py"
#: Thresholds of the small comparison: max(FACTOR x measured, measured + PLUS).
FACTOR, PLUS = 1.15, 0.02
PACKAGES = ("bgdnoise", "numpy", "numba", "astropy", "jwst", "stdatamodels", "photutils")


# --- measuring -------------------------------------------------------------------------------


def machine_info() -> dict:
    """CPU, cores, threads and package versions of this run."""
    import numba

    try:
        import cpuinfo

        cpu = cpuinfo.get_cpu_info().get("brand_raw", platform.processor())
    except ImportError:  # pragma: no cover - py-cpuinfo comes with pytest-benchmark
        cpu = platform.processor() or "unknown CPU"
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = "not installed"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "numba_threads": numba.get_num_threads(),
        "python": platform.python_version(),
        "packages": packages,
    }


def source_state() -> dict | None:
    """Which bgdnoise was measured: a commit and whether the code run is exactly its.

    The files of the imported ``bgdnoise`` package are compared (git blob
    hashes) with ``bgdnoise/`` at HEAD and the commits before it; the one
    measured is the commit that last changed ``bgdnoise/`` in the newest that
    matches (``clean``). None matching (a working tree with uncommitted
    changes): HEAD, not clean. None without git.
    """
    import bgdnoise

    package = Path(bgdnoise.__file__).resolve().parent
    files = sorted(str(f.relative_to(package)) for f in package.rglob("*.py"))

    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout  # fmt: skip

    def tree(commit):
        out = {}
        for line in git("ls-tree", "-r", commit, "bgdnoise").splitlines():
            meta, name = line.split("\t", 1)
            if name.endswith(".py"):
                out[name.removeprefix("bgdnoise/")] = meta.split()[2]
        return out

    try:
        here = dict(zip(files, git("hash-object", *(str(package / f) for f in files)).split(),
                        strict=True))  # fmt: skip
        commits = git("rev-list", "--max-count=50", "HEAD").split()
        for commit in commits:
            if tree(commit) == here:  # the commit that last changed bgdnoise/
                last = git("log", "-1", "--format=%H", commit, "--", "bgdnoise").strip()
                return {"commit": last[:12], "clean": True}
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": commits[0][:12], "clean": False}


def _load() -> float | None:
    """The 1-minute load average (other processes slow the timed calls down), or None."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def measure(cases, methods, *, repeats=7, budget=2.0, figures=None, log=print) -> dict:
    """Run ``methods`` (names) on every case; figures into ``figures`` (a directory) if given."""
    load, source = _load(), source_state()
    scores = {}
    for case in cases:
        sim, outcomes = quality.run_case(case, methods, repeats=repeats, budget=budget)
        scores[case.key] = {name: o.score.as_dict() for name, o in outcomes.items()}
        log(f"{case.key}: " + "; ".join(_short(name, o.score) for name, o in outcomes.items()))
        if figures is not None:
            path = draw_figure(case, sim, outcomes, Path(figures) / f"quality_{case.key}.png")
            log(f"  figure: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return {
        "command": COMMAND,
        "date": datetime.date.today().isoformat(),
        "machine": {**machine_info(), "load": {"start": load, "end": _load()}},
        "source": source,
        "repeats": repeats,
        "budget": budget,
        "cases": [case.describe() for case in cases],
        "methods": {name: quality.METHODS[name].description for name in methods},
        "scores": scores,
    }


def _short(name, s) -> str:
    seconds = "" if s.seconds is None else f", {_seconds(s.seconds)}"
    return f"{name} {_number(s.line)}/{_number(s.band)}/{_number(s.bias, True)}{seconds}"


# --- the tables ------------------------------------------------------------------------------


def _number(value, signed=False) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    sign = "+" if signed and value >= 0 else ""
    return f"{value:{sign}.0f}" if abs(value) >= 10 else f"{value:{sign}.2f}"


def _seconds(value) -> str:
    if value is None:
        return ""
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.1f} ms"
    return f"{value * 1e6:.0f} us"


HEADER = ("Scene", "Method", "Line", "Band", "Bias (sigma)", "Time per frame")


def rows(results: dict) -> list[tuple[str, ...]]:
    """The table's rows: one per case and method, in the run's order."""
    out = []
    for case in results["cases"]:
        for name, s in results["scores"][case["key"]].items():
            out.append(
                (case["label"], name, _number(s["line"]), _number(s["band"]),
                 _number(s["bias"], signed=True), _seconds(s["seconds"]))
            )  # fmt: skip
    return out


def footnote(results: dict) -> str:
    """Where and how the numbers were measured."""
    m = results["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    load = m.get("load") or {}
    if load.get("start") is not None and load.get("end") is not None:
        load = f" (1-minute load average {load['start']:.1f} before, {load['end']:.1f} after)"
    else:
        load = ""
    source = results.get("source")
    if source:
        changes = "" if source["clean"] else " with uncommitted changes"
        source = f" (bgdnoise of commit {source['commit']}{changes})"
    return (
        f"One run of `{results['command']}`{source or ''} on {results['date']}: "
        f"{m['cpu']}, {m['cores']} cores{load}, {m['numba_threads']} numba threads, "
        f"Python {m['python']}; {versions}. "
        "Seeded simulations (`bgdnoise.sim`), scored with `bgdnoise.sim.score`; time per "
        f"frame is the median of up to {results['repeats']} calls after a first, untimed one "
        f"(fewer once {results.get('budget', 2.0):g} s are spent: one or two for jwst), "
        "timed in rounds of one call of each method. "
        "Generated from `benchmarks/quality_results.json`, not edited by hand."
    )


def render_markdown(results: dict) -> str:
    """The README's table (markdown) with its footnote."""
    lines = ["| " + " | ".join(HEADER) + " |", "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows(results)]
    return "\n".join(lines + ["", footnote(results)])


def render_rst(results: dict) -> str:
    """The docs page's table (reStructuredText), footnote and figures."""
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in (HEADER, *rows(results)):
        lines.append(f"   * - {row[0]}")
        lines += [f"     - {cell}" if cell else "     -" for cell in row[1:]]
    lines += ["", footnote(results).replace("`", "``"), ""]
    lines += ["Figures", "-------", ""]
    lines += [
        "Each figure shows, on one colour scale, the injected stripes and what each method "
        "left, ``corrected - scene - white`` (each minus its median; the first integration of "
        "a cube; block-averaged for display).",
        "",
    ]
    for case in results["cases"]:
        lines += [
            f".. figure:: _static/quality_{case['key']}.png",
            f"   :alt: {case['label']}: injected stripes and each method's residual",
            "",
            f"   {case['label']}.",
            "",
        ]
    return "\n".join(lines).rstrip("\n")


# --- issue 12's targets ----------------------------------------------------------------------

#: The default correction (held to the targets) and the plain path (speed only).
DEFAULT, PLAIN = "bgdnoise", "bgdnoise plain"
#: Line and band residual at most RATIO x the best peer's (GALAXY_RATIO on the galaxy).
RATIO, GALAXY_RATIO = 0.6, 0.3
#: |bias| at most the best peer's + BIAS_PLUS sigma, or BIAS_FLOOR sigma where that is larger.
BIAS_PLUS, BIAS_FLOOR = 0.05, 0.2
#: Speed-ups over jwst's fastest mode on the full (2048x2048) frames: default, plain path.
SPEEDUP, PLAIN_SPEEDUP = 10.0, 50.0


def _is_peer(name: str) -> bool:
    return not name.startswith("bgdnoise")


def _is_full_frame(case: dict) -> bool:
    return case["nints"] is None and list(case["shape"]) == [2048, 2048]


def check_targets(results: dict) -> list[dict]:
    """Issue 12's targets, per case, from the scores of ``results``.

    A peer is every method that is not bgdnoise (astropy and the jwst modes);
    "best peer" is the best value among them for each measure on its own
    (lowest line, lowest band, lowest |bias|). Each entry: the case's label,
    and per measure (``line``, ``band``, ``bias``, ``speed``; ``speed`` on
    full frames only, where the target is set) a dict with ``value``,
    ``limit``, ``met`` and what it was compared with.
    """
    out = []
    for case in results["cases"]:
        scores = results["scores"][case["key"]]
        if DEFAULT not in scores:
            continue
        mine = scores[DEFAULT]
        peers = {name: s for name, s in scores.items() if _is_peer(name)}
        ratio = GALAXY_RATIO if case["scene"] == "galaxy" else RATIO
        entry = {"key": case["key"], "label": case["label"]}
        for measure in ("line", "band"):
            peer, best = min(((n, s[measure]) for n, s in peers.items()), key=lambda x: x[1])
            entry[measure] = {
                "value": mine[measure], "peer": peer, "best": best, "ratio": ratio,
                "limit": ratio * best, "met": mine[measure] <= ratio * best,
            }  # fmt: skip
        # No bias where the scene leaves no faint sky to compare with (NaN): not a target.
        measured = [(n, abs(s["bias"])) for n, s in peers.items() if math.isfinite(s["bias"])]
        if measured and math.isfinite(mine["bias"]):
            peer, best = min(measured, key=lambda x: x[1])
            limit = max(best + BIAS_PLUS, BIAS_FLOOR)
            met = abs(mine["bias"]) <= limit
        else:
            peer, best, limit, met = None, math.nan, math.nan, None
        entry["bias"] = {
            "value": mine["bias"], "peer": peer, "best": best, "limit": limit, "met": met,
        }  # fmt: skip
        jwst = {n: s["seconds"] for n, s in peers.items() if n.startswith("jwst") and s["seconds"]}
        if jwst and mine["seconds"]:
            fastest = min(jwst, key=jwst.get)
            speed = {
                "peer": fastest,
                "peer_seconds": jwst[fastest],
                "seconds": mine["seconds"],
                "value": jwst[fastest] / mine["seconds"],
            }
            plain = scores.get(PLAIN, {}).get("seconds")
            if plain:
                speed["plain_seconds"] = plain
                speed["plain_value"] = jwst[fastest] / plain
            if _is_full_frame(case):
                speed["limit"], speed["met"] = SPEEDUP, speed["value"] >= SPEEDUP
                if plain:
                    speed["plain_met"] = speed["plain_value"] >= PLAIN_SPEEDUP
            entry["speed"] = speed
        out.append(entry)
    return out


def _verdict(met: bool) -> str:
    return "met" if met else "**not met**"


def _ratio(value: float) -> str:
    return f"{value:.0f}x" if value >= 10 else f"{value:.2f}x"


def _scene(label: str) -> str:
    """The case's label without its size: "grism trace, 1 output"."""
    return ", ".join(p for p in label.split(", ") if not p[:1].isdigit() or "output" in p)


def _cell(entry: dict, measure: str) -> str:
    t = entry[measure]
    if measure == "bias" and t["met"] is None:
        return "n/a (no faint sky in the scene to compare with)"
    if measure == "bias":
        value, limit = _pair(abs(t["value"]), t["limit"])
        return (f"{value}; limit {limit} "
                f"(best peer {t['peer']} {_number(t['best'])}): {_verdict(t['met'])}")  # fmt: skip
    return (f"{_number(t['value'])} = {_ratio(t['value'] / t['best'])} best peer {t['peer']} "
            f"{_number(t['best'])}; limit {t['ratio']}x: {_verdict(t['met'])}")  # fmt: skip


def _speed_cell(entry: dict) -> str:
    t = entry.get("speed")
    if t is None:
        return "n/a"
    text = f"{_times(t['value'], t.get('limit', SPEEDUP), 1)} faster than {t['peer']} "
    text += f"({_seconds(t['peer_seconds'])})"
    text += f", limit {t['limit']:.0f}x: {_verdict(t['met'])}" if "met" in t else ""
    if "plain_value" in t:
        text += f"; plain path {_times(t['plain_value'], PLAIN_SPEEDUP, 0)}"
        if "plain_met" in t:
            text += f", limit {PLAIN_SPEEDUP:.0f}x: {_verdict(t['plain_met'])}"
    if "met" not in t:
        text += " (no target on subarrays)"
    return text


def _pair(value: float, limit: float) -> tuple[str, str]:
    """``value`` and ``limit`` with enough decimals (2 to 4) that they differ on the page."""
    for digits in (2, 3, 4):
        left, right = f"{value:.{digits}f}", f"{limit:.{digits}f}"
        if left != right:
            break
    return left, right


def _span(values: list[float], digits: int = 2, limit: float | None = None) -> str:
    low, high = min(values), max(values)
    if limit is not None:  # a low end just short of the limit must not print as the limit
        digits = max(digits, _decimals(low, limit, digits))
    return f"{low:.{digits}f}x" if low == high else f"{low:.{digits}f}-{high:.{digits}f}x"


def _decimals(value: float, limit: float, least: int) -> int:
    """Decimals (``least`` to 3) that print ``value`` apart from ``limit`` where they differ."""
    digits = least
    while digits < 3 and value != limit and f"{value:.{digits}f}" == f"{limit:.{digits}f}":
        digits += 1
    return digits


def _times(value: float, limit: float, least: int) -> str:
    """A speed-up against its limit, with ``least`` decimals or more: ``"49.99x"``, not
    ``"50x"``, just short of 50."""
    return f"{value:.{_decimals(value, limit, least)}f}x"


def _phrases(checks: list[dict]) -> tuple[int, int, list[str]]:
    """(targets met, targets checked, a phrase per kind of target: how many met, by how much)."""
    met = total = 0
    out = []
    for measure in ("line", "band"):
        hits = [e for e in checks if e[measure]["met"]]
        ratios = [e[measure]["value"] / e[measure]["best"] for e in checks]
        names = f" ({', '.join(_scene(e['label']) for e in hits)})" if hits else ""
        out.append(
            f"{measure} residual: {len(hits)} of {len(checks)} scenes{names}, the default "
            f"at {_span(ratios)} the best peer's"
        )
        met, total = met + len(hits), total + len(checks)
    measured = [e for e in checks if e["bias"]["met"] is not None]
    misses = [e for e in measured if not e["bias"]["met"]]
    text = f"|bias|: {len(measured) - len(misses)} of {len(measured)}"
    if misses:
        text += " (not met: " + "; ".join(
            "{}, {} > {}".format(_scene(e["label"]), *_pair(abs(e["bias"]["value"]),
                                                           e["bias"]["limit"]))
            for e in misses
        ) + ")"  # fmt: skip
    if len(measured) < len(checks):
        text += " (n/a where the scene leaves no faint sky: " + ", ".join(
            _scene(e["label"]) for e in checks if e["bias"]["met"] is None
        ) + ")"  # fmt: skip
    out.append(text)
    met, total = met + len(measured) - len(misses), total + len(measured)
    speeds = (("met", "value", SPEEDUP, "default"),
              ("plain_met", "plain_value", PLAIN_SPEEDUP, "plain path"))  # fmt: skip
    for flag, key, limit, name in speeds:
        timed = [e["speed"] for e in checks if flag in e.get("speed", {})]
        if timed:
            hits = sum(s[flag] for s in timed)
            out.append(
                f"{name} at least {limit:.0f}x faster than jwst's fastest mode: {hits} of "
                f"{len(timed)} full frames ({_span([s[key] for s in timed], 1, limit)})"
            )
            met, total = met + hits, total + len(timed)
    return met, total, out


def summary(results: dict) -> str:
    """One paragraph: how many of issue 12's targets the run meets, and which it misses."""
    met, total, phrases = _phrases(check_targets(results))
    return (
        f"In the run of {results['date']} the default meets {met} of issue 12's {total} "
        f"targets (line and band residual at most {RATIO}x the best peer's, {GALAXY_RATIO}x "
        f"on the galaxy; |bias| at most the best peer's + {BIAS_PLUS} sigma or {BIAS_FLOOR} "
        "sigma; speed on the 2048x2048 frames). Met, by target: " + "; ".join(phrases) + "."
    )


def render_targets_markdown(results: dict) -> str:
    """The README's paragraph on the targets."""
    return summary(results) + " Per scene: [docs/quality.rst](docs/quality.rst)."


def render_targets_rst(results: dict) -> str:
    """The docs page's reading of the table against the targets (list-table and summary)."""
    header = ("Scene", "Line", "Band", "|Bias| (sigma)", "Time per frame against jwst")
    lines = [".. list-table::", "   :header-rows: 1", ""]
    body = [
        (e["label"], _cell(e, "line"), _cell(e, "band"), _cell(e, "bias"), _speed_cell(e))
        for e in check_targets(results)
    ]
    for row in (header, *body):
        lines.append(f"   * - {row[0]}")
        lines += [f"     - {cell}" for cell in row[1:]]
    lines += [
        "",
        summary(results).replace("`", "``"),
        "",
        "Generated from ``benchmarks/quality_results.json``, not edited by hand.",
    ]
    return "\n".join(lines).replace("|", "\\|")  # a literal |, not a substitution


def update(text: str, block: str, start: str, end: str) -> str:
    """``text`` with what lies between the markers ``start`` and ``end`` replaced by ``block``."""
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n\n{block}\n\n{end}{tail}"


def _targets(results: dict) -> list[tuple[Path, str]]:
    readme = update(README.read_text(), render_markdown(results), MD_START, MD_END)
    readme = update(readme, render_targets_markdown(results), *MD_TARGETS)
    docs = update(DOCS.read_text(), render_rst(results), RST_START, RST_END)
    docs = update(docs, render_targets_rst(results), *RST_TARGETS)
    return [(README, readme), (DOCS, docs)]


def stale(results: dict) -> list[Path]:
    """The files whose table (or reading of the targets) differs from what ``results`` gives."""
    return [path for path, new in _targets(results) if path.read_text() != new]


def write_tables(results: dict) -> None:
    """Write the tables and the reading of the targets into README.md and docs/quality.rst."""
    for path, new in _targets(results):
        path.write_text(new)


# --- the figures -----------------------------------------------------------------------------


def _blocks(image: np.ndarray, factors: tuple[int, int]) -> np.ndarray:
    """NaN-aware block means (trailing rows/columns that do not fill a block dropped)."""
    fy, fx = factors
    ny, nx = image.shape[0] // fy * fy, image.shape[1] // fx * fx
    view = image[:ny, :nx].reshape(ny // fy, fy, nx // fx, fx)
    finite = np.isfinite(view)
    count = finite.sum(axis=(1, 3))
    total = np.where(finite, view, 0.0).sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def draw_figure(case, sim, outcomes, path: Path) -> Path:
    """The injected stripes and each method's residual, one colour scale, to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = (lambda a: a[0]) if sim.data.ndim == 3 else (lambda a: a)
    use = sim.good & ~sim.reference
    truth = sim.scene + first(sim.white).astype(np.float64)

    def residual(array):
        error = np.where(use, first(array).astype(np.float64) - truth, np.nan)
        return error - np.nanmedian(error)

    panels = [("injected stripes", residual(sim.data))]
    for name, o in outcomes.items():
        s = o.score
        title = f"{name}\nline {_number(s.line)}, band {_number(s.band)}, "
        panels.append((title + f"bias {_number(s.bias, True)} sigma", residual(o.corrected)))
    ny, nx = truth.shape
    wide = nx >= 4 * ny
    # About as many values as the panel has pixels on the page (72 dpi).
    target = (96, 640) if wide else (224, 224)
    factors = (max(1, ny // target[0]), max(1, nx // target[1]))
    shown = [(title, _blocks(image, factors)) for title, image in panels]
    limit = float(np.nanpercentile(np.abs(shown[0][1]), 99.5))
    layout = (len(shown), 1) if wide else (2, math.ceil(len(shown) / 2))
    size = (10, 1.7 * len(shown)) if wide else (3.3 * layout[1], 3.7 * layout[0])
    cmap = plt.get_cmap("RdBu_r", 21)  # discrete levels: small files, still readable
    fig, axes = plt.subplots(*layout, figsize=size, constrained_layout=True, squeeze=False)
    for ax in axes.flat[len(shown) :]:
        ax.set_visible(False)
    for ax, (title, image) in zip(axes.flat, shown, strict=False):
        im = ax.imshow(image, origin="lower", cmap=cmap, vmin=-limit, vmax=limit,
                       aspect="auto" if wide else "equal", interpolation="nearest")  # fmt: skip
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes, shrink=0.8, label="DN/s")
    fig.suptitle(f"{case.label} (lines along {sim.axis})", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=72)
    plt.close(fig)
    _save_indexed(buffer, path)
    return path


def _save_indexed(buffer, path: Path, colours: int = 64) -> None:
    """The PNG in ``buffer`` as a palette PNG of ``colours`` colours (a few times smaller)."""
    from PIL import Image

    buffer.seek(0)
    with Image.open(buffer) as image:
        indexed = image.convert("RGB").quantize(
            colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
        indexed.save(path, optimize=True)


# --- the small comparison of make test --------------------------------------------------------


def threshold(value: float) -> float:
    """What the test allows for a measured ``value`` (>= 0): max(1.15 x, + 0.02)."""
    return max(FACTOR * value, value + PLUS)


def measure_small(log=print) -> dict:
    """Run the small comparison; the thresholds of ``tests/test_quality.py``."""
    methods = quality.SMALL_METHODS
    results = measure(quality.SMALL_CASES, methods, repeats=0, log=log)
    limits = {}
    for key, by_method in results["scores"].items():
        s = by_method["bgdnoise"]
        limits[key] = {
            "line": threshold(s["line"]),
            "band": threshold(s["band"]),
            "abs_bias": threshold(abs(s["bias"])),
        }
    return {
        "command": f"{COMMAND} --small",
        "rule": f"threshold = max({FACTOR} x measured, measured + {PLUS}) for bgdnoise's line "
        "and band residual and |bias|; regenerate (never edit) when the correction improves",
        "date": results["date"],
        "source": results["source"],
        "packages": results["machine"]["packages"],
        "cases": results["cases"],
        "methods": results["methods"],
        "scores": results["scores"],
        "thresholds": limits,
    }


# --- command line ----------------------------------------------------------------------------


def _dump(data: dict, path: Path) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if a table is stale")
    mode.add_argument("--render", action="store_true", help="rewrite the tables from the JSON")
    mode.add_argument("--small", action="store_true", help=f"write {SMALL.relative_to(ROOT)}")
    parser.add_argument("--no-figures", action="store_true", help="do not redraw the figures")
    parser.add_argument(
        "--repeats", type=int, default=7,
        help="timed calls per method, fewer once 2 s are spent (7)",
    )  # fmt: skip
    args = parser.parse_args(argv)

    if args.small:
        _dump(measure_small(), SMALL)
        print(f"wrote {SMALL.relative_to(ROOT)}")
        return 0
    if args.check or args.render:
        results = json.loads(RESULTS.read_text())
        if args.check:
            old = stale(results)
            for path in old:
                print(f"{path.relative_to(ROOT)}: quality table is stale: run {COMMAND} --render")
            return 1 if old else 0
        write_tables(results)
        return 0

    figures = None
    if not args.no_figures:
        try:
            import matplotlib  # noqa: F401

            figures = STATIC
        except ImportError:
            print("matplotlib is not installed (pip install -e '.[plot]'): figures not redrawn")
    results = measure(quality.CASES, list(quality.METHODS), repeats=args.repeats, figures=figures)
    _dump(results, RESULTS)
    write_tables(results)
    print(f"wrote {RESULTS.relative_to(ROOT)}, README.md and docs/quality.rst")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
