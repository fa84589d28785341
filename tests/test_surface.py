"""The background surface: its kernels against dense numpy, then what the fit promises.

The dense reference builds the whole least-squares problem explicitly: one
column per node of the bilinear basis and one per (line, band) level, the
same penalties, solved jointly by numpy. The kernels instead eliminate the
levels, assemble banded normal equations from per-line sums and solve them by
a banded Cholesky; both must give the same nodes.
"""

import numpy as np
import pytest

import bgdnoise.background as bgm
from bgdnoise._kernels import surface as sk
from bgdnoise._prepare import make_layout
from bgdnoise.options import CorrectionOptions


# --------------------------------------------------------------------------
# banded_solve
# --------------------------------------------------------------------------
def to_band(dense, bw, pad=np.nan):
    """Upper band storage: ``band[d, m] = dense[m, m + d]``; the unused corner is ``pad``."""
    n = dense.shape[0]
    band = np.full((bw + 1, n), pad)
    for d in range(min(bw, n - 1) + 1):
        band[d, : n - d] = np.diagonal(dense, d)
    return band


def from_band(band):
    """The symmetric dense matrix of an upper band storage."""
    bw, n = band.shape[0] - 1, band.shape[1]
    dense = np.zeros((n, n))
    for d in range(min(bw, n - 1) + 1):
        dense += np.diag(band[d, : n - d], d)
        if d:
            dense += np.diag(band[d, : n - d], -d)
    return dense


def random_spd_banded(rng, n, bw, kind):
    if kind == "dominant":
        a = rng.normal(0.0, 1.0, (n, n))
        a = np.triu(np.tril(a + a.T, bw), -bw)
        return a + np.diag(np.abs(a).sum(axis=1) + 0.1)
    # L L^T with a banded lower triangle: SPD, not diagonally dominant.
    lower = np.tril(np.triu(rng.normal(0.0, 1.0, (n, n)), -bw))
    lower[np.diag_indices(n)] = rng.uniform(0.5, 2.0, n)
    return lower @ lower.T


@pytest.mark.parametrize("n", [1, 2, 7, 50])
@pytest.mark.parametrize("bw", [0, 1, 3, 12, 60])  # 60: wider than the matrix
@pytest.mark.parametrize("kind", ["dominant", "cholesky"])
def test_banded_solve_matches_numpy(n, bw, kind, rng):
    dense = random_spd_banded(rng, n, min(bw, n - 1), kind)
    rhs = rng.normal(0.0, 1.0, n)
    band = to_band(dense, bw)  # NaN in the unused corner: never read
    x = sk.banded_solve(band, rhs.copy())
    ref = np.linalg.solve(dense, rhs)
    assert np.linalg.norm(x - ref) <= 1e-10 * np.linalg.norm(ref) * np.linalg.cond(dense)


def ordered_cholesky_solve(band, rhs):
    """banded_solve's arithmetic one sum at a time, in Python: the order of every sum."""
    bw, n = band.shape[0] - 1, band.shape[1]
    low = np.zeros((n, bw + 1))
    for d in range(min(bw, n - 1) + 1):
        low[d:, bw - d] = band[d, : n - d]
    for m in range(n):
        s = low[m, bw]
        for k in range(max(0, m - bw), m):
            s -= low[m, k - m + bw] * low[m, k - m + bw]
        d = np.sqrt(s) if s > 0.0 else 1e-150
        low[m, bw] = d
        for i in range(m + 1, min(n, m + bw + 1)):
            s2 = low[i, m - i + bw]
            for k in range(max(0, i - bw), m):
                s2 -= low[i, k - i + bw] * low[m, k - m + bw]
            low[i, m - i + bw] = s2 / d
    x = rhs.copy()
    for i in range(n):
        s = x[i]
        for k in range(max(0, i - bw), i):
            s -= low[i, k - i + bw] * x[k]
        x[i] = s / low[i, bw]
    for i in range(n - 1, -1, -1):
        s = x[i]
        for k in range(i + 1, min(n, i + bw + 1)):
            s -= low[k, i - k + bw] * x[k]
        x[i] = s / low[i, bw]
    return x


@pytest.mark.parametrize(("n", "bw"), [(50, 3), (50, 12), (40, 45), (9, 4)])
def test_banded_solve_sums_in_order(n, bw, rng):
    # The factorisation takes each column's outer product off the rows below
    # it (right-looking); each entry must still lose its terms in the order
    # of k: the same bits as one dot product at a time.
    dense = random_spd_banded(rng, n, min(bw, n - 1), "cholesky")
    band = to_band(dense, bw, pad=0.0)
    rhs = rng.normal(0.0, 1.0, n)
    np.testing.assert_array_equal(sk.banded_solve(band, rhs), ordered_cholesky_solve(band, rhs))


def test_banded_solve_leaves_its_inputs_alone(rng):
    dense = random_spd_banded(rng, 20, 4, "cholesky")
    rhs = rng.normal(0.0, 1.0, 20)
    band = to_band(dense, 4)
    kept_rhs, kept_band = rhs.copy(), band.copy()
    sk.banded_solve(band, rhs)
    np.testing.assert_array_equal(rhs, kept_rhs)
    np.testing.assert_array_equal(band, kept_band)


# --------------------------------------------------------------------------
# The normal equations against a dense joint least-squares fit
# --------------------------------------------------------------------------
def bilinear_weights(t, n_nodes):
    """Per coordinate (in node units): node below (clipped) and the weight of the one above."""
    j = np.minimum(np.floor(t).astype(int), n_nodes - 2)
    return j, t - j


def dense_problem(lines, usable, band_edges, h, n_y, n_x):
    """Design matrix over usable pixels: ``[node basis | (line, band) indicators]``.

    ``lines`` is ``(n_lines, length)``. Returns ``(basis, levels, data)``;
    level columns with no pixel are dropped (free and undetermined).
    """
    n_lines = lines.shape[0]
    line_idx, pos_idx = np.nonzero(usable)
    j, f = bilinear_weights(line_idx / h, n_y)
    i, g = bilinear_weights(pos_idx / h, n_x)
    basis = np.zeros((line_idx.size, n_y * n_x))
    rows = np.arange(line_idx.size)
    for dj, wj in ((0, 1.0 - f), (1, f)):
        for di, wi in ((0, 1.0 - g), (1, g)):
            np.add.at(basis, (rows, (j + dj) * n_x + i + di), wj * wi)
    band = np.searchsorted(band_edges, pos_idx, side="right") - 1
    level = line_idx * (band_edges.size - 1) + band
    levels = np.zeros((line_idx.size, n_lines * (band_edges.size - 1)))
    levels[rows, level] = 1.0
    levels = levels[:, levels.any(axis=0)]
    return basis, levels, lines[line_idx, pos_idx]


def dense_penalty(n_y, n_x, smooth, pins):
    """``D^T W D + pins`` for second differences along both grid axes.

    ``smooth``: the weight ``W`` of each second difference, by its middle
    node (a vector over the nodes, or one number for all). ``pins``: a
    vector (the diagonal) or a full matrix of the pin penalties.
    """
    weights = np.broadcast_to(np.asarray(smooth, dtype=float), (n_y * n_x,))
    rows, row_weights = [], []
    for j in range(n_y):
        for i in range(n_x):
            m = j * n_x + i
            for step, inside in ((n_x, 0 < j < n_y - 1), (1, 0 < i < n_x - 1)):
                if inside:
                    row = np.zeros(n_y * n_x)
                    row[[m - step, m, m + step]] = (1.0, -2.0, 1.0)
                    rows.append(row)
                    row_weights.append(weights[m])
    d = np.array(rows).reshape(-1, n_y * n_x)
    return d.T @ (np.array(row_weights)[:, None] * d) + (
        np.diag(pins) if np.ndim(pins) == 1 else pins
    )


def dense_fit(lines, usable, band_edges, h, n_y, n_x, smooth, pins, pin_rhs=None):
    """Joint solve for nodes and levels; also the normal matrix with the levels eliminated.

    ``pin_rhs``: what the pins add to the nodes' right-hand side (pins toward
    targets other than zero).
    """
    basis, levels, data = dense_problem(lines, usable, band_edges, h, n_y, n_x)
    penalty = dense_penalty(n_y, n_x, smooth, pins)
    design = np.hstack([basis, levels])
    normal = design.T @ design
    n_nodes = n_y * n_x
    normal[:n_nodes, :n_nodes] += penalty
    rhs = design.T @ data
    if pin_rhs is not None:
        rhs[:n_nodes] += pin_rhs
    theta = np.linalg.solve(normal, rhs)
    # The levels eliminated: the Schur complement and its right-hand side.
    proj = levels @ np.linalg.solve(levels.T @ levels, levels.T)
    reduced = basis.T @ (basis - proj @ basis) + penalty
    reduced_rhs = basis.T @ (data - proj @ data)
    return theta[:n_nodes], reduced, reduced_rhs


def independent_band_nodes(band_edges, h, n_x):
    """First and past-last node column each band's pixels touch."""
    first = np.minimum(band_edges[:-1] // h, n_x - 2)
    last = np.minimum((band_edges[1:] - 1) // h, n_x - 2) + 1
    return np.stack([first, last + 1], axis=1).astype(np.int64)


def plane_for(rng, n_lines, length, band_edges, along_rows):
    """Smooth light + per-(line, band) levels + noise, some pixels and one band unusable."""
    lines = np.empty((n_lines, length))
    pos = np.arange(length)
    for line in range(n_lines):
        lines[line] = np.sin(pos / 9.0 + line / 7.0)
        for k in range(band_edges.size - 1):
            lines[line, band_edges[k] : band_edges[k + 1]] += rng.normal(0.0, 3.0)
    lines += rng.normal(0.0, 0.3, lines.shape)
    usable = (rng.random(lines.shape) < 0.85).astype(np.uint8)
    usable[5, band_edges[0] : band_edges[1]] = 0  # a (line, band) with no pixel
    plane = lines if along_rows else lines.T
    use = usable if along_rows else usable.T
    return np.ascontiguousarray(plane), np.ascontiguousarray(use), lines, usable


@pytest.mark.parametrize("along_rows", [True, False])
@pytest.mark.parametrize(
    ("n_lines", "length", "h", "band_edges"),
    [
        (40, 64, 16, [0, 32, 64]),  # 2 bands on node boundaries
        (40, 64, 16, [0, 21, 42, 64]),  # 3 bands between nodes
        (37, 53, 10, [0, 53]),  # one band, nothing divides
        (21, 96, 32, [0, 24, 48, 72, 96]),  # bands narrower than a cell
    ],
)
def test_normal_equations_match_a_dense_joint_fit(along_rows, n_lines, length, h, band_edges,
                                                  rng):  # fmt: skip
    band_edges = np.array(band_edges, np.int64)
    plane, use, lines, usable = plane_for(rng, n_lines, length, band_edges, along_rows)
    n_y, n_x = bgm.node_grid(n_lines, length, h)
    assert (n_y - 1) * h >= n_lines - 1 and (n_x - 1) * h >= length - 1  # nodes cover the plane
    n_bands = band_edges.size - 1
    sums = (
        np.empty((n_lines, n_x)), np.empty((n_lines, n_x)),
        np.empty((n_lines, n_bands, n_x)), np.empty((n_lines, n_bands, n_x)),
        np.empty((n_lines, n_bands)), np.empty((n_lines, n_bands)),
    )  # fmt: skip
    sk.line_sums(plane, use, along_rows, band_edges, (float(h), n_x), sums)
    band_nodes = independent_band_nodes(band_edges, h, n_x)
    np.testing.assert_array_equal(bgm._band_nodes(band_edges, h, n_x), band_nodes)
    bandwidth = max(2 * n_x, n_x + int((band_nodes[:, 1] - band_nodes[:, 0]).max()) + 1)
    matrix = np.zeros((bandwidth + 1, n_y * n_x))
    rhs = np.zeros(n_y * n_x)
    sk.normal_equations(sums, (float(h), n_y, n_x), band_nodes, matrix, rhs)
    smooth = np.where(rng.random(n_y * n_x) < 0.5, 0.03, 0.01) * h * h  # by node
    pins = np.where(rng.random(n_y * n_x) < 0.3, 1e-3 * h * h, 0.0) + 1e-6 * h * h
    sk.add_penalties(matrix, (n_y, n_x), smooth, pins)

    nodes_ref, reduced, reduced_rhs = dense_fit(lines, usable, band_edges, h, n_y, n_x,
                                                smooth, pins)  # fmt: skip
    scale = np.abs(reduced).max()
    np.testing.assert_allclose(from_band(matrix), reduced, rtol=0, atol=1e-11 * scale)
    np.testing.assert_allclose(rhs, reduced_rhs, rtol=0, atol=1e-11 * np.abs(reduced_rhs).max())
    nodes = sk.banded_solve(matrix, rhs)
    np.testing.assert_allclose(nodes, nodes_ref, rtol=0, atol=1e-8 * np.abs(nodes_ref).max())


@pytest.mark.parametrize("slope", [0.0, 0.7])
@pytest.mark.parametrize("axis", ["rows", "columns"])
def test_solve_matches_the_dense_fit(axis, slope, rng):
    # background._solve: the kernels wired as fit_surface uses them (bandwidth,
    # penalty and pin scaling per pixel of a cell), against the pins written
    # densely: each node row's mean over its sky nodes pulled with _PIN per sky
    # node, and each sky node with _NODE_PIN, toward the sky's tilt: ``slope``
    # times the node's position less the middle of the row.
    n_lines, length, h = 40, 64, 16
    options = CorrectionOptions.from_kwargs(n_outputs=2)
    layout = make_layout((n_lines, length) if axis == "rows" else (length, n_lines), axis,
                         options)  # fmt: skip
    plane, use, lines, usable = plane_for(rng, n_lines, length, layout.band_edges, axis == "rows")
    n_y, n_x = bgm.node_grid(n_lines, length, h)
    sky = rng.random((n_y, n_x)) < 0.4
    sky[1] = False  # a row without sky: only the smoothness holds it
    nodes = bgm._solve(bgm._normal_equations(plane, use, layout, h, (n_y, n_x)), h, sky, slope)
    cell = float(h) ** 2
    node_weight = np.where(sky, bgm._NODE_PIN * cell, 0.0)
    pins = np.diag(node_weight.ravel() + 1e-6 * cell)
    targets = np.tile(slope * (np.arange(n_x) - (n_x - 1) / 2), (n_y, 1))
    pin_rhs = (node_weight * targets).ravel()
    for j in range(n_y):
        if sky[j].any():
            mean = np.zeros((n_y, n_x))
            mean[j] = sky[j] / sky[j].sum()
            weight = bgm._PIN * cell * sky[j].sum()
            pins += weight * np.outer(mean.ravel(), mean.ravel())
            pin_rhs += weight * (mean * targets).sum() * mean.ravel()
    smooth = np.where(sky, bgm._SKY_SMOOTH, bgm._SMOOTH).ravel() * cell  # stiffer on sky
    ref, _, _ = dense_fit(lines, usable, layout.band_edges, h, n_y, n_x, smooth, pins, pin_rhs)
    np.testing.assert_allclose(nodes.ravel(), ref, rtol=0, atol=1e-8 * np.abs(ref).max())


def test_line_sums_counts_and_totals(rng):
    # Per (line, band): the count and sum of the usable values; the node weights
    # of each pixel add up to one, so per band they sum to the count.
    band_edges = np.array([0, 21, 42, 64], np.int64)
    plane, use, lines, usable = plane_for(rng, 40, 64, band_edges, True)
    n_x = 5
    sums = (
        np.empty((40, n_x)), np.empty((40, n_x)), np.empty((40, 3, n_x)), np.empty((40, 3, n_x)),
        np.empty((40, 3)), np.empty((40, 3)),
    )  # fmt: skip
    sk.line_sums(plane, use, True, band_edges, (16.0, n_x), sums)
    _, _, weight, data, count, total = sums
    for k in range(3):
        seg = np.s_[:, band_edges[k] : band_edges[k + 1]]
        np.testing.assert_array_equal(count[:, k], usable[seg].sum(axis=1))
        np.testing.assert_allclose(total[:, k], np.where(usable[seg] != 0, lines[seg], 0).sum(1),
                                   rtol=1e-12, atol=1e-12)  # fmt: skip
    np.testing.assert_allclose(weight.sum(axis=2), count, rtol=1e-12)
    np.testing.assert_allclose(data.sum(axis=2), total, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("along_rows", [True, False])
@pytest.mark.parametrize(
    ("edges", "h", "n_x"),
    [
        ([0, 21, 42, 64], 16.0, 5),
        # An empty band, runs of 1 to 3 pixels at band edges, nodes 10 apart on
        # 61 positions with the last cell capped (it takes the tail, g > 1).
        ([0, 21, 21, 23, 61], 10.0, 6),
    ],
)
def test_line_sums_equal_the_pixel_loop(along_rows, edges, h, n_x, rng):
    # Every sum gets its pixels' terms, also where a cell straddles a band edge
    # (the cases above). 37 lines: lines along columns are
    # summed in blocks of 16, the last one short; unusable pixels hold NaN and
    # inf, which must not enter. The counts are exact; the other sums add
    # partial sums of a cell's run (the last bits of float64).
    band_edges = np.array(edges, np.int64)
    n_lines, length, n_bands = 37, edges[-1], len(edges) - 1
    plane, use, lines, usable = plane_for(rng, n_lines, length, band_edges, along_rows)
    plane[use == 0] = np.where(rng.random(int((use == 0).sum())) < 0.5, np.nan, np.inf)
    sums = (
        np.empty((n_lines, n_x)), np.empty((n_lines, n_x)), np.empty((n_lines, n_bands, n_x)),
        np.empty((n_lines, n_bands, n_x)), np.empty((n_lines, n_bands)),
        np.empty((n_lines, n_bands)),
    )  # fmt: skip
    sk.line_sums(plane, use, along_rows, band_edges, (h, n_x), sums)
    cell, upper = sk._cells_of(length, h, n_x)
    diag, off = np.zeros((n_lines, n_x)), np.zeros((n_lines, n_x))
    weight, data = np.zeros((n_lines, n_bands, n_x)), np.zeros((n_lines, n_bands, n_x))
    count, total = np.zeros((n_lines, n_bands)), np.zeros((n_lines, n_bands))
    for line in range(n_lines):
        for k in range(n_bands):
            for pos in range(band_edges[k], band_edges[k + 1]):
                if not usable[line, pos]:
                    continue
                i, g, v = cell[pos], upper[pos], lines[line, pos]
                count[line, k] += 1.0
                total[line, k] += v
                w0 = 1.0 - g
                diag[line, i] += w0 * w0
                diag[line, i + 1] += g * g
                off[line, i] += w0 * g
                weight[line, k, i] += w0
                weight[line, k, i + 1] += g
                data[line, k, i] += w0 * v
                data[line, k, i + 1] += g * v
    expected_sums = (diag, off, weight, data, count, total)
    for ours, expected in zip(sums, expected_sums, strict=True):
        scale = np.abs(expected).max()
        np.testing.assert_allclose(ours, expected, rtol=1e-13, atol=1e-13 * scale)
    np.testing.assert_array_equal(sums[4], count)


def test_line_sums_along_columns_are_the_rows_of_the_transposed_plane(rng):
    # The column path reads blocks of columns a row at a time and sums each
    # column's runs as the row path sums a row's: the same bits.
    band_edges = np.array([0, 21, 21, 23, 61], np.int64)
    plane, use, _, _ = plane_for(rng, 37, 61, band_edges, True)

    def sums_of(values, usable, along_rows):
        out = (
            np.empty((37, 6)), np.empty((37, 6)), np.empty((37, 4, 6)), np.empty((37, 4, 6)),
            np.empty((37, 4)), np.empty((37, 4)),
        )  # fmt: skip
        sk.line_sums(values, usable, along_rows, band_edges, (10.0, 6), out)
        return out

    rows = sums_of(plane, use, True)
    columns = sums_of(np.ascontiguousarray(plane.T), np.ascontiguousarray(use.T), False)
    for a, b in zip(rows, columns, strict=True):
        np.testing.assert_array_equal(a, b)


def test_normal_equations_equal_the_full_double_loop(rng):
    # Exact: the kernel skips only the additions below the diagonal, which the
    # upper band storage would drop; here every pair is visited and filtered.
    n_lines, n_y, n_x, h = 30, 4, 5, 10.0
    band_nodes = np.array([[0, 3], [2, 5]], np.int64)
    diag, off = rng.random((n_lines, n_x)), rng.random((n_lines, n_x))
    weight, data = rng.random((n_lines, 2, n_x)), rng.normal(size=(n_lines, 2, n_x))
    count = rng.integers(0, 4, (n_lines, 2)).astype(float)  # some bands empty
    total = rng.normal(size=(n_lines, 2))
    sums = (diag, off, weight, data, count, total)
    bandwidth = 2 * n_x
    matrix, rhs = np.zeros((bandwidth + 1, n_y * n_x)), np.zeros(n_y * n_x)
    sk.normal_equations(sums, (h, n_y, n_x), band_nodes, matrix, rhs)

    expected, expected_rhs = np.zeros_like(matrix), np.zeros_like(rhs)

    def add(m1, m2, value):
        if m2 >= m1:
            expected[m2 - m1, m1] += value

    for line in range(n_lines):
        j = min(int(line / h), n_y - 2)
        f = line / h - j
        wy = (1.0 - f, f)
        for a in range(2):
            ra = (j + a) * n_x
            for b in range(2):
                rb = (j + b) * n_x
                w = wy[a] * wy[b]
                for i in range(n_x):
                    add(ra + i, rb + i, w * diag[line, i])
                    if i + 1 < n_x:
                        add(ra + i, rb + i + 1, w * off[line, i])
                        add(ra + i + 1, rb + i, w * off[line, i])
                for k in range(2):
                    if count[line, k] == 0.0:
                        continue
                    inv = w / count[line, k]
                    for i in range(*band_nodes[k]):
                        wi = weight[line, k, i] * inv
                        if wi == 0.0:
                            continue
                        for i2 in range(*band_nodes[k]):
                            add(ra + i, rb + i2, -wi * weight[line, k, i2])
            for k in range(2):
                if count[line, k] == 0.0:
                    continue
                mean = total[line, k] / count[line, k]
                for i in range(*band_nodes[k]):
                    expected_rhs[ra + i] += wy[a] * (data[line, k, i] - weight[line, k, i] * mean)
    np.testing.assert_array_equal(matrix, expected)
    np.testing.assert_array_equal(rhs, expected_rhs)


# --------------------------------------------------------------------------
# evaluate, cell_fractions
# --------------------------------------------------------------------------
def numpy_bilinear(nodes, n_lines, length, h):
    """Separable linear interpolation (np.interp), lines by positions."""
    n_y, n_x = nodes.shape
    along = np.array([np.interp(np.arange(length), np.arange(n_x) * h, row) for row in nodes])
    return np.array([np.interp(np.arange(n_lines), np.arange(n_y) * h, col) for col in along.T]).T


@pytest.mark.parametrize("along_rows", [True, False])
@pytest.mark.parametrize(("n_lines", "length", "h"), [(40, 64, 16), (37, 53, 10), (5, 129, 64)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_evaluate_is_bilinear_interpolation(along_rows, n_lines, length, h, dtype, rng):
    n_y, n_x = bgm.node_grid(n_lines, length, h)
    nodes = rng.normal(0.0, 1.0, (n_y, n_x))
    out = np.empty((n_lines, length) if along_rows else (length, n_lines), dtype)
    sk.evaluate(nodes, along_rows, float(h), out)
    ref = numpy_bilinear(nodes, n_lines, length, h)
    got = out if along_rows else out.T
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got, ref, rtol=0, atol=tol * np.abs(nodes).max())
    # On the nodes themselves: the node values.
    on = np.arange(0, n_lines, h)[:, None], np.arange(0, length, h)[None, :]
    np.testing.assert_allclose(got[on], nodes[: on[0].size, : on[1].size], rtol=tol)

    # Exactly the kernel's formula: down the rows of ``out`` first, then along them.
    def cells(n, count):
        t = np.arange(n) / h
        j = np.minimum(t.astype(int), count - 2)
        return j, t - j

    grid = nodes if along_rows else nodes.T  # (rows of out, columns of out)
    k, f = cells(out.shape[0], grid.shape[0])
    profile = (1.0 - f)[:, None] * grid[k] + f[:, None] * grid[k + 1]
    i, g = cells(out.shape[1], grid.shape[1])
    exact = (1.0 - g) * profile[:, i] + g * profile[:, i + 1]
    np.testing.assert_array_equal(out, exact.astype(dtype))


@pytest.mark.parametrize("along_rows", [True, False])
@pytest.mark.parametrize(("n_lines", "length", "h"), [(40, 64, 16), (37, 53, 10), (3, 70, 64)])
@pytest.mark.parametrize("with_sources", [True, False])
def test_cell_fractions(along_rows, n_lines, length, h, with_sources, rng):
    n_y, n_x = bgm.node_grid(n_lines, length, h)
    usable = (rng.random((n_lines, length)) < 0.7).astype(np.uint8)
    sources = (rng.random((n_lines, length)) < 0.3).astype(np.uint8)
    out, out_free = np.full((n_y, n_x), -1.0), np.full((n_y, n_x), -1.0)

    def image(lines_by_positions):
        return lines_by_positions if along_rows else np.ascontiguousarray(lines_by_positions.T)

    kernel_sources = image(sources) if with_sources else np.zeros((0, 0), np.uint8)
    sk.cell_fractions(image(usable), kernel_sources, along_rows, float(h), (n_y, n_x), out,
                      out_free)  # fmt: skip
    # Each pixel belongs to its nearest node (halves round up), clipped to the grid.
    j = np.minimum(np.floor(np.arange(n_lines) / h + 0.5).astype(int), n_y - 1)
    i = np.minimum(np.floor(np.arange(length) / h + 0.5).astype(int), n_x - 1)
    cell = j[:, None] * n_x + i[None, :]
    total = np.bincount(cell.ravel(), minlength=n_y * n_x)

    def fraction(bad):
        counts = np.bincount(cell.ravel(), weights=bad.ravel(), minlength=n_y * n_x)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, counts / total, 1.0).reshape(n_y, n_x)

    np.testing.assert_allclose(out, fraction(usable == 0), rtol=1e-15)
    if with_sources:
        np.testing.assert_allclose(out_free, fraction((usable == 0) | (sources != 0)), rtol=1e-15)
    else:
        assert (out_free == -1.0).all()  # not written


# --------------------------------------------------------------------------
# fit_surface: what the method promises
# --------------------------------------------------------------------------
N = 512
PEAK = 10.0  # DN at the blob's centre; white noise is 1 DN per pixel
N_BANDS = 4


def blob_scene(rng, axis, sigma_px, centre):
    """A Gaussian blob + a free level per (line, band) (3 DN RMS) + a pedestal + white noise."""
    yy, xx = np.mgrid[:N, :N].astype(float)
    blob = PEAK * np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * sigma_px**2))
    band = np.arange(N) // (N // N_BANDS)
    levels = rng.normal(0.0, 3.0, (N, N_BANDS))[:, band]  # (line, position)
    plane = blob + (levels if axis == "rows" else levels.T) + 5.0 + rng.normal(0.0, 1.0, (N, N))
    layout = make_layout((N, N), axis, CorrectionOptions.from_kwargs(n_outputs=N_BANDS))
    usable = np.ones((N, N), np.uint8)
    extended = (blob > 0.01 * PEAK).astype(np.uint8)  # the source mask at every scale
    surface = bgm.fit_surface(plane, usable, layout, spacing=64, sigma=1.0, extended=extended)
    return blob, surface


def band_demeaned(image, axis):
    """``image`` as (line, position) with each (line, band) mean removed."""
    lines = (image if axis == "rows" else image.T).copy()
    for k in range(N_BANDS):
        seg = np.s_[:, k * (N // N_BANDS) : (k + 1) * (N // N_BANDS)]
        lines[seg] -= lines[seg].mean(axis=1, keepdims=True)
    return lines


def rms(a):
    return float(np.sqrt(np.mean(np.square(a))))


@pytest.mark.parametrize("axis", ["rows", "columns"])
def test_surface_follows_the_light_along_each_band(axis, rng):
    # The levels (3 DN RMS per band, 30x the blob's variation within a band)
    # are free, so only the variation along a band defines the surface: it
    # must follow the blob's there. Measured: 6% of the blob's band-demeaned
    # RMS (bilinear on 64-px cells of a 150-px Gaussian, and node noise).
    blob, surface = blob_scene(rng, axis, 150.0, (60, 60))
    ratio = rms(band_demeaned(surface - blob, axis)) / rms(band_demeaned(blob, axis))
    assert ratio < 0.10


@pytest.mark.parametrize("axis", ["rows", "columns"])
def test_surface_of_an_empty_sky_is_flat_zero(axis, rng):
    # No light: every node is sky and pinned, the surface is ~0 everywhere.
    # A node averages a 64x64 cell of 1 DN noise (node noise 1.25/64 = 0.02 DN;
    # measured RMS 0.015-0.035, largest pixel 0.07-0.17 over seeds); levels of
    # 3 DN RMS must not leak into it: 0.06 DN RMS is 3 node-noise sigmas, and
    # 0.3 DN anywhere a tenth of the level RMS.
    yy = np.zeros((N, N))
    band = np.arange(N) // (N // N_BANDS)
    levels = rng.normal(0.0, 3.0, (N, N_BANDS))[:, band]
    plane = yy + (levels if axis == "rows" else levels.T) + rng.normal(0.0, 1.0, (N, N))
    layout = make_layout((N, N), axis, CorrectionOptions.from_kwargs(n_outputs=N_BANDS))
    surface = bgm.fit_surface(plane, np.ones((N, N), np.uint8), layout, spacing=64, sigma=1.0,
                              extended=np.zeros((N, N), np.uint8))  # fmt: skip
    assert rms(surface) < 0.06
    assert np.abs(surface).max() < 0.3


@pytest.mark.xfail(
    strict=True,
    reason="with sky on only a corner (16% of the frame) the soft pins (background._PIN) "
    "let the surface drift by a function of the line: 0.29-0.38 DN RMS where the blob is "
    "< 0.1 DN (with every sky node pinned, as before the row-mean pins: failing at 1e-3 and "
    "1e-2; pins of ~1 held it but made the galaxy's bias and the crowded field's line "
    "residual worse in the quality benchmark)",
)
@pytest.mark.parametrize("axis", ["rows", "columns"])
def test_pins_hold_the_surface_at_the_sky_where_there_is_no_light(axis, rng):
    # Where the blob is below 1% of its peak (0.1 DN; 16% of the frame, the
    # corner away from it) the nodes are pinned sky: the surface there should
    # be the blob (<= 0.1 DN) within a few node-noise sigmas (0.02 DN each).
    # 0.25 DN RMS allows the blob itself plus 7 node sigmas. Measured: 0.29-0.38
    # DN RMS, 0.70 DN at most (0.47 and 0.75 with the earlier pins on every sky
    # node); the error of the surface is mostly a function of the line (1.3-1.5
    # DN peak to peak in its line means).
    blob, surface = blob_scene(rng, axis, 150.0, (60, 60))
    sky = blob < 0.01 * PEAK
    assert sky.mean() > 0.1
    assert rms(surface[sky]) < 0.25


@pytest.mark.parametrize("axis", ["rows", "columns"])
def test_rows_pinned_over_different_stretches_of_a_ramp_hold_the_same_sky(axis):
    # A sky rising along the lines (no noise, an offset per line and band):
    # each node row is pinned over a stretch of a different length, as where
    # the bright end of a ramp is taken for a source. Pinned to the sky's
    # tilt, every row is the same ramp; pinned to one level, a row held over
    # a shorter stretch sat higher (by the slope times half the difference in
    # length: a bow in the surface's line means that the levels take as
    # stripes).
    n_lines, length, h = 96, 128, 16
    layout = make_layout((n_lines, length) if axis == "rows" else (length, n_lines), axis,
                         CorrectionOptions.from_kwargs(n_outputs=2))  # fmt: skip
    n_y, n_x = bgm.node_grid(n_lines, length, h)
    slope = 0.3  # per node
    ramp = slope / h * np.arange(length)
    offsets = np.random.default_rng(4).normal(0.0, 5.0, (n_lines, 2))
    band = np.arange(length) // (length // 2)
    lines = ramp[None, :] + offsets[:, band]
    plane = lines if axis == "rows" else lines.T.copy()
    use = np.ones(plane.shape, np.uint8)
    pinned = np.zeros((n_y, n_x), bool)
    for j in range(n_y):
        pinned[j, : 3 + j % (n_x - 3)] = True
    equations = bgm._normal_equations(plane, use, layout, h, (n_y, n_x))
    nodes = bgm._solve(equations, h, pinned, slope)
    assert bgm._sky_slope(nodes, pinned) == pytest.approx(slope, rel=1e-4)
    np.testing.assert_allclose(nodes - nodes[0], 0.0, atol=1e-3 * slope)
    flat = bgm._solve(equations, h, pinned, 0.0)  # one level: the rows differ
    assert np.ptp(flat.mean(axis=1)) > 0.5 * slope


def test_a_slope_the_sky_test_cannot_see_is_no_tilt():
    # The least slope kept moves a row's end nodes (half a row from its
    # middle) by the sky test's threshold; above it the slope is shrunk by
    # least**2 / slope, continuously from 0 and by nearly nothing for a clear
    # slope.
    least = 0.04 / 16
    assert bgm._visible_slope(0.001, threshold=0.04, n_x=33) == 0.0
    assert bgm._visible_slope(-0.0024, threshold=0.04, n_x=33) == 0.0
    assert bgm._visible_slope(least * (1 + 1e-9), threshold=0.04, n_x=33) == pytest.approx(
        0.0, abs=1e-8 * least
    )
    assert bgm._visible_slope(0.6, threshold=0.04, n_x=33) == pytest.approx(0.6 - least**2 / 0.6)
    assert bgm._visible_slope(-0.6, threshold=0.04, n_x=33) == pytest.approx(-0.6 + least**2 / 0.6)


def _surface_calls(monkeypatch, plane, axis):
    """The slopes ``fit_surface`` pins to, and its surface, on ``plane`` (no sources)."""
    slopes = []
    solve = bgm._solve

    def recording(equations, spacing, sky, slope=0.0):
        slopes.append(slope)
        return solve(equations, spacing, sky, slope)

    monkeypatch.setattr(bgm, "_solve", recording)
    layout = make_layout((N, N), axis, CorrectionOptions.from_kwargs(n_outputs=N_BANDS))
    surface = bgm.fit_surface(plane, np.ones((N, N), np.uint8), layout, spacing=64, sigma=1.0,
                              extended=np.zeros((N, N), np.uint8))  # fmt: skip
    return slopes, surface


@pytest.mark.parametrize("axis", ["rows", "columns"])
def test_a_flat_sky_keeps_the_flat_pins(axis, rng, monkeypatch):
    # Levels and white noise only: the slope fitted from the noise is below
    # what the sky test could see, so every fit is pinned flat.
    band = np.arange(N) // (N // N_BANDS)
    levels = rng.normal(0.0, 3.0, (N, N_BANDS))[:, band]
    plane = (levels if axis == "rows" else levels.T) + rng.normal(0.0, 1.0, (N, N))
    slopes, _ = _surface_calls(monkeypatch, plane, axis)
    assert len(slopes) >= 2 and all(slope == 0.0 for slope in slopes)


@pytest.mark.parametrize("axis", ["rows", "columns"])
def test_a_sky_rising_along_the_lines_leaves_no_bow_in_the_surface(axis, rng, monkeypatch):
    # A sky rising by 20 DN along the lines (white noise 1 DN, levels of 3 DN
    # per line and band): the surface carries the ramp and no function of the
    # line, which the levels would take as stripes: its line means vary by
    # 0.002-0.008 DN RMS over seven seeds (0.008 with this one), where the sky
    # test against one level, which held the rows over different stretches of
    # the ramp's faint end, left 0.013-0.018 DN and, on two of the seeds
    # (this one among them), 0.22-0.30 DN.
    band = np.arange(N) // (N // N_BANDS)
    levels = rng.normal(0.0, 3.0, (N, N_BANDS))[:, band]
    ramp = 20.0 * np.arange(N) / (N - 1)
    lines = levels + ramp[None, :] + rng.normal(0.0, 1.0, (N, N))
    plane = lines if axis == "rows" else lines.T
    slopes, surface = _surface_calls(monkeypatch, plane, axis)
    assert slopes[-1] == pytest.approx(20.0 * 64 / (N - 1), rel=0.02)
    line_means = (surface if axis == "rows" else surface.T).mean(axis=1)
    assert rms(line_means - line_means.mean()) < 0.015


def test_row_pins_add_each_rows_weight_over_its_pairs_of_sky_nodes(rng):
    # Against the pairs written out with numpy, the same products in the same order.
    n_y, n_x = 7, 9
    sky = rng.random((n_y, n_x)) < 0.6
    sky[2] = False  # a row without sky nodes
    matrix = rng.normal(size=(n_x + 3, n_y * n_x))
    expected = matrix.copy()
    counts = sky.sum(axis=1)
    per_pair = np.divide(2.5, counts, out=np.zeros(n_y), where=counts > 0)
    on = sky.astype(np.float64)
    for d in range(n_x):
        pairs = per_pair[:, None] * on[:, : n_x - d] * on[:, d:]
        first = (np.arange(n_y)[:, None] * n_x + np.arange(n_x - d)).ravel()
        expected[d, first] += pairs.ravel()
    bgm._add_row_pins(matrix, sky, 2.5)
    np.testing.assert_array_equal(matrix, expected)


def _band_mean_drift(seed: int, monkeypatch, sky_smooth: float) -> float:
    """RMS of the surface's own part per line and output band on a field without sources."""
    rng = np.random.default_rng(seed)
    n = 512
    plane = rng.normal(0.0, 1.0, (n, n))
    # Faint structure a few pixels across (unresolved light), 0.3 sigma.
    k2 = np.fft.fftfreq(n)[:, None] ** 2 + np.fft.rfftfreq(n)[None, :] ** 2
    light = np.fft.irfft2(
        np.fft.rfft2(rng.normal(size=(n, n))) * np.exp(-2 * (np.pi * 6) ** 2 * k2), s=(n, n)
    )
    plane = (plane + 0.3 * light / light.std()).astype(np.float32)
    layout = make_layout((n, n), "rows", CorrectionOptions.from_kwargs(n_outputs=4))
    monkeypatch.setattr(bgm, "_SKY_SMOOTH", sky_smooth)
    surface = bgm.fit_background(
        plane, np.ones((n, n), np.uint8), layout, spacing=64, sigma=1.0, extended=None
    )
    bands = surface.evaluate().astype(np.float64).reshape(n, 4, n // 4).mean(axis=-1)
    return float(np.sqrt(np.mean((bands - bands.mean(axis=1, keepdims=True)) ** 2)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stiffer_sky_keeps_the_band_means_from_drifting(seed, monkeypatch):
    # The surface's band means are tied across the outputs only at their
    # boundaries: what it fits within a band carries over into the next
    # band's mean, and the line levels take that drift. Stiffer around the
    # sky nodes, it drifts less (10-19% here).
    default = bgm._SKY_SMOOTH
    flexible = _band_mean_drift(seed, monkeypatch, bgm._SMOOTH)
    stiff = _band_mean_drift(seed, monkeypatch, default)
    assert stiff < 0.93 * flexible
