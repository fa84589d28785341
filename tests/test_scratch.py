"""The pool of work-array memory (bgdnoise._scratch): reuse, lifetimes, bounds."""

import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import bgdnoise
from bgdnoise import _scratch, correct_array

PLANE = (512, 1024)  # 2 MiB of float32: pooled


@pytest.fixture(autouse=True)
def empty_pool():
    _scratch.release_memory()
    yield
    _scratch.release_memory()


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


def test_sessions_nested_or_failed_keep_their_sizes():
    with _scratch.correction():
        with _scratch.correction():  # a correction within one: counted at the outer end
            _scratch.empty(PLANE, np.float32)
        _scratch.empty(PLANE, np.float32)
        assert _scratch.kept_bytes() == 0  # not kept until the outer one ends
    _scratch.empty(PLANE, np.float32)  # the outer one's end made the size kept
    assert _scratch.kept_bytes() == 2 * 2**20
    with pytest.raises(RuntimeError), _scratch.correction():
        _scratch.empty((1024, 1024), np.float32)
        raise RuntimeError("a correction that fails")
    _scratch.empty((1024, 1024), np.float32)
    assert _scratch.kept_bytes() == 2 * 2**20 + 4 * 2**20


def test_no_memory_returns_at_interpreter_exit(monkeypatch):
    # At exit, weakref.finalize runs the finalizers still pending: the memory
    # of arrays still in use (a daemon thread, a later exit handler) would go
    # to other arrays. The pool's finalizers do not run then.
    made = []

    class Recorded(weakref.finalize):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(weakref, "finalize", Recorded)
    a = _scratch.empty(PLANE, np.float32)
    assert len(made) == 1 and made[0].alive and not made[0].atexit
    del a
    assert not made[0].alive


def _free_sizes():
    return sorted(size for size, blocks in _scratch._free.items() for _ in blocks)


def test_the_pool_lets_the_sizes_asked_for_longest_ago_go_first(monkeypatch):
    monkeypatch.setattr(_scratch, "MAX_KEPT", 6 * 2**20)
    mib = 2**20
    shapes = {1: (256, 1024), 2: (512, 1024), 3: (768, 1024)}  # MiB of float32
    with _scratch.correction():
        for shape in shapes.values():
            _scratch.empty(shape, np.float32)
    arrays = [_scratch.empty(shapes[n], np.float32) for n in (1, 2, 3)]  # asked in this order
    del arrays
    assert _free_sizes() == [mib, 2 * mib, 3 * mib]
    three = [_scratch.empty(shapes[3], np.float32) for _ in range(2)]  # 3 MiB asked last
    del three  # 12 MiB free would exceed 6: the 1, then the 2 MiB block go
    assert _free_sizes() == [3 * mib, 3 * mib]
    assert _scratch.kept_bytes() == 6 * mib


def test_the_pool_keeps_at_most_max_kept(monkeypatch):
    monkeypatch.setattr(_scratch, "MAX_KEPT", 5 * 2**20)
    with _scratch.correction():
        _scratch.empty(PLANE, np.float32)
    arrays = [_scratch.empty(PLANE, np.float32) for _ in range(4)]
    del arrays
    assert _scratch.kept_bytes() == 4 * 2**20  # two of 2 MiB kept, two let go
    _scratch.release_memory()
    assert _scratch.kept_bytes() == 0


def _frame(seed):
    rng = np.random.default_rng(seed)
    image = rng.normal(10.0, 1.0, (512, 512)) + rng.normal(0.0, 0.5, (512, 1))
    yy, xx = np.mgrid[:512, :512]
    image += 30.0 * np.exp(-((yy - 200.0) ** 2 + (xx - 300.0) ** 2) / 400.0)  # a source
    return image.astype(np.float32)


@pytest.mark.parametrize(
    "options",
    [{}, {"axis": "columns"}, {"n_outputs": 1}, {"odd_even": True},
     {"background_method": "median"}],
    ids=["defaults", "columns", "one output", "odd-even", "median background"],
)  # fmt: skip
def test_no_result_depends_on_what_work_memory_held(options, monkeypatch):
    # The pool hands out memory holding earlier values: every work array
    # filled with one byte pattern or another (NaN, huge, zero values) must
    # give the same bits, fresh memory or reused.
    kwargs = {"axis": "rows", "n_outputs": 4, **options}
    frames = [_frame(seed) for seed in range(2)]
    fresh = [correct_array(f, **kwargs) for f in frames]  # np.empty's memory
    for poison in (0x00, 0xFF, 0x7F):
        monkeypatch.setattr(_scratch, "POISON", poison)
        for _ in range(2):  # the second time on the pool's memory
            again = [correct_array(f, **kwargs) for f in frames]
            for a, b in zip(fresh, again, strict=True):
                np.testing.assert_array_equal(a, b)
    assert _scratch.kept_bytes() > 0


def test_release_memory_is_public():
    with _scratch.correction():
        _scratch.empty(PLANE, np.float32)
    _scratch.empty(PLANE, np.float32)
    assert _scratch.kept_bytes() > 0
    bgdnoise.release_memory()
    assert _scratch.kept_bytes() == 0 and "release_memory" in bgdnoise.__all__


def test_corrections_in_threads_are_those_made_one_at_a_time():
    frames = [_frame(seed) for seed in range(6)]
    alone = [correct_array(f, "rows", n_outputs=4) for f in frames]
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(lambda f: correct_array(f, "rows", n_outputs=4), frames))
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a, b)
