"""Private numba kernels: arithmetic only, no validation.

Every function here assumes its inputs were checked and converted by the
caller (:mod:`bgdnoise.stages`): native byte order, C-contiguous, the
documented shapes.  Kernels are plain loops on arrays, ``cache=True``, no
fastmath; settings and per-thread scratch travel as tuples of scalars and
preallocated arrays (a jitclass or StructRef would stop caching). Kernels over
whole planes are ``nogil`` loops over rows, lines or work items, taken a part
at a time (``start, stop = claim(claims)`` until none is left), called through
a wrapper of the old name that runs them in threads
(:func:`.threads.run_ranges`; as many as ``numba.get_num_threads()``, each
claiming the next part: a thread slowed by another process takes fewer): no
``parallel=True``, which costs seconds of compilation per kernel and
milliseconds to start a parallel region on a busy machine.

Modules
-------
``lines``       :func:`line_levels`, the driver: gather a block of lines,
                then estimate each group's level and its sky (the mean
                within the clip around it).
``gather``      a line's usable pixels, per group.
``binned``      the clipped median on a bucket-sorted copy (``histogram``).
``partition``   the clipped median by in-place partitioning (short lines,
                extreme values); ``select`` and ``moments`` serve both.
``dispersion``  :func:`plane_dispersion`, the per-plane white-noise sigma.
``model``       :func:`subtract_levels`; ``flags``: :func:`build_flags`,
                :func:`or_exclude`, :func:`finite_unexcluded`.
``mask``        source-mask arithmetic: cell sums and their pooling, box
                means, thresholds, dilation, sample medians, per-line counts;
                ``planes``: residual, binning along lines, the median of a
                few planes.
``surface``     the smooth background: per-line sums, banded normal
                equations, penalties, banded Cholesky, evaluation.
``threads``     :func:`run_ranges`, :func:`claim`.
``_jit``        ``scalar_helper``: the decorator of helpers that allocate
                nothing and return no array, compiled without numba's
                reference counting (a fifth of the line kernel's time on
                short lines).
``aot``         the same kernels compiled at install (numba's pycc;
                ``_aot_build`` builds them): Python calls a kernel through
                :func:`.threads.run_ranges` or :func:`.aot.launch`, which
                take the compiled export where the argument types match
                one, the JIT dispatcher otherwise.

Integer and bool constants handed to another kernel are written
``np.int64(0)`` / ``np.bool_(True)``, and counters that start at a constant
and are passed on start as ``np.int64(0)``: numba types a bare ``0`` as
``Literal[int](0)`` and compiles the callee a second time for it (a third of
the cold start's signatures were such copies; ``tests/test_warm.py``
checks there are none).

Hot loops index views that start at 0 (``row[first:last]`` then ``range(n)``),
not the parent array from an offset (``range(first, last)``): numba handles
negative indices on every signed index it cannot prove non-negative, and
that code keeps LLVM from vectorising the loop (the row dilation took 16x
and the level subtraction 4x the time). Where a sum must stay in its order,
a select (``total += v if keep else 0.0``) replaces a branch, and running
sums live in local variables, stored once per cell rather than per pixel.
A kernel that slices rows or bands in its hot loop does it in a
``scalar_helper`` called once per part (``model._subtract_rows``): in a
function with reference counting every slice costs two atomic operations,
which took longer than the arithmetic in several kernels (the binned level
subtraction 40%, the surface's evaluation 80% of their time).

A new estimator (a weighted or common-mode level) is a new kernel taking
``(vals, n, settings, scratch)`` like :func:`.binned._binned_clipped_median`,
called from :func:`.lines._block_levels`.

Numba checks only a cached function's own file: after editing one module,
functions of other modules that call into it keep their cached machine code
until their own file changes or the cache is cleared (``__pycache__/*.nbi``
next to these files, or ``NUMBA_CACHE_DIR``).

Array conventions
-----------------
``data``        (P, Ny, Nx) float32 or float64, P planes.
``flags``       (Pf, Ny, Nx) uint8 with Pf in {1, P} (1 broadcasts); bit
                ``EXCLUDE`` keeps a pixel out of every statistic, bit
                ``PRESERVE`` leaves it uncorrected.  Shape (1, 0, 0): no flags.
``background``  (Pb, Ny, Nx) same dtype as ``data``, Pb in {1, P}; subtracted
                from the values before any statistic.  Shape (1, 0, 0): none.
``band_edges``  (n_bands + 1,) int64 positions along the line where the
                readout bands (amplifier outputs) start and end.
``group_start`` (n_groups + 1,) int64 offsets of each group's segment in the
                per-line scratch buffer; a group is one band, or one band and
                one parity of the position along the line when ``odd_even``.
"""

from __future__ import annotations

from .binned import _SAMPLE, _binned_clipped_median, binned_scratch
from .dispersion import plane_dispersion
from .flags import EXCLUDE, PRESERVE, build_flags, finite_unexcluded, or_exclude
from .histogram import _bin_of, n_bins_for
from .lines import line_levels
from .model import subtract_levels
from .partition import _clipped_median

__all__ = [
    "EXCLUDE",
    "PRESERVE",
    "_SAMPLE",
    "_bin_of",
    "_binned_clipped_median",
    "_clipped_median",
    "binned_scratch",
    "build_flags",
    "finite_unexcluded",
    "line_levels",
    "n_bins_for",
    "or_exclude",
    "plane_dispersion",
    "subtract_levels",
]
