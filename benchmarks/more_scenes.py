"""The default correction on scenes the quality benchmark does not have.

The benchmark's scenes (``make_quality_table.py``) are the cases its targets
were set on. This script runs the simulator's other scenes, a nebula filling
the frame, an edge-on disk along the lines, a galaxy cluster and a bright
star with diffraction spikes along the lines (2048x2048, 4 outputs, NGHXRG's
noise, seed 31), and prints the line / band residual and source bias of
bgdnoise's default, its plain path, astropy's per-line median and jwst's
median by channel as a Markdown table. It runs in under a minute;
``docs/quality.rst`` quotes one run.

Usage: ``python benchmarks/more_scenes.py [scene ...]``.
"""

from __future__ import annotations

import sys

from noise_models import emit, frame, print_table
from quality import METHODS, run_method

from bgdnoise.sim import NoiseModel

SCENES = ("nebula", "edge_on_disk", "galaxy_cluster", "bright_star")
#: The methods compared (keys of ``quality.METHODS``).
COMPARED = ("bgdnoise", "bgdnoise plain", "astropy", "jwst median by channel")


def _cell(score) -> str:
    bias = "n/a" if score.bias != score.bias else f"{score.bias:+.2f}"  # NaN: no faint sky
    return f"{score.line:.2f} / {score.band:.2f} ({bias})"


def rows(scenes=SCENES) -> list[str]:
    """The Markdown table's rows, one per scene."""
    out = ["| Scene | " + " | ".join(COMPARED) + " |", "|" + "---|" * (1 + len(COMPARED))]
    for scene in scenes:
        sim = frame(scene, NoiseModel())
        cells = [_cell(run_method(METHODS[m], sim, repeats=0, budget=0.0).score) for m in COMPARED]
        emit(out, f"| {scene} | " + " | ".join(cells) + " |")
    return out


def main(argv: list[str]) -> None:
    """Print the table for the scenes named in ``argv`` (default all four)."""
    print_table(rows, argv, SCENES)


if __name__ == "__main__":
    main(sys.argv[1:])
