"""The pool of work-array memory (bgdnoise._scratch): reuse, lifetimes, bounds."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from bgdnoise import _scratch, correct_array

PLANE = (512, 1024)  # 2 MiB of float32: pooled


@pytest.fixture(autouse=True)
def empty_pool():
    _scratch.clear()
    yield
    _scratch.clear()


def _address(array):
    return array.__array_interface__["data"][0]


def test_work_arrays_are_like_numpy_ones():
    a = _scratch.empty(PLANE, np.float32)
    assert a.shape == PLANE and a.dtype == np.float32 and a.flags.c_contiguous
    assert a.flags.writeable and type(a) is np.ndarray
    z = _scratch.zeros((1024, 1024), np.uint8)
    assert z.dtype == np.uint8 and not z.any()
    source = np.arange(2**18, dtype=np.float64).reshape(512, 512)
    c = _scratch.copy(source[:, ::-1])
    np.testing.assert_array_equal(c, source[:, ::-1])
    assert c.flags.c_contiguous
    small = _scratch.empty(10)
    assert small.flags.owndata  # from numpy: too small to pool


def test_unmasked_is_usable_and_not_masked(rng):
    usable = (rng.random(PLANE) < 0.8).astype(np.uint8)
    masked = rng.choice(np.array([0, 1, 7], np.uint8), PLANE)
    out = _scratch.unmasked(usable, masked)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, usable & (masked == 0))


def test_nothing_is_kept_before_a_correction_of_that_size_has_finished():
    a = _scratch.empty(PLANE, np.float32)
    del a
    assert _scratch.kept_bytes() == 0  # a first correction: as np.empty
    with _scratch.correction():
        a = _scratch.empty(PLANE, np.float32)
        first = _address(a)
        del a
        assert _scratch.kept_bytes() == 0  # still under way
    b = _scratch.empty(PLANE, np.float32)
    del b
    assert _scratch.kept_bytes() == 2 * 2**20  # its size is kept from then on
    c = _scratch.empty(PLANE, np.int32)  # the same size, any dtype: the same block
    assert _scratch.kept_bytes() == 0
    d = _scratch.empty((1024, 1024), np.float32)  # another size: not kept
    del c, d
    assert _scratch.kept_bytes() == 2 * 2**20
    assert first != 0


def test_memory_returns_only_when_every_view_is_gone():
    with _scratch.correction():
        _scratch.empty(PLANE, np.float32)
    a = _scratch.empty(PLANE, np.float32)
    views = [a[::2], a.T, a.view(np.uint8), a.reshape(-1)[10:], a[1:][::3]]
    del a
    assert _scratch.kept_bytes() == 0
    b = _scratch.empty(PLANE, np.float32)  # must not share the views' memory
    b.fill(7.0)
    views[0][...] = 1.0
    assert (b == 7.0).all()
    address = _address(views[3]) - 40  # the first view's block, 10 float32 in
    del views
    assert _scratch.kept_bytes() == 2 * 2**20
    c = _scratch.empty(PLANE, np.float32)
    assert _address(c) == address  # reused once every view was gone
    del b, c


def test_the_pool_keeps_at_most_max_kept(monkeypatch):
    monkeypatch.setattr(_scratch, "MAX_KEPT", 5 * 2**20)
    with _scratch.correction():
        _scratch.empty(PLANE, np.float32)
    arrays = [_scratch.empty(PLANE, np.float32) for _ in range(4)]
    del arrays
    assert _scratch.kept_bytes() == 4 * 2**20  # two of 2 MiB kept, two let go
    _scratch.clear()
    assert _scratch.kept_bytes() == 0


def _frame(seed):
    rng = np.random.default_rng(seed)
    image = rng.normal(10.0, 1.0, (512, 512)) + rng.normal(0.0, 0.5, (512, 1))
    yy, xx = np.mgrid[:512, :512]
    image += 30.0 * np.exp(-((yy - 200.0) ** 2 + (xx - 300.0) ** 2) / 400.0)  # a source
    return image.astype(np.float32)


def test_corrections_on_reused_memory_are_the_same_bits():
    # The pool hands out memory holding the previous correction's values
    # (np.empty's fresh pages are zeros): no result may depend on it.
    frames = [_frame(seed) for seed in range(3)]
    first = [correct_array(f, "rows", n_outputs=4) for f in frames]
    assert _scratch.kept_bytes() > 0
    for _ in range(2):
        again = [correct_array(f, "rows", n_outputs=4) for f in frames[::-1]][::-1]
        for a, b in zip(first, again, strict=True):
            np.testing.assert_array_equal(a, b)


def test_corrections_in_threads_are_those_made_one_at_a_time():
    frames = [_frame(seed) for seed in range(6)]
    alone = [correct_array(f, "rows", n_outputs=4) for f in frames]
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(lambda f: correct_array(f, "rows", n_outputs=4), frames))
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a, b)
