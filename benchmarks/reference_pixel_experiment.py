"""Experiment: do the side reference pixels see the default's slowest line errors?

Not a method of the package: a measurement for the next step of issue 12
(docs/algorithm.rst, "A lead, measured but not yet built").

A full frame's side reference pixels (4 columns at each end of every row)
are read by the first and last outputs with the science pixels of their
line: they carry that output's 1/f stripe (common and own part) and no
light. What the default correction leaves on them (their mean per line minus
the level the correction subtracted from the output's nearest science
pixel) is that output's stripe error plus the reference pixels' own noise.
At the lowest line frequencies that noise, averaged over hundreds of lines,
is small, while the default's error there is the scene's faint light (a
crowded field's density, a galaxy's wings) that the science pixels cannot
tell from a stripe.

The experiment low-passes each outer output's reference residual over the
lines (a sharp cut at ``periods`` lines and longer, the mean left out) and
subtracts it from that output's part of every line, leaving the inner
outputs as they are, then scores both against the simulation's truth::

    python benchmarks/reference_pixel_experiment.py                 # 256 lines, seeds +0, +100
    python benchmarks/reference_pixel_experiment.py --periods 128 --shifts 0 100 200

Only the 2048x2048 row-read cases of :data:`quality.CASES` have side
reference pixels.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality

import bgdnoise
from bgdnoise.sim.score import score

CASES = ("sparse", "crowded", "galaxy", "sky_gradient", "sky_gradient_across")
SIDE = 4  # reference columns at each end of a full-frame row
OUTPUT = 512  # columns per output of a full frame


def low_pass(values: np.ndarray, use: np.ndarray, periods: int, gate: bool) -> np.ndarray:
    """The part of ``values`` (one per line) at periods of ``periods`` lines and more.

    Lines not in ``use`` count as 0 after the median of the others is taken
    out; the mean (frequency 0) is left out too. ``gate``: each kept mode is
    weighted ``1 - noise / power`` (at least 0), ``noise`` being the mean
    power of the upper half of the frequencies, where the correction's own
    error is small against the reference pixels' noise (a Wiener weight
    from one mode's power).
    """
    n = values.size
    centred = np.where(use, values - np.median(values[use]), 0.0)
    spectrum = np.fft.rfft(centred)
    spectrum[0] = 0.0
    spectrum[np.arange(spectrum.size) > n / periods] = 0.0
    if gate:
        power = np.abs(np.fft.rfft(centred)) ** 2
        noise = power[power.size // 2 :].mean()
        with np.errstate(divide="ignore", invalid="ignore"):
            spectrum *= np.clip(1.0 - noise / power, 0.0, 1.0)
    return np.fft.irfft(spectrum, n)


def anchored(sim, corrected: np.ndarray, periods: int, gate: bool = False) -> np.ndarray:
    """``corrected`` with each outer output's slow reference residual taken out."""
    data = sim.data.astype(np.float64)
    result = corrected.astype(np.float64)
    subtracted = data - result  # the correction's model, per pixel
    nx = data.shape[1]
    lines = ~sim.reference.all(axis=1)
    sides = (
        (slice(0, SIDE), SIDE, slice(0, OUTPUT)),
        (slice(nx - SIDE, nx), nx - SIDE - 1, slice(nx - OUTPUT, nx)),
    )
    for reference, nearest, output in sides:
        residual = data[:, reference].mean(axis=1) - subtracted[:, nearest]
        use = lines & np.isfinite(residual)
        result[:, output] -= low_pass(residual, use, periods, gate)[:, None]
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--periods", type=int, default=256, help="shortest period kept (lines)")
    parser.add_argument("--shifts", type=int, nargs="+", default=[0, 100], help="seed shifts")
    parser.add_argument("--cases", nargs="+", default=list(CASES))
    parser.add_argument("--gate", action="store_true", help="Wiener-weight each kept mode")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    by_key = {case.key: case for case in quality.CASES}
    gated = ", Wiener-weighted" if args.gate else ""
    print(f"line / band residual; outer outputs anchored at periods >= {args.periods} lines{gated}")
    for key in args.cases:
        for shift in args.shifts:
            case = dataclasses.replace(by_key[key], seed=by_key[key].seed + shift)
            sim = case.simulate()
            geometry = bgdnoise.readout_geometry(sim.product_header())
            corrected = bgdnoise.correct_array(
                sim.data, geometry.axis, dq=sim.dq, n_outputs=geometry.n_outputs
            )
            before = score(sim, corrected)
            after = score(sim, anchored(sim, corrected, args.periods, args.gate))
            print(
                f"{key:20s} seed +{shift:<4d} default {before.line:.3f} / {before.band:.3f}"
                f"  anchored {after.line:.3f} / {after.band:.3f}"
            )


if __name__ == "__main__":
    main()
