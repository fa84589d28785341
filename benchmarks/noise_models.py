"""The default correction under other noise models than the simulator's default.

The quality benchmark (``make_quality_table.py``) simulates NGHXRG's default
noise amplitudes. A real detector's 1/f can be stronger or weaker against
the white noise, steeper or shallower, and more of it can be each output's
own. This script simulates the sparse field, the crowded field and the
large galaxy (2048x2048, 4 outputs, seed 31) under such models and prints
the line / band residual of bgdnoise's default, its plain path and jwst's
median by channel (the best peer on most of the benchmark's full frames) as
a Markdown table. It runs in about five minutes; ``docs/quality.rst``
quotes one run.

Usage: ``python benchmarks/noise_models.py [scene ...]``.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings

from quality import METHODS, Frame, run_method

from bgdnoise.sim import NoiseModel, SimulatedRate, simulate_rate

#: The noise models: NGHXRG's defaults and one change each.
MODELS = {
    "NGHXRG defaults": NoiseModel(),
    "1/f x3": NoiseModel(common_pink=9.0, output_pink=3.0),
    "1/f x1/3": NoiseModel(common_pink=1.0, output_pink=0.3),
    "spectrum f^-1.6": NoiseModel(pink_exponent=1.6),
    "spectrum f^-0.7": NoiseModel(pink_exponent=0.7),
    "own 1/f = common": NoiseModel(common_pink=2.0, output_pink=2.0),
    "offsets x5": NoiseModel(output_offset=0.05, odd_even_offset=0.01),
}
#: The methods compared (keys of ``quality.METHODS``).
COMPARED = ("bgdnoise", "bgdnoise plain", "jwst median by channel")
SCENES = ("sparse", "crowded", "galaxy")
SEED = 31


def frame(scene: str, noise: NoiseModel) -> Frame:
    """One 2048x2048, 4-output frame of ``scene`` under ``noise`` (synthetic header)."""
    sim = simulate_rate(scene, (2048, 2048), "rows", 4, seed=SEED, noise=noise)
    values = {f.name: getattr(sim, f.name) for f in dataclasses.fields(SimulatedRate)}
    return Frame(**values, primary=None, sci=None)


def rows(scenes=SCENES) -> list[str]:
    """The Markdown table's rows, one per scene and noise model."""
    head = "| Scene | Noise model | " + " | ".join(COMPARED) + " |"
    out = [head, "|" + "---|" * (2 + len(COMPARED))]
    for scene in scenes:
        for name, noise in MODELS.items():
            sim = frame(scene, noise)
            cells = []
            for method in COMPARED:
                outcome = run_method(METHODS[method], sim, repeats=0, budget=0.0)
                cells.append(f"{outcome.score.line:.2f} / {outcome.score.band:.2f}")
            emit(out, f"| {scene} | {name} | " + " | ".join(cells) + " |")
    return out


def emit(out: list[str], row: str) -> None:
    """Add ``row`` to the table ``out`` and show it on stderr as it comes."""
    out.append(row)
    print(row, file=sys.stderr, flush=True)


def print_table(rows_of, argv: list[str], default_scenes) -> None:
    """Print ``rows_of(scenes)`` for the scenes named in ``argv`` (default ``default_scenes``)."""
    warnings.simplefilter("ignore")  # the peers' own warnings: not what is measured
    print("\n".join(rows_of(tuple(argv) or default_scenes)))


def main(argv: list[str]) -> None:
    """Print the table for the scenes named in ``argv`` (default all three)."""
    print_table(rows, argv, SCENES)


if __name__ == "__main__":
    main(sys.argv[1:])
