"""How low a line-level correction can go on the benchmark's frames, with the scene known.

A correction subtracts one level per line and output band. However the
levels are estimated, they carry the white noise of the pixels they are
measured on; the residuals of ``make_quality_table.py`` count that noise as
error. This script estimates them as well as we know how with the scene
known exactly (``data - scene`` is stripes plus white noise): from every
good pixel, each weighed by its inverse white-noise variance (``sim.err``:
the sources' photon noise included), the line's level Wiener-filtered over
the lines as the correction's common level is
(``bgdnoise.outputs._filtered_common``), and the bands' levels either
their own means or, as the outputs share most of the stripe, the line's
level plus each band's constant offset and its deviation, filtered the same
way; the lower residual of these is the floor. It is a reference, not a
proven bound: a better estimator could go below it. A
correction that must find the scene in the data, and masks the sources
instead of knowing them, has the same noise on fewer pixels and the light
it misses besides.

It prints, per benchmark frame, bgdnoise's default residual and issue 12's
target (both from ``quality_results.json``, the committed run of
``make_quality_table.py``) beside the floor, as a Markdown table, in under
a minute. ``docs/quality.rst`` quotes one run.

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

from bgdnoise.outputs import _filtered_common as _filtered  # the default's common filter
from bgdnoise.sim.score import band_edges, score

RESULTS = Path(__file__).with_name("quality_results.json")


def _weighted_means(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted mean over the last axis (NaN where no weight)."""
    total = weights.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights * values).sum(axis=-1) / total


def floor_models(sim) -> list[np.ndarray]:
    """Levels of ``sim`` with its scene known, two ways: models shaped like its data.

    One level per line (its pixels' weighted mean, filtered); one per band
    (the band's weighted mean); the line's filtered level plus each
    band's constant offset and filtered deviation from it (better where the
    outputs share most of the stripe; worse on a line one output reads,
    whose bands' parts are the 1/f within the line, not noise).
    """
    cube = sim.data.ndim == 3
    data = sim.data if cube else sim.data[None]
    # Lines along the last axis.
    along = (lambda a: a) if sim.readout.axis == "rows" else (lambda a: np.swapaxes(a, -1, -2))
    noise = data - sim.scene  # stripes + white noise
    good = np.isfinite(noise)
    weights = np.where(good, 1.0 / np.asarray(sim.err, np.float64) ** 2, 0.0)
    values, weights = along(np.where(good, noise, 0.0)), along(weights)
    with np.errstate(divide="ignore"):
        line = _filtered(_weighted_means(values, weights), 1.0 / weights.sum(axis=-1))
    means = np.broadcast_to(line[..., None], values.shape)
    separate, shared = np.empty(values.shape), np.empty(values.shape)
    for start, stop in itertools.pairwise(band_edges(values.shape[-1])):
        band = _weighted_means(values[..., start:stop], weights[..., start:stop])
        separate[..., start:stop] = band[..., None]
        offset = np.nanmedian(band - line, axis=-1, keepdims=True)  # per plane and band
        with np.errstate(divide="ignore"):
            own = _filtered(band - line - offset, 1.0 / weights[..., start:stop].sum(axis=-1))
        shared[..., start:stop] = (line + offset + own)[..., None]
    models = []
    for model in (means, separate, shared):
        model = along(np.nan_to_num(model))
        models.append(model if cube else model[0])
    return models


def floors(sim) -> dict[str, float]:
    """The lowest line and band residuals of :func:`floor_models`' levels."""
    scores = [score(sim, (sim.data - m).astype(np.float32)) for m in floor_models(sim)]
    return {"line": min(s.line for s in scores), "band": min(s.band for s in scores)}


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
        lowest = floors(sim)
        cells = []
        for measure in ("line", "band"):
            target = targets[case.key][measure]
            below = " (below the floor)" if target["limit"] < lowest[measure] else ""
            cells += [
                f"{target['value']:.3f}",
                f"{target['limit']:.3f}{below}",
                f"{lowest[measure]:.3f}",
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
