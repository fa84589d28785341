"""How low a line-level correction can go on the benchmark's frames: the white-noise floors.

A correction subtracts one level per line (or per line and output band).
However the level is estimated, it carries the white noise of the pixels it
is measured on; the residuals of ``make_quality_table.py`` count that noise
as error. This script estimates the levels as well as anything can: with
the scene known exactly (``data - scene`` is stripes plus white noise), from
every good pixel of the line or band, each weighed by its inverse white-noise
variance (``sim.err``: sources' photon noise included), and the line levels
then Wiener-filtered over the lines as the correction's common level is
(:func:`bgdnoise.outputs.wiener_over_lines`). What that leaves is the floor
of the line and band residuals. No correction that must find the scene from
the data can go below it; one that masks the sources instead of knowing them
stays above it by the pixels it masks.

It prints, per benchmark frame, bgdnoise's default residual and issue 12's
target (both from ``quality_results.json``, the committed run of
``make_quality_table.py``) beside the floor, as a Markdown table, and takes
about a minute. ``docs/quality.rst`` quotes one run.

Usage: ``python benchmarks/floors.py [case ...]`` (keys of ``quality.CASES``).
"""

from __future__ import annotations

import itertools
import json
import sys
import warnings
from pathlib import Path

import numpy as np
from make_quality_table import check_targets
from quality import CASES

from bgdnoise.outputs import wiener_over_lines
from bgdnoise.sim.score import band_edges, score

RESULTS = Path(__file__).with_name("quality_results.json")


def _weighted_means(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted mean over the last axis (NaN where no weight)."""
    total = weights.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights * values).sum(axis=-1) / total


def _filtered(levels: np.ndarray, error_var: np.ndarray) -> np.ndarray:
    """Each plane's line levels ``(P, n_lines)`` Wiener-filtered over the lines."""
    out = levels.copy()
    for p in range(levels.shape[0]):
        valid = np.isfinite(levels[p]) & np.isfinite(error_var[p])
        mean = float(levels[p, valid].mean())
        stripe = wiener_over_lines(levels[p] - mean, valid, error_var[p], low_excess="signal")
        out[p, valid] = mean + stripe[valid]
    return out


def floor_levels(sim) -> tuple[np.ndarray, np.ndarray]:
    """The best line and band levels of ``sim``: ``(line, band)`` models shaped like its data."""
    cube = sim.data.ndim == 3
    data = sim.data if cube else sim.data[None]
    # Lines along the last axis.
    along = (lambda a: a) if sim.readout.axis == "rows" else (lambda a: np.swapaxes(a, -1, -2))
    noise = data - sim.scene  # stripes + white noise
    good = np.isfinite(noise)
    weights = np.where(good, 1.0 / np.asarray(sim.err, np.float64) ** 2, 0.0)
    values, weights = along(np.where(good, noise, 0.0)), along(weights)
    line = _weighted_means(values, weights)
    with np.errstate(divide="ignore"):
        line = _filtered(line, 1.0 / weights.sum(axis=-1))
    band = np.empty(values.shape)
    edges = band_edges(values.shape[-1])
    for start, stop in itertools.pairwise(edges):
        means = _weighted_means(values[..., start:stop], weights[..., start:stop])
        band[..., start:stop] = means[..., None]
    line = np.broadcast_to(line[..., None], values.shape)
    models = [along(np.nan_to_num(m)) for m in (line, band)]
    return tuple(m if cube else m[0] for m in models)


def rows(keys) -> list[str]:
    """The Markdown table's rows for the cases ``keys``."""
    results = json.loads(RESULTS.read_text())
    targets = {t["key"]: t for t in check_targets(results)}
    out = [
        "| Frame | Line: bgdnoise | target | floor | Band: bgdnoise | target | floor |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in CASES:
        if case.key not in keys:
            continue
        sim = case.simulate()
        line_model, band_model = floor_levels(sim)
        floors = {
            "line": score(sim, (sim.data - line_model).astype(np.float32)).line,
            "band": score(sim, (sim.data - band_model).astype(np.float32)).band,
        }
        cells = []
        for measure in ("line", "band"):
            target = targets[case.key][measure]
            below = " (below the floor)" if target["limit"] < floors[measure] else ""
            cells += [
                f"{target['value']:.3f}",
                f"{target['limit']:.3f}{below}",
                f"{floors[measure]:.3f}",
            ]
        out.append(f"| {case.label} | " + " | ".join(cells) + " |")
        print(out[-1], file=sys.stderr, flush=True)
    return out


def main(argv: list[str]) -> None:
    """Print the table for the cases named in ``argv`` (default every benchmark frame)."""
    warnings.simplefilter("ignore")
    print("\n".join(rows(set(argv) or {c.key for c in CASES})))


if __name__ == "__main__":
    main(sys.argv[1:])
