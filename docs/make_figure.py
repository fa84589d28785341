"""Draw the README's before/after picture from a synthetic frame.

Run ``.venv/bin/python docs/make_figure.py``; writes docs/_static/before_after.png.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from bgdnoise import correct_array
from bgdnoise.simulate import make_frame

frame = make_frame(
    (1024, 1024),
    "rows",
    n_outputs=4,
    output_offset_rms=0.01,
    odd_even_rms=0.002,
    source_fraction=0.3,
    seed=1,
)
corrected = correct_array(frame.data, "rows", n_outputs=4, odd_even=True)
crop = np.s_[300:556, 0:1024]
lo, hi = frame.sky - 4 * frame.sigma, frame.sky + 6 * frame.sigma
fig, axes = plt.subplots(2, 1, figsize=(9, 5.2), constrained_layout=True)
for ax, image, title in zip(
    axes,
    (frame.data, corrected),
    ("before: 1/f stripes and 4 outputs", "after bgdnoise"),
    strict=True,
):
    ax.imshow(image[crop], origin="lower", cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
out = Path(__file__).parent / "_static" / "before_after.png"
fig.savefig(out, dpi=90)
print(out)
