"""Seeded cases whose outputs are pinned bit for bit (tests/data/pinned.json).

The refactor of the correction into stages must not change a bit of what it
returns. Since the scene stages (source mask, background model) became the
defaults, the cases run the plain path (``mask_sources=False,
background_method=None``), which must stay exactly what it was.
``python tests/pinned_cases.py`` rewrites the JSON from the code as it is:
run it only when a change of results is intended, and say so in the commit.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np

import bgdnoise
from bgdnoise.simulate import make_frame

PINNED = Path(__file__).parent / "data" / "pinned.json"
PLAIN = {"mask_sources": False, "background_method": None}


def correct(*args, **kwargs):
    """``correct_array`` on the plain path."""
    return bgdnoise.correct_array(*args, **PLAIN, **kwargs)


def _frame(shape, axis, seed, **kw):
    frame = make_frame(shape, axis, seed=seed, **kw)
    data = frame.data.copy()
    rng = np.random.default_rng(seed + 100)
    data[rng.random(data.shape) < 0.002] = np.nan
    data[rng.random(data.shape) < 0.001] = 0.0
    return data


def _dq(shape, seed):
    rng = np.random.default_rng(seed + 200)
    dq = np.zeros(shape[-2:], np.uint32)
    dq[:4] = dq[-4:] = dq[:, :4] = dq[:, -4:] = 2**31 | 1  # reference pixels
    dq[rng.random(shape[-2:]) < 0.003] |= 1
    return dq


def cases() -> dict[str, dict]:
    """name -> {"call": callable returning arrays}."""
    rows = _frame((256, 512), "rows", 1, n_outputs=4, output_offset_rms=0.02, odd_even_rms=0.005)
    cols = _frame((300, 200), "columns", 2)
    cube = _frame((3, 128, 256), "rows", 3, n_outputs=4)
    mask = np.random.default_rng(4).random(rows.shape) < 0.05
    background = np.linspace(0.0, 0.01, rows.size).reshape(rows.shape)
    dq = _dq(rows.shape, 5)
    return {
        "defaults rows": lambda: correct(rows, "rows"),
        "defaults columns": lambda: correct(cols, "columns"),
        "4 outputs odd/even dq model": lambda: correct(
            rows, "rows", dq=dq, n_outputs=4, odd_even=True, return_model=True
        ),
        "line scale asymmetric": lambda: correct(
            cols, "columns", scale="line", sigma_lower=2.0, sigma_upper=4.0, maxiters=None
        ),
        "mask background no level": lambda: correct(
            rows, "rows", mask=mask, background=background, keep_level=False
        ),
        "cube 4 outputs": lambda: correct(cube, "rows", n_outputs=4),
        "float32 min_fraction": lambda: correct(
            rows.astype(np.float32), "rows", n_outputs=4, dq=dq, min_fraction=0.9
        ),
        "measure_levels": lambda: tuple(
            getattr(bgdnoise.measure_levels(rows, "rows", dq=dq, n_outputs=4, odd_even=True), k)
            for k in ("levels", "raw", "counts", "line", "fallback", "plane_level", "scale")
        ),
    }


def digest(result) -> str:
    arrays = result if isinstance(result, tuple) else (result,)
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def compute() -> dict[str, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {name: digest(call()) for name, call in cases().items()}


if __name__ == "__main__":
    PINNED.write_text(json.dumps(compute(), indent=2) + "\n")
    print(f"wrote {PINNED}")
