"""The source-mask kernels (``_kernels.mask``) and the plane kernels (``_kernels.planes``).

Every reference here is a plain numpy (or brute-force loop) version of what
the kernel's docstring says, written without the kernel's running sums,
rings or insertion sorts, on odd shapes where blocks and boxes do not divide
the plane; where a kernel promises the bits of an earlier computation, a
reference in that computation's order checks them exactly.
"""

import warnings

import numpy as np
import pytest
from testdata import airy_pixels

from bgdnoise._kernels import EXCLUDE
from bgdnoise._kernels import mask as mk
from bgdnoise._kernels import planes as pk
from bgdnoise._kernels.select import _SUBSAMPLE as SUBSAMPLE

# Odd sizes; 130 and 200 rows: many wraps of box_means' ring of row sums; (33, 64) and
# (5, 200): widths in whole 4-pixel cells (block_sums' written-out path).
SHAPES = [(37, 53), (1, 7), (130, 67), (5, 200), (33, 64)]


def no_flags():
    return np.zeros((0, 0), np.uint8)


def random_usable(rng, shape, fraction=0.8):
    return (rng.random(shape) < fraction).astype(np.uint8)


# --------------------------------------------------------------------------
# Brute-force references
# --------------------------------------------------------------------------
def ref_block_sums(values, usable, block):
    ny, nx = values.shape
    my, mx = -(-ny // block), -(-nx // block)
    use = usable != 0
    padded_v = np.zeros((my * block, mx * block))
    padded_c = np.zeros((my * block, mx * block))
    padded_v[:ny, :nx] = np.where(use, values, 0.0)
    padded_c[:ny, :nx] = use
    shape = (my, block, mx, block)
    return padded_v.reshape(shape).sum(axis=(1, 3)), padded_c.reshape(shape).sum(axis=(1, 3))


def ref_box_means(sums, counts, half, min_count):
    """Box sums from a 2D cumulative sum; boxes cut at the edges."""
    ny, nx = sums.shape

    def box(a):
        c = np.zeros((ny + 1, nx + 1))
        c[1:, 1:] = a.cumsum(0).cumsum(1)
        y0 = np.clip(np.arange(ny) - half, 0, ny)[:, None]
        y1 = np.clip(np.arange(ny) + half + 1, 0, ny)[:, None]
        x0 = np.clip(np.arange(nx) - half, 0, nx)[None, :]
        x1 = np.clip(np.arange(nx) + half + 1, 0, nx)[None, :]
        return c[y1, x1] - c[y0, x1] - c[y1, x0] + c[y0, x0]

    s, n = box(sums), box(counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n >= min_count) & (n > 0.5), s / n, np.nan), n


def ref_box_means_loop(sums, counts, half, min_count):
    """The same by explicit slicing (tiny maps only)."""
    ny, nx = sums.shape
    out = np.full((ny, nx), np.nan)
    for y in range(ny):
        for x in range(nx):
            win = np.s_[max(0, y - half) : y + half + 1, max(0, x - half) : x + half + 1]
            n = counts[win].sum()
            if n >= min_count and n > 0.5:
                out[y, x] = sums[win].sum() / n
    return out


def ref_box3(values, usable):
    """Sum and count of the usable values of every 3x3 box (cut at the edges)."""
    ny, nx = values.shape
    v = np.zeros((ny + 2, nx + 2))
    c = np.zeros((ny + 2, nx + 2))
    v[1:-1, 1:-1] = np.where(usable != 0, values, 0.0)
    c[1:-1, 1:-1] = usable != 0
    total = sum(v[dy : dy + ny, dx : dx + nx] for dy in range(3) for dx in range(3))
    n = sum(c[dy : dy + ny, dx : dx + nx] for dy in range(3) for dx in range(3))
    return total, n


def ref_dilate(marks, radius):
    """Brute force: paint a (2 radius + 1) square around every mark."""
    ny, nx = marks.shape
    out = np.zeros((ny, nx), np.uint8)
    for y, x in zip(*np.nonzero(marks), strict=True):
        out[max(0, y - radius) : y + radius + 1, max(0, x - radius) : x + radius + 1] = 1
    return out


def nan_excluded(planes, flags):
    """Planes as float64 with excluded and non-finite values set to NaN."""
    values = np.asarray(planes, np.float64).copy()
    if flags.shape[-1]:
        values[np.broadcast_to(flags & EXCLUDE != 0, values.shape)] = np.nan
    values[~np.isfinite(values)] = np.nan
    return values


def quiet_nanmedian(values, axis):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        return np.nanmedian(values, axis=axis)


def quiet_nanmean(values, axis):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


# --------------------------------------------------------------------------
# block_sums, box_means
# --------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("block", [1, 2, 4, 5, 16, 300])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])  # the residual is in the data's
def test_block_sums(shape, block, dtype, rng):
    values = rng.normal(0.0, 1.0, shape).astype(dtype)
    usable = random_usable(rng, shape)
    values[usable == 0] = np.nan  # never read where not usable
    my, mx = -(-shape[0] // block), -(-shape[1] // block)
    sums, counts = np.full((my, mx), 99.0), np.full((my, mx), 99.0)  # written, not added to
    mk.block_sums(values, usable, block, sums, counts)
    ref_s, ref_c = ref_block_sums(values.astype(np.float64), usable, block)
    np.testing.assert_array_equal(counts, ref_c)
    np.testing.assert_allclose(sums, ref_s, rtol=1e-12, atol=1e-12)
    if block == 4:  # the written-out path: the same additions, in the same order
        np.testing.assert_array_equal(sums, ordered_block_sums(values, usable, block))


def ordered_block_sums(values, usable, block):
    """Each cell's usable values summed one by one, rows then columns (float64)."""
    ny, nx = values.shape
    sums = np.zeros((-(-ny // block), -(-nx // block)))
    for cy in range(sums.shape[0]):
        for cx in range(sums.shape[1]):
            total = 0.0
            for y in range(cy * block, min(ny, (cy + 1) * block)):
                for x in range(cx * block, min(nx, (cx + 1) * block)):
                    if usable[y, x]:
                        total += float(values[y, x])
            sums[cy, cx] = total
    return sums


@pytest.mark.parametrize("shape", [(37, 53), (1, 1), (3, 90), (70, 2), (130, 67)])
@pytest.mark.parametrize("half", [0, 1, 2, 3, 40])  # 40: boxes larger than the map
def test_box_means_match_cumsum(shape, half, rng):
    counts = rng.integers(0, 17, shape).astype(np.float64)  # cells of up to 16 pixels
    counts[rng.random(shape) < 0.2] = 0.0  # empty cells
    sums = rng.normal(0.0, 4.0, shape) * counts + 1e3 * counts  # a large offset: cancellation
    min_count = 0.2 * ((2 * half + 1) * 4) ** 2 if half < 40 else 10.0
    mean = np.full(shape, -7.0)
    mk.box_means(sums, counts, half, min_count, mean)
    ref, n = ref_box_means(sums, counts, half, min_count)
    np.testing.assert_allclose(mean, ref, rtol=1e-10, atol=1e-10, equal_nan=True)
    # NaN exactly where too few values: a verdict everywhere else.
    np.testing.assert_array_equal(np.isnan(mean), (n < min_count) | (n <= 0.5))


def running_box_means(sums, counts, half, min_count):
    """box_means as it was computed before its ring of rows: two planes of running
    sums (along the rows, then down the columns), in the same order of operations."""
    ny, nx = sums.shape
    row_sum, row_cnt = np.empty((ny, nx)), np.empty((ny, nx))
    for y in range(ny):
        s_, c_ = 0.0, 0.0
        for x in range(min(half, nx)):
            s_, c_ = s_ + sums[y, x], c_ + counts[y, x]
        for x in range(nx):
            if x + half < nx:
                s_, c_ = s_ + sums[y, x + half], c_ + counts[y, x + half]
            if x - half - 1 >= 0:
                s_, c_ = s_ - sums[y, x - half - 1], c_ - counts[y, x - half - 1]
            row_sum[y, x], row_cnt[y, x] = s_, c_
    mean = np.empty((ny, nx))
    acc_s, acc_c = np.zeros(nx), np.zeros(nx)
    for y in range(min(half, ny)):
        acc_s += row_sum[y]
        acc_c += row_cnt[y]
    for y in range(ny):
        if y + half < ny:
            acc_s += row_sum[y + half]
            acc_c += row_cnt[y + half]
        if y - half - 1 >= 0:
            acc_s -= row_sum[y - half - 1]
            acc_c -= row_cnt[y - half - 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean[y] = np.where((acc_c >= min_count) & (acc_c > 0.5), acc_s / acc_c, np.nan)
    return mean


@pytest.mark.parametrize("shape", [(37, 53), (1, 1), (130, 67), (70, 2)])
@pytest.mark.parametrize("half", [0, 1, 2, 40])
def test_box_means_are_the_running_sums_bit_for_bit(shape, half, rng):
    counts = rng.integers(0, 17, shape).astype(np.float64)
    sums = rng.normal(0.0, 4.0, shape) * counts + 1e3 * counts
    mean = np.empty(shape)
    mk.box_means(sums, counts, half, 5.0, mean)
    np.testing.assert_array_equal(mean, running_box_means(sums, counts, half, 5.0))


def test_box_means_small_maps_match_a_loop(rng):
    for trial in range(30):
        shape = tuple(rng.integers(1, 9, 2))
        half = int(rng.integers(0, 4))
        counts = rng.integers(0, 3, shape).astype(np.float64)
        sums = rng.normal(0.0, 1.0, shape) * counts
        min_count = float(rng.integers(0, 6))
        mean = np.empty(shape)
        mk.box_means(sums, counts, half, min_count, mean)
        ref = ref_box_means_loop(sums, counts, half, min_count)
        np.testing.assert_allclose(mean, ref, rtol=1e-12, atol=1e-12, equal_nan=True,
                                   err_msg=f"trial {trial}")  # fmt: skip


def test_box_means_of_single_pixels_is_the_box_mean_of_the_image(rng):
    # Cells of one pixel: the box mean is the mean of the usable pixels in the box.
    values = rng.normal(0.0, 1.0, (37, 53))
    usable = random_usable(rng, values.shape, 0.7)
    sums, counts = np.empty(values.shape), np.empty(values.shape)
    mk.block_sums(values, usable, 1, sums, counts)
    mean = np.empty(values.shape)
    mk.box_means(sums, counts, 2, 1.0, mean)
    masked = np.where(usable != 0, values, np.nan)
    for y, x in [(0, 0), (36, 52), (18, 1), (5, 40)]:
        box = masked[max(0, y - 2) : y + 3, max(0, x - 2) : x + 3]
        assert mean[y, x] == pytest.approx(np.nanmean(box), rel=1e-12)


# --------------------------------------------------------------------------
# Thresholds: mark_above, mark_pixels_and_box3, box3_sample
# --------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("block", [1, 3, 4, 8, 16, 64])  # (4 and 8: written a word at a time)
def test_mark_above(shape, block, rng):
    my, mx = -(-shape[0] // block), -(-shape[1] // block)
    mean = rng.normal(0.0, 1.0, (my, mx))
    mean[rng.random((my, mx)) < 0.2] = np.nan  # no verdict: never marked
    out = (rng.random(shape) < 0.05).astype(np.uint8)  # earlier marks stay
    before = out.copy()
    mk.mark_above(mean, 0.5, block, out)
    cell = np.kron(np.nan_to_num(mean, nan=-np.inf) > 0.5, np.ones((block, block), bool))
    expected = (cell[: shape[0], : shape[1]] | (before != 0)).astype(np.uint8)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("min_count", [0, 2, 5, 9])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mark_box3_means(shape, min_count, dtype, rng):
    values = rng.normal(0.0, 1.0, shape)
    usable = random_usable(rng, shape, 0.7)
    values[usable == 0] = 1e9  # must never count
    values = values.astype(dtype).astype(np.float64)  # the kernel sees the same values
    kernel_values = values.astype(dtype)
    out = (rng.random(shape) < 0.05).astype(np.uint8)
    before = out.copy()
    mk.mark_pixels_and_box3(kernel_values, usable, (np.inf, 0.4), min_count, out)
    total, n = ref_box3(values, usable)
    with np.errstate(invalid="ignore", divide="ignore"):
        above = (n >= min_count) & (n > 0) & (total / n > 0.4)
    np.testing.assert_array_equal(out, (above | (before != 0)).astype(np.uint8))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("step", [1, 2, 7, 500])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_box3_sample(shape, step, dtype, rng):
    values = rng.normal(0.0, 1.0, shape).astype(dtype).astype(np.float64)
    usable = random_usable(rng, shape, 0.6)
    values[usable == 0] = np.nan
    out = np.empty((-(-shape[0] // step), -(-shape[1] // step)))
    mk.box3_sample(values.astype(dtype), usable, step, out)
    total, n = ref_box3(values, usable)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = np.where(n >= 2, total / n, np.nan)[::step, ::step]  # at least 2 values
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-14, equal_nan=True)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mark_pixels(shape, dtype, rng):
    values = rng.normal(0.0, 1.0, shape).astype(dtype).astype(np.float64)
    values[rng.random(shape) < 0.05] = np.nan
    values[rng.random(shape) < 0.02] = np.inf
    usable = random_usable(rng, shape)
    out = (rng.random(shape) < 0.05).astype(np.uint8)
    before = out.copy()
    mk.mark_pixels_and_box3(values.astype(dtype), usable, (0.8, np.inf), 2, out)
    with np.errstate(invalid="ignore"):
        above = (usable != 0) & (values > 0.8)
    np.testing.assert_array_equal(out, (above | (before != 0)).astype(np.uint8))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mark_pixels_and_box3_marks_either(shape, dtype, rng):
    values = rng.normal(0.0, 1.0, shape).astype(dtype).astype(np.float64)
    usable = random_usable(rng, shape, 0.7)
    values[usable == 0] = np.where(rng.random(shape) < 0.5, np.nan, -np.inf)[usable == 0]
    out = (rng.random(shape) < 0.05).astype(np.uint8)
    before = out.copy()
    mk.mark_pixels_and_box3(values.astype(dtype), usable, (1.5, 0.5), 3, out)
    total, n = ref_box3(values, usable)
    with np.errstate(invalid="ignore", divide="ignore"):
        box = (n >= 3) & (n > 0) & (total / n > 0.5)
    pixel = (usable != 0) & (values > 1.5)
    if values.size > 100:  # both scales mark here
        assert (pixel & ~box).any() and (box & ~pixel).any()
    np.testing.assert_array_equal(out, (box | pixel | (before != 0)).astype(np.uint8))


# --------------------------------------------------------------------------
# mark_distance, ring_sums
# --------------------------------------------------------------------------
def ref_distance(marks, cap):
    """Chebyshev distance to the nearest mark by brute force over the marks, capped."""
    ny, nx = marks.shape
    out = np.full(marks.shape, cap, np.int64)
    yy, xx = np.mgrid[0:ny, 0:nx]
    for y, x in zip(*np.nonzero(marks), strict=True):
        out = np.minimum(out, np.maximum(abs(yy - y), abs(xx - x)))
    return out


@pytest.mark.parametrize("shape", [*SHAPES, (64, 64), (129, 1)])
@pytest.mark.parametrize("cap", [1, 2, 4, 9])
@pytest.mark.parametrize("density", [0.0, 0.002, 0.05])
def test_mark_distance_matches_brute_force(shape, cap, density, rng):
    marks = (rng.random(shape) < density).astype(np.uint8) * 5  # any non-zero value marks
    if density:
        marks[-1, 0] = 1  # a corner
    out = np.full(shape, 200, np.uint8)  # written everywhere
    mk.mark_distance(marks, cap, out)
    np.testing.assert_array_equal(out, ref_distance(marks, cap))


@pytest.mark.parametrize("radius", [0, 1, 3])
def test_mark_distance_gives_the_square_dilation(radius, rng):
    marks = (rng.random((64, 80)) < 0.01).astype(np.uint8)
    distance = np.empty(marks.shape, np.uint8)
    mk.mark_distance(marks, radius + 1, distance)
    np.testing.assert_array_equal((distance <= radius).astype(np.uint8), ref_dilate(marks, radius))


def ref_ring_sums(values, usable, distance, along_rows, edges, centre, cap):
    if not along_rows:
        values, usable, distance = values.T, usable.T, distance.T
    n_lines = values.shape[0]
    sums = np.zeros((n_lines, edges.size - 1, cap + 1))
    counts = np.zeros_like(sums)
    for j in range(n_lines):
        for b in range(edges.size - 1):
            v = values[j, edges[b] : edges[b + 1]].astype(np.float64)
            u = usable[j, edges[b] : edges[b + 1]] != 0
            d = distance[j, edges[b] : edges[b + 1]]
            for k in range(cap + 1):
                hit = u & (d == k)
                counts[j, b, k] = hit.sum()
                if k < cap:  # the farthest bucket is counted only
                    sums[j, b, k] = (v[hit] - centre).sum()
    return sums, counts


@pytest.mark.parametrize("shape", [(37, 53), (5, 200), (130, 67), (1, 7)])
@pytest.mark.parametrize("along_rows", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ring_sums_match_numpy(shape, along_rows, dtype, rng):
    cap = 4
    values = rng.normal(3.0, 1.0, shape).astype(dtype)
    usable = random_usable(rng, shape)
    distance = rng.integers(0, cap + 1, shape).astype(np.uint8)
    length = shape[1] if along_rows else shape[0]
    edges = np.unique(np.array([0, length // 3, length], np.int64))
    n_lines = shape[0] if along_rows else shape[1]
    sums = np.full((n_lines, edges.size - 1, cap + 1), np.nan)
    counts = sums.copy()
    mk.ring_sums(values, usable, distance, along_rows, edges, 2.5, sums, counts)
    expected_sums, expected_counts = ref_ring_sums(
        values, usable, distance, along_rows, edges, 2.5, cap
    )
    np.testing.assert_array_equal(counts, expected_counts)
    np.testing.assert_allclose(sums, expected_sums, rtol=1e-12, atol=1e-9)


# --------------------------------------------------------------------------
# dilate
# --------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [*SHAPES, (64, 64), (129, 1)])
@pytest.mark.parametrize("radius", [0, 1, 3, 10])
@pytest.mark.parametrize("density", [0.002, 0.05])
def test_dilate_matches_brute_force(shape, radius, density, rng):
    marks = (rng.random(shape) < density).astype(np.uint8)
    marks[0, 0] = 1  # corners and edges
    marks[-1, -1] = 1
    out = np.full(shape, 7, np.uint8)  # written everywhere
    mk.dilate(marks, radius, out)
    expected = ref_dilate(marks, radius)
    np.testing.assert_array_equal(out, expected)
    mk.dilate(marks, radius, marks)  # in place, as the source search dilates
    np.testing.assert_array_equal(marks, expected)


def test_dilate_nothing_and_everything():
    out = np.empty((37, 53), np.uint8)
    mk.dilate(np.zeros((37, 53), np.uint8), 3, out)
    assert not out.any()
    single = np.zeros((37, 53), np.uint8)
    single[18, 26] = 1
    mk.dilate(single, 100, out)  # a radius larger than the plane
    assert out.all()


# --------------------------------------------------------------------------
# median_over_planes
# --------------------------------------------------------------------------
@pytest.mark.parametrize("n_planes", [1, 2, 3, 9])
@pytest.mark.parametrize("flag_planes", ["none", "one", "all"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_median_over_planes(n_planes, flag_planes, dtype, rng):
    shape = (37, 53)
    planes = rng.normal(0.0, 1.0, (n_planes, *shape)).astype(dtype)
    planes[:, :, :5] = np.round(planes[:, :, :5])  # ties
    planes[rng.random(planes.shape) < 0.1] = np.nan
    planes[rng.random(planes.shape) < 0.03] = np.inf
    pf = {"none": 0, "one": 1, "all": n_planes}[flag_planes]
    if pf:
        flags = (rng.random((pf, *shape)) < 0.3).astype(np.uint8) * EXCLUDE
        flags[:, 3, :] = EXCLUDE  # a row excluded in every plane: NaN
    else:
        flags = np.zeros((1, 0, 0), np.uint8)
    out = np.empty(shape)
    pk.median_over_planes(planes, flags, out)
    ref = quiet_nanmedian(nan_excluded(planes, flags), axis=0)
    np.testing.assert_allclose(out, ref, rtol=1e-15, atol=0, equal_nan=True)
    if pf:
        assert np.isnan(out[3]).all()


def test_median_over_planes_all_excluded_is_nan():
    planes = np.ones((3, 4, 5))
    planes[:, 0, 0] = np.nan  # no finite value
    flags = np.zeros((3, 4, 5), np.uint8)
    flags[:, 1, 1] = EXCLUDE  # every value excluded
    flags[:2, 2, 2] = EXCLUDE  # one value left: it is the median
    planes[2, 2, 2] = 42.0
    out = np.empty((4, 5))
    pk.median_over_planes(planes, flags, out)
    assert np.isnan(out[0, 0]) and np.isnan(out[1, 1])
    assert out[2, 2] == 42.0
    assert np.isnan(out).sum() == 2


# --------------------------------------------------------------------------
# row_magnitudes (the scene's check for values near the float range)
# --------------------------------------------------------------------------
@pytest.mark.parametrize("width", [300, 5, 16, 1, 35, 2049])  # (rows folded in halves: odd too)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_magnitudes_are_numpys_largest_absolute_values_without_nans(dtype, width, rng):
    values = rng.normal(0.0, 1e3, (40, width)).astype(dtype)
    values[rng.random(values.shape) < 0.2] = np.nan
    values[3] = np.nan  # a row of NaNs only
    values[5, min(7, width - 1)] = -np.inf
    values[6, 0] = np.inf
    values[7, -1] = -np.finfo(dtype).max
    values[8] = -0.0
    out = np.empty(40)
    pk.row_magnitudes(values, out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the all-NaN row
        expected = np.nanmax(np.abs(values.astype(np.float64)), axis=1)
    np.testing.assert_array_equal(out, expected)
    assert np.isnan(out[3]) and out[5] == out[6] == np.inf and out[8] == 0.0


# --------------------------------------------------------------------------
# bin_along_lines
# --------------------------------------------------------------------------
@pytest.mark.parametrize("along_rows", [True, False])
@pytest.mark.parametrize("factor", [1, 2, 4, 5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_flags", [False, True])
def test_bin_along_lines(along_rows, factor, dtype, with_flags, rng):
    n_lines, length = 37, 13 * factor  # 13 bins per line
    shape = (n_lines, length) if along_rows else (length, n_lines)
    plane = rng.normal(5.0, 1.0, shape).astype(dtype)
    plane[rng.random(shape) < 0.2] = np.nan
    plane[rng.random(shape) < 0.02] = np.inf
    flags = (rng.random(shape) < 0.3).astype(np.uint8) * EXCLUDE
    if along_rows:
        plane[4, :factor] = np.nan  # an empty bin
    else:
        plane[:factor, 4] = np.nan
    out_shape = (n_lines, length // factor) if along_rows else (length // factor, n_lines)
    out, out_flags = np.empty(out_shape, dtype), np.empty(out_shape, np.uint8)
    pk.bin_along_lines(plane, flags if with_flags else no_flags(), along_rows, factor,
                       out, out_flags)  # fmt: skip
    values = nan_excluded(plane, flags if with_flags else no_flags())
    lines = values if along_rows else values.T
    ref = quiet_nanmean(lines.reshape(n_lines, length // factor, factor), axis=2)
    ref = ref if along_rows else ref.T
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(out, ref.astype(dtype), rtol=tol, atol=tol, equal_nan=True)
    np.testing.assert_array_equal(out_flags, np.where(np.isnan(ref), EXCLUDE, 0))
    assert out_flags[(4, 0) if along_rows else (0, 4)] == EXCLUDE
    # Exactly: each bin's values added in their order along the line, in float64.
    binned = lines.astype(np.float64).reshape(n_lines, length // factor, factor)
    total, count = np.zeros(binned.shape[:2]), np.zeros(binned.shape[:2])
    for k in range(factor):
        ok = np.isfinite(binned[..., k])
        total = total + np.where(ok, binned[..., k], 0.0)
        count = count + ok
    with np.errstate(invalid="ignore"):
        exact = (total / count).astype(dtype)
    np.testing.assert_array_equal(out, exact if along_rows else exact.T)


def test_binning_keeps_a_stripe_whole(rng):
    # A level per line survives binning along the lines exactly.
    stripes = rng.normal(0.0, 1.0, 37)
    plane = np.repeat(stripes[:, None], 64, axis=1)
    out, out_flags = np.empty((37, 16)), np.empty((37, 16), np.uint8)
    pk.bin_along_lines(plane, no_flags(), True, 4, out, out_flags)
    np.testing.assert_allclose(out, np.repeat(stripes[:, None], 16, axis=1), rtol=1e-14)
    out_c, flags_c = np.empty((16, 37)), np.empty((16, 37), np.uint8)
    pk.bin_along_lines(np.ascontiguousarray(plane.T), no_flags(), False, 4, out_c, flags_c)
    np.testing.assert_allclose(out_c, out.T, rtol=1e-14)
    assert not out_flags.any() and not flags_c.any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_block_sums_add_each_cell_in_row_order(dtype, rng):
    # Exact: each cell's values are added row by row, along each row.
    shape, block = (13, 29), 4
    values = rng.normal(0.0, 1.0, shape).astype(dtype)
    usable = random_usable(rng, shape)
    my, mx = -(-shape[0] // block), -(-shape[1] // block)
    sums, counts = np.empty((my, mx)), np.empty((my, mx))
    mk.block_sums(values, usable, block, sums, counts)
    for cy in range(my):
        for cx in range(mx):
            total = 0.0
            for y in range(cy * block, min(shape[0], (cy + 1) * block)):
                for x in range(cx * block, min(shape[1], (cx + 1) * block)):
                    if usable[y, x]:
                        total += float(values[y, x])
            assert sums[cy, cx] == total


# --------------------------------------------------------------------------
# median_and_mad: the thresholds' sample statistics, numpy's to the bit
# --------------------------------------------------------------------------
def ref_median_and_mad(values, usable, step):
    sample = values[::step, ::step]
    if usable.shape[0]:
        sample = sample[usable[::step, ::step] != 0]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0, 0.0, 0.0
    centre = np.median(sample)  # in the sample's dtype, as the kernel's
    return sample.size, float(centre), float(np.median(np.abs(sample - centre)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("step", [1, 3, 7])
def test_median_and_mad_are_numpys_to_the_bit(dtype, step, rng):
    for trial in range(150):
        shape = (int(rng.integers(1, 40)), int(rng.integers(1, 40)))
        scale = 10.0 ** rng.uniform(-20, 20)
        values = (rng.standard_cauchy(shape) * scale).astype(dtype)
        if trial % 3 == 0:  # ties: the two middle values equal
            values = np.round(rng.normal(0, 2, shape)).astype(dtype)
        values[rng.random(shape) < 0.1] = np.nan
        values[rng.random(shape) < 0.02] = np.inf
        usable = random_usable(rng, shape) if trial % 2 else no_flags()
        scratch = np.empty(2 * values.size, dtype)
        found = mk.median_and_mad(values, usable, step, scratch)
        expected = ref_median_and_mad(values, usable, step)
        assert found[0] == expected[0], f"trial {trial}"
        # Exact, not close: the mask's thresholds must not move by a rounding.
        assert np.array_equal(found[1:], expected[1:]), f"trial {trial}: {found} {expected}"


def test_median_and_mad_of_nothing_usable():
    values = np.array([[np.nan, np.inf, 1.0]])
    scratch = np.empty(6)
    assert mk.median_and_mad(values, np.array([[1, 1, 0]], np.uint8), 1, scratch) == (0, 0.0, 0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["random", "sorted", "subsample_fooled", "ties"])
def test_median_and_mad_of_large_samples(dtype, order, rng):
    # Samples of 4 * 1024 values and more: the middle ranks are selected among
    # the values between two quantiles of a subsample (select._SUBSAMPLE), or
    # among all of them when the subsample misleads ("subsample_fooled": every
    # value it takes is the largest); exact either way.
    for n in (4 * SUBSAMPLE, 4 * SUBSAMPLE + 1, 30001, 85850):
        values = rng.standard_cauchy(n).astype(dtype)
        if order == "sorted":
            values.sort()
        elif order == "ties":
            values = np.round(rng.normal(0, 1.5, n)).astype(dtype)
        elif order == "subsample_fooled":
            m = SUBSAMPLE
            taken = np.arange(m) * (n - 1) // (m - 1)
            values[taken] = 1e30
        values = values.reshape(1, -1)
        scratch = np.empty(2 * n, dtype)
        found = mk.median_and_mad(values, no_flags(), 1, scratch)
        expected = ref_median_and_mad(values, no_flags(), 1)
        assert found[0] == expected[0] == n
        assert np.array_equal(found[1:], expected[1:]), f"n={n}: {found} {expected}"


# --------------------------------------------------------------------------
# Whole-plane bookkeeping: pool_cells, line_counts, repeat_along_lines, flags
# --------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES + [(2, 2), (3, 1), (64, 128)])
def test_pool_cells_is_numpys_sum_of_2x2_cells(shape, rng):
    sums = rng.normal(0, 1, shape) * 10.0 ** rng.uniform(-3, 3, shape)
    counts = rng.integers(0, 17, shape).astype(np.float64)
    out_shape = (-(-shape[0] // 2), -(-shape[1] // 2))
    pooled_sums, pooled_counts = np.empty(out_shape), np.empty(out_shape)
    mk.pool_cells(sums, counts, pooled_sums, pooled_counts)
    pad = ((0, shape[0] % 2), (0, shape[1] % 2))
    for found, cells in ((pooled_sums, sums), (pooled_counts, counts)):
        padded = np.pad(cells, pad)
        a, b = padded[0::2, 0::2], padded[0::2, 1::2]
        c, d = padded[1::2, 0::2], padded[1::2, 1::2]
        np.testing.assert_array_equal(found, (a + b) + (c + d))  # the order, exactly
        expected = padded.reshape(out_shape[0], 2, out_shape[1], 2).sum(axis=(1, 3))
        np.testing.assert_allclose(found, expected, rtol=1e-14, atol=0)
    np.testing.assert_array_equal(pooled_counts.sum(), counts.sum())


@pytest.mark.parametrize("shape", SHAPES + [(40, 300)])
@pytest.mark.parametrize("along_rows", [True, False])
def test_line_counts_count_usable_and_masked_pixels(shape, along_rows, rng):
    usable = random_usable(rng, shape, 0.8) * np.uint8(3)  # any non-zero value is usable
    mask = random_usable(rng, shape, 0.3)
    n_lines = shape[0] if along_rows else shape[1]
    total, masked = np.full(n_lines, -1), np.full(n_lines, -1)
    mk.line_counts(usable, mask, along_rows, total, masked)
    along = 1 if along_rows else 0
    np.testing.assert_array_equal(total, np.count_nonzero(usable, axis=along))
    np.testing.assert_array_equal(masked, np.count_nonzero((usable != 0) & (mask != 0), axis=along))


@pytest.mark.parametrize("along_rows", [True, False])
@pytest.mark.parametrize("factor", [1, 2, 4])
def test_repeat_along_lines_is_numpy_repeat(along_rows, factor, rng):
    binned_shape = (37, 13) if along_rows else (13, 37)
    mask = random_usable(rng, binned_shape, 0.4) * rng.integers(1, 256, binned_shape, np.uint8)
    axis = 1 if along_rows else 0
    expected = np.repeat(mask, factor, axis=axis)
    out = np.full(expected.shape, 7, np.uint8)
    mk.repeat_along_lines(mask, along_rows, factor, out)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("planes", [1, 3])
def test_or_exclude_adds_the_mask_to_every_planes_flags(planes, rng):
    from bgdnoise._kernels import PRESERVE, or_exclude

    shape = (planes, 21, 34)
    flags = rng.choice(np.array([0, EXCLUDE, PRESERVE, EXCLUDE | PRESERVE], np.uint8), shape)
    mask = random_usable(rng, shape[1:], 0.3) * np.uint8(5)
    out = np.empty(shape, np.uint8)
    or_exclude(flags, mask, out)
    np.testing.assert_array_equal(out, flags | np.where(mask != 0, EXCLUDE, 0).astype(np.uint8))
    # No flags yet: the mask as EXCLUDE flags of one plane.
    alone = np.empty((1, *shape[1:]), np.uint8)
    or_exclude(np.zeros((1, 0, 0), np.uint8), mask, alone)
    np.testing.assert_array_equal(alone[0], np.where(mask != 0, EXCLUDE, 0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_finite_unexcluded(dtype, rng):
    from bgdnoise._kernels import PRESERVE, finite_unexcluded

    values = rng.normal(0, 1, (23, 41)).astype(dtype)
    values[rng.random(values.shape) < 0.1] = np.nan
    values[rng.random(values.shape) < 0.05] = -np.inf
    values[0, :5] = 0.0  # zeros count here (the scene's pixels, not a rate's empty ones)
    flags = rng.choice(np.array([0, EXCLUDE, PRESERVE], np.uint8), values.shape)
    out = np.empty(values.shape, np.uint8)
    finite_unexcluded(values, flags, out)
    np.testing.assert_array_equal(out, np.isfinite(values) & ((flags & EXCLUDE) == 0))
    finite_unexcluded(values, np.zeros((0, 0), np.uint8), out)
    np.testing.assert_array_equal(out, np.isfinite(values))


def test_middle_ranks_with_a_short_window():
    # The window's pass writes every value (branch-free) to its next free entry,
    # the last one once it is full: a window the values between the quantiles
    # fill exactly is not used. A subsample of 194 ones, 415 twos and 415
    # halves (quantiles 1 and 2), then 1.5 until 2048 values are between them
    # and 0.5 after: rank 2048 is 1.0 (2048 halves below it).
    from bgdnoise._kernels.select import _middle_ranks

    n, m = 4096, SUBSAMPLE
    taken = np.arange(m) * (n - 1) // (m - 1)
    values = np.full(n, np.nan)
    values[taken] = np.repeat([1.0, 2.0, 0.5], [194, 415, 415])
    rest = np.flatnonzero(np.isnan(values))
    inside = np.count_nonzero((values[taken] >= 1.0) & (values[taken] <= 2.0))
    values[rest[: 2048 - inside]] = 1.5
    values[rest[2048 - inside :]] = 0.5
    for cap in (2048, 2049, 1024, 1023, n):
        for first, k in ((2048, 2048), (2047, 2048), (2046, 2047), (1024, 1024), (3071, 3072)):
            found = _middle_ranks(values.copy(), n, first, k, np.empty(cap))
            expected = np.sort(values)[[first, k]]
            assert found == tuple(expected), (cap, first, k, found, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_middle_ranks_at_the_window_edges(dtype, rng):
    # Ranks at the first and last value between the quantiles, and beyond them.
    from bgdnoise._kernels.select import _middle_ranks

    for trial in range(40):
        n = int(rng.integers(4 * SUBSAMPLE, 20000))
        values = rng.normal(0, 1, n).astype(dtype)
        if trial % 2:
            values = np.round(values * 3).astype(dtype)  # many ties at the quantiles
        ordered = np.sort(values)
        for k in (n // 2, n // 2 - 1, int(0.42 * n), int(0.58 * n), 0, n - 1):
            for first in (k - 1, k) if k > 0 else (k,):
                cap = int(rng.choice([n, n // 4 + SUBSAMPLE, SUBSAMPLE]))
                found = _middle_ranks(values.copy(), n, first, k, np.empty(cap, dtype))
                assert found == (ordered[first], ordered[k]), (trial, n, first, k, cap)


def test_the_median_of_negative_zeros_is_positive_zero():
    # numpy's mean of the middle values sums from +0: a median of -0.0 is +0.0.
    for dtype in (np.float32, np.float64):
        for n in (1, 2, 5, 5000):
            values = np.full((1, n), -0.0, dtype)
            found = mk.median_and_mad(values, no_flags(), 1, np.empty(2 * n, dtype))
            assert np.signbit(found[1]) == np.signbit(np.median(values)) == False  # noqa: E712


def spikes_reference(values, usable, centre, threshold, ratio, along_rows):
    """:func:`mk.drop_spikes`'s docstring as a loop: True at the spikes."""
    ny, nx = values.shape
    spikes = np.zeros(values.shape, bool)
    for y, x in zip(*np.nonzero((values > threshold) & (usable != 0)), strict=True):
        beside = [(y - 1, x), (y + 1, x)] if along_rows else [(y, x - 1), (y, x + 1)]
        heights = [
            float(values[yy, xx]) - centre
            for yy, xx in beside
            if 0 <= yy < ny and 0 <= xx < nx and usable[yy, xx]
        ]
        spikes[y, x] = bool(heights) and abs(np.mean(heights)) < ratio * (
            float(values[y, x]) - centre
        )
    return spikes


@pytest.mark.parametrize("shape", SHAPES + [(64, 200)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("along_rows", [True, False])
def test_drop_spikes_matches_a_loop(shape, dtype, along_rows, rng):
    # Spikes (alone, with interpixel coupling, at the edges, beside unusable
    # pixels), images of stars, noise; a threshold float32 cannot hold (the
    # scan's rounded-down float32 threshold must still let every value
    # above it through).
    values = rng.normal(2.0, 1.0, shape)
    ny, nx = shape
    for _ in range(max(1, values.size // 60)):
        y, x = rng.integers(0, ny), rng.integers(0, nx)
        height = rng.uniform(5.0, 2000.0)
        kind = rng.choice(["spike", "spike", "coupled", "narrow", "wide"])
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if not (0 <= y + dy < ny and 0 <= x + dx < nx):
                    continue
                r2 = dy * dy + dx * dx
                if kind == "spike":
                    share = float(r2 == 0)
                elif kind == "coupled":  # 0.5-2% to the 4 nearest
                    share = 1.0 if r2 == 0 else rng.uniform(0.005, 0.02) * (r2 == 1)
                else:  # Gaussian images of 1.1 and 2.4 px FWHM
                    share = np.exp(-0.5 * r2 / (0.45 if kind == "narrow" else 1.0) ** 2)
                values[y + dy, x + dx] += height * share
    values = values.astype(dtype)
    usable = random_usable(rng, shape, 0.9)
    centre, threshold, ratio = 2.0, 6.000000001, 0.01
    weights = rng.integers(0, 2, shape).astype(np.uint8)
    spikes = spikes_reference(values, usable, centre, threshold, ratio, along_rows)
    expected = np.where(spikes, 0, weights)
    mk.drop_spikes(values, usable, (centre, threshold, ratio), along_rows, weights)
    np.testing.assert_array_equal(weights, expected)


@pytest.mark.parametrize("lambda_over_d", [0.435, 0.72])  # NIRISS F090W, NIRCam F070W
@pytest.mark.parametrize("binned", [False, True])
def test_drop_spikes_keeps_jwst_stars_and_drops_hot_pixels(lambda_over_d, binned):
    # The physics behind the ratio: JWST's most undersampled images, at
    # every sub-pixel position, on the plane and binned by 4 along the lines
    # (rows), are no spikes; a hot pixel coupled by 0.7% to its 4 nearest
    # neighbours (interpixel capacitance), or not at all, is.
    stars = []
    for cy in np.linspace(-0.5, 0.5, 5):
        for cx in np.linspace(-2.5, 1.5, 9):  # every place in a bin of 4
            image = airy_pixels(lambda_over_d, cy, cx, n=12)
            if binned:
                image = image.reshape(12, 3, 4).mean(axis=2)
            stars.append(1000.0 * image / image.max())
    hot = np.zeros_like(stars[0])
    y, x = hot.shape[0] // 2, hot.shape[1] // 2
    hot[y, x] = 1000.0
    coupled = hot.copy()
    coupled[y - 1 : y + 2, x] += [7.0, 0.0, 7.0]
    coupled[y, x - 1 : x + 2] += [7.0, 0.0, 7.0]
    for stamp, spike in [(s, False) for s in stars] + [(hot, True), (coupled, True)]:
        weights = np.ones(stamp.shape, np.uint8)
        mk.drop_spikes(stamp, np.ones(stamp.shape, np.uint8), (0.0, 100.0, 0.01), True, weights)
        assert (weights == 0).any() == spike
