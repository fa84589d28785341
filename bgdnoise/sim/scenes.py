"""Scenes to put under the stripes: fields, galaxies, a nebula, a bright star, traces.

Every scene is a flat sky plus sources, in DN/s, built from a seeded
generator. Brightness is set in units of ``sigma``, the white noise of a sky
pixel in the rate, so that a scene's claims ("half the pixels above 1
sigma", "wings below the noise over most lines") hold whatever the ramp.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

__all__ = ["SCENES", "Scene", "make_scene"]

#: Flux below which a source no longer matters (stamps end there), in sigma.
FLOOR = 1e-2


@dataclass
class Scene:
    """A scene and the masks that describe it.

    Attributes
    ----------
    name : str
        The scene's name (a key of :data:`SCENES`, or ``"user"``).
    sources : numpy.ndarray
        ``(ny, nx)`` float64: source flux above the sky, DN/s.
    sky : float
        Flat sky level, DN/s.
    sigma : float
        The white noise of a sky pixel the brightness was scaled to, DN/s.
    """

    name: str
    sources: np.ndarray
    sky: float
    sigma: float

    @property
    def image(self) -> np.ndarray:
        """Sky plus sources."""
        return self.sky + self.sources

    def source_mask(self, level: float = 1.0) -> np.ndarray:
        """True where the sources exceed ``level * sigma``."""
        return self.sources > level * self.sigma

    def sky_mask(self, level: float = 0.02) -> np.ndarray:
        """True where the sources stay below ``level * sigma``: faint sky."""
        return self.sources < level * self.sigma


def _paint(image, cy, cx, radius, profile) -> None:
    """Add ``profile(dy, dx)`` to the pixels within ``radius`` of ``(cy, cx)``."""
    ny, nx = image.shape
    y0, y1 = max(0, int(cy - radius)), min(ny, int(cy + radius) + 2)
    x0, x1 = max(0, int(cx - radius)), min(nx, int(cx + radius) + 2)
    if y1 > y0 and x1 > x0:
        dy = np.arange(y0, y1)[:, None] - cy
        dx = np.arange(x0, x1)[None, :] - cx
        image[y0:y1, x0:x1] += profile(dy, dx)


def sersic_profile(dy, dx, *, i_e, r_e, n, q=1.0, angle=0.0) -> np.ndarray:
    """Sérsic surface brightness: ``i_e`` at the effective radius ``r_e``.

    Parameters
    ----------
    dy, dx : numpy.ndarray
        Offsets from the centre (broadcastable), pixels.
    i_e, r_e, n : float or numpy.ndarray
        Brightness at ``r_e``, effective radius along the major axis,
        Sérsic index (arrays broadcast against the offsets).
    q, angle : float or numpy.ndarray
        Axis ratio and position angle (radians) of the major axis.

    Returns
    -------
    numpy.ndarray
    """
    b = 2.0 * n - 1.0 / 3.0 + 0.009876 / n
    cos, sin = np.cos(angle), np.sin(angle)
    major = dx * cos + dy * sin
    minor = (dy * cos - dx * sin) / q
    # Half a pixel of softening keeps the centre finite.
    r = np.sqrt(major**2 + minor**2 + 0.25)
    return i_e * np.exp(-b * ((r / r_e) ** (1.0 / n) - 1.0))


def _moffat(dy, dx, *, peak, fwhm=2.0, beta=2.0):
    alpha2 = (fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))) ** 2
    return peak * (1.0 + (dy**2 + dx**2) / alpha2) ** -beta


def _moffat_radius(peak, fwhm=2.0, beta=2.0):
    alpha2 = (fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))) ** 2
    return np.sqrt(alpha2 * np.maximum((peak / FLOOR) ** (1.0 / beta) - 1.0, 0.0))


def _sersic_radius(i_e, r_e, n):
    b = 2.0 * n - 1.0 / 3.0
    return r_e * (1.0 + np.log(np.maximum(i_e / FLOOR, 1.0)) / b) ** n


#: Half-sizes of the square stamps small sources are drawn in together.
_HALVES = (3, 4, 6, 8, 12, 16, 24, 32, 48)
#: Margin around the image for stamps: sources lie within 10 px of it.
_PAD = 64


def _stamp_batch(canvas, cy, cx, half, profile, params) -> None:
    """Add square stamps of ``2 * half + 1`` pixels, profiles evaluated together."""
    grid = np.arange(-half, half + 1, dtype=np.float32)
    y0, x0 = np.floor(cy).astype(np.int64), np.floor(cx).astype(np.int64)
    dy = (y0 - cy).astype(np.float32)[:, None, None] + grid[None, :, None]
    dx = (x0 - cx).astype(np.float32)[:, None, None] + grid[None, None, :]
    values = profile(dy, dx, **params)
    size = 2 * half + 1
    for k, (top, left) in enumerate(zip(y0 - half + _PAD, x0 - half + _PAD, strict=True)):
        canvas[top : top + size, left : left + size] += values[k]


def _render(image, cy, cx, radius, profile, params) -> None:
    """Add many sources of one profile: small ones stamped in batches, large ones one by one.

    ``params`` maps profile keywords to arrays of one value per source;
    sources lie within 10 pixels of the image.
    """
    ny, nx = image.shape
    canvas = np.zeros((ny + 2 * _PAD, nx + 2 * _PAD), np.float32)
    done = np.zeros(cy.size, bool)
    for half in _HALVES:
        chosen = np.flatnonzero(~done & (radius <= half))
        done[chosen] = True
        # Chunks of about 4 million stamp pixels.
        for part in np.array_split(chosen, 1 + chosen.size * (2 * half + 1) ** 2 // 4_000_000):
            if part.size:
                sub = {k: v[part, None, None].astype(np.float32) for k, v in params.items()}
                _stamp_batch(canvas, cy[part], cx[part], half, profile, sub)
    image += canvas[_PAD:-_PAD, _PAD:-_PAD]
    for i in np.flatnonzero(~done):
        one = {key: value[i] for key, value in params.items()}
        _paint(image, cy[i], cx[i], min(radius[i], 400.0), functools.partial(profile, **one))


def _field(image, rng, sigma, count, brightness=1.0) -> None:
    """Add ``count`` stars and galaxies at random places, most of them faint."""
    ny, nx = image.shape
    cy, cx = rng.uniform(-10, ny + 10, count), rng.uniform(-10, nx + 10, count)
    # Power laws: many faint sources, a few bright ones; 40% stars.
    star = rng.random(count) < 0.4
    peak = sigma * brightness * np.minimum(2.0 * (1.0 + rng.pareto(0.8, count)), 2e4)
    _render(image, cy[star], cx[star], _moffat_radius(peak[star] / sigma), _moffat,
            {"peak": peak[star]})  # fmt: skip
    n_gal = count - star.sum()
    params = {
        "i_e": sigma * brightness * np.minimum(0.3 * (1.0 + rng.pareto(1.2, n_gal)), 300.0),
        "r_e": np.minimum(np.exp(rng.normal(1.0, 0.6, n_gal)), 25.0),
        "n": rng.uniform(0.6, 4.0, n_gal),
        "q": rng.uniform(0.3, 1.0, n_gal),
        "angle": rng.uniform(0.0, np.pi, n_gal),
    }
    radius = np.minimum(_sersic_radius(params["i_e"] / sigma, params["r_e"], params["n"]),
                        8.0 * params["r_e"])  # fmt: skip
    _render(image, cy[~star], cx[~star], radius, sersic_profile, params)


def _populate(image, rng, sigma, fraction, brightness=1.0) -> None:
    """Add sources in batches until ``fraction`` of the pixels exceed ``sigma``."""
    covered = np.mean(image > sigma)
    while covered < fraction:
        batch = max(1, int(image.size * (fraction - covered) / 100))
        _field(image, rng, sigma, batch, brightness)
        covered = np.mean(image > sigma)


def sparse_field(shape, sigma, rng, *, fraction=0.03, brightness=1.0) -> np.ndarray:
    """A sparse field: stars and galaxies over ``fraction`` of the pixels (above 1 sigma).

    ``brightness`` scales every source's flux (brighter sources cover the
    same fraction with fewer of them).
    """
    image = np.zeros(shape)
    _populate(image, rng, sigma, fraction, brightness)
    return image


def crowded_field(shape, sigma, rng, *, fraction=0.5, brightness=2.0) -> np.ndarray:
    """A crowded field: tens of thousands of sources, ``fraction`` of the pixels above 1 sigma."""
    return sparse_field(shape, sigma, rng, fraction=fraction, brightness=brightness)


def sky_gradient(shape, sigma, rng, *, rise=20.0, fraction=0.03, direction="x") -> np.ndarray:
    """A sparse field under a sky that rises by ``rise`` sigma along the rows (or columns).

    Stray light or a zodiacal gradient: along the rows (``direction="x"``),
    the lines of a rows readout (NIRCam), where a background can be told from
    the stripes by its change along the lines. ``direction="y"``: from the
    first row to the last, across the lines of a rows readout, where it is a
    function of the line, as a stripe is, and only its size against the
    stripes' spectrum tells it apart (the ``"sky_gradient_across"`` scene).
    ``fraction``: the sparse field's, as :func:`sparse_field`.
    """
    if direction not in ("x", "y"):
        raise ValueError(f"direction must be 'x' or 'y', got {direction!r}.")
    along = 1 if direction == "x" else 0
    ramp = rise * sigma * np.arange(shape[along]) / max(shape[along] - 1, 1)
    ramp = ramp[None, :] if direction == "x" else ramp[:, None]
    return sparse_field(shape, sigma, rng, fraction=fraction) + ramp


def large_galaxy(shape, sigma, rng, *, r_e=None, n=4.0, i_e=20.0) -> np.ndarray:
    """One Sérsic galaxy spanning hundreds of lines, faint wings over most of the frame.

    ``r_e`` defaults to 6% of the frame's smaller side; ``i_e`` is in sigma.
    A sparse field lies around it.
    """
    ny, nx = shape
    r_e = 0.06 * min(shape) if r_e is None else r_e
    cy, cx = ny * rng.uniform(0.4, 0.6), nx * rng.uniform(0.4, 0.6)
    dy, dx = np.arange(ny)[:, None] - cy, np.arange(nx)[None, :] - cx
    image = sersic_profile(dy, dx, i_e=i_e * sigma, r_e=r_e, n=n, q=0.7, angle=rng.uniform(0, 3))
    _populate(image, rng, sigma, np.mean(image > sigma) + 0.02)
    return image


def _spectrum(nx, rng, start, stop) -> np.ndarray:
    """A smooth continuum between ``start`` and ``stop`` (fractions of nx), with lines."""
    x = np.arange(nx) / nx
    edge = 0.01
    window = 0.5 * (np.tanh((x - start) / edge) - np.tanh((x - stop) / edge))
    continuum = 1.0 - 0.5 * ((x - 0.5 * (start + stop)) / (stop - start)) ** 2
    for centre in rng.uniform(start, stop, 6):
        continuum *= 1.0 - rng.uniform(0.1, 0.5) * np.exp(-0.5 * ((x - centre) / 0.002) ** 2)
    return window * continuum


def grism_trace(shape, sigma, rng, *, centre=0.25, peak=3000.0, wing=0.03) -> np.ndarray:
    """A bright spectrum dispersed along the lines (rows), with wings.

    The trace runs along x over most of the line, at ``centre`` (fraction
    of ny), as in a NIRCam grism time series (256x2048 subarray); its
    cross-dispersion profile is a narrow core plus Lorentzian wings
    (``wing`` of the peak) that stay above the noise for tens of rows.
    """
    ny, nx = shape
    flux = _spectrum(nx, rng, 0.05, 0.8) * peak * sigma
    yc = ny * centre + np.linspace(-1.0, 1.0, nx)
    dy = np.arange(ny)[:, None] - yc[None, :]
    profile = np.exp(-0.5 * (dy / 1.0) ** 2) + wing / (1.0 + (dy / 4.0) ** 2)
    image = flux[None, :] * profile
    _field(image, rng, sigma, max(1, image.size // 20000))
    return image


def curved_trace(shape, sigma, rng, *, peak=500.0, half_width=11.0) -> np.ndarray:
    """Two curved spectral orders crossing the lines (for column readout, NIRISS SOSS-like).

    Dispersion along x, so with column readout every line (column) crosses
    the traces over a few tens of pixels; order 1 bends over about half the
    subarray height, order 2 is fainter and ends early.
    """
    ny, nx = shape
    x = np.arange(nx) / nx
    y = np.arange(ny)[:, None]
    image = np.zeros(shape)
    orders = ((0.25, 0.45, 0.0, 1.0, 1.0), (0.45, 0.5, 0.0, 0.6, 0.3))
    for offset, bend, start, stop, scale in orders:
        yc = ny * (offset + bend * (1.0 - x) ** 2)
        flux = _spectrum(nx, rng, start + 0.02, stop - 0.02) * peak * scale * sigma
        dy = np.abs(y - yc[None, :])
        core = 0.5 * (1.0 - np.tanh((dy - half_width) / 1.5))
        image += flux[None, :] * (core + 0.02 / (1.0 + (dy / 8.0) ** 2))
    _field(image, rng, sigma, max(1, image.size // 20000))
    return image


def sky_gradient_across(shape, sigma, rng, **options) -> np.ndarray:
    """:func:`sky_gradient` rising across the lines of a rows readout (``direction="y"``)."""
    return sky_gradient(shape, sigma, rng, direction="y", **options)


def nebula(shape, sigma, rng, *, scale=60.0, level=3.0, contrast=1.2) -> np.ndarray:
    """Emission over the whole frame, structured on every scale above ``scale`` pixels.

    A log-normal random field (a Gaussian field smoothed with a Gaussian of
    ``scale`` pixels, ``level * sigma * exp(contrast * field)``): most pixels
    lie from one to tens of sigma above the sky, and no part of the frame is
    empty sky (a star-forming region, an H II region). A sparse field lies on it.
    """
    ny, nx = shape
    k2 = np.fft.fftfreq(ny)[:, None] ** 2 + np.fft.rfftfreq(nx)[None, :] ** 2
    smoothing = np.exp(-2.0 * (np.pi * scale) ** 2 * k2)
    field = np.fft.irfft2(np.fft.rfft2(rng.normal(size=shape)) * smoothing, s=shape)
    field = (field - field.mean()) / field.std()
    return level * sigma * np.exp(contrast * field) + _field_around(shape, sigma, rng)


def edge_on_disk(shape, sigma, rng, *, r_e=None, q=0.06, i_e=10.0) -> np.ndarray:
    """A thin exponential disk seen edge-on, lying along the rows through the middle.

    ``r_e`` (along the rows) defaults to 12% of the frame's width; its light
    fills hundreds of pixels of each of a few tens of rows, as a stripe of
    those rows would. ``i_e`` in sigma. A sparse field lies around it.
    """
    ny, nx = shape
    r_e = 0.12 * nx if r_e is None else r_e
    cy, cx = ny * rng.uniform(0.45, 0.55), nx * rng.uniform(0.45, 0.55)
    dy, dx = np.arange(ny)[:, None] - cy, np.arange(nx)[None, :] - cx
    image = sersic_profile(dy, dx, i_e=i_e * sigma, r_e=r_e, n=1.0, q=q)
    return image + _field_around(shape, sigma, rng)


def galaxy_cluster(shape, sigma, rng, *, count=6, i_e=5.0) -> np.ndarray:
    """``count`` large elliptical galaxies (n=4, r_e 1.5-5.5% of the frame) and their wings.

    Their halos overlap over much of the frame; ``i_e`` in sigma. A sparse
    field lies around them.
    """
    ny, nx = shape
    side = min(shape)
    image = np.zeros(shape)
    y, x = np.arange(ny)[:, None], np.arange(nx)[None, :]
    for _ in range(count):
        cy, cx = ny * rng.uniform(0.1, 0.9), nx * rng.uniform(0.1, 0.9)
        image += sersic_profile(
            y - cy, x - cx, i_e=i_e * sigma, r_e=side * rng.uniform(0.015, 0.055), n=4.0,
            q=rng.uniform(0.5, 1.0), angle=rng.uniform(0.0, np.pi),
        )  # fmt: skip
    return image + _field_around(shape, sigma, rng)


def bright_star(shape, sigma, rng, *, peak=1e6, spike=0.02) -> np.ndarray:
    """A very bright star: a wide PSF halo and six diffraction spikes, two along the rows.

    The halo is a Moffat profile (FWHM 3 pixels, beta 1.5: it falls as r^-3)
    of ``peak`` sigma; the spikes (60 degrees apart, as a hexagonal
    primary's, one pair along the rows and so along the lines of a rows
    readout) start at ``spike`` of the peak and fall as r^-1.5 over a
    third of the frame. A sparse field lies around it.
    """
    ny, nx = shape
    cy, cx = ny * rng.uniform(0.35, 0.65), nx * rng.uniform(0.35, 0.65)
    dy, dx = np.arange(ny)[:, None] - cy, np.arange(nx)[None, :] - cx
    image = _moffat(dy, dx, peak=peak * sigma, fwhm=3.0, beta=1.5)
    reach = min(shape) / 3.0
    for angle in np.deg2rad([0.0, 60.0, 120.0]):
        along = dx * np.cos(angle) + dy * np.sin(angle)
        across = dy * np.cos(angle) - dx * np.sin(angle)
        ray = spike * peak * sigma * (1.0 + np.abs(along) / 3.0) ** -1.5
        image += np.where(np.abs(along) < reach, ray * np.exp(-0.5 * (across / 1.2) ** 2), 0.0)
    return image + _field_around(shape, sigma, rng)


def _field_around(shape, sigma, rng) -> np.ndarray:
    """The sparse field that lies around (or on) a scene's main source: 2% of the pixels.

    Drawn on its own canvas, so a scene that already covers nearly every
    pixel (a nebula, a small frame under a bright star's halo) still gets it.
    """
    return sparse_field(shape, sigma, rng, fraction=0.02)


#: name -> (function, default shape, default axis, default n_outputs)
SCENES = {
    "empty": (lambda shape, sigma, rng: np.zeros(shape), (2048, 2048), "rows", 4),
    "sparse": (sparse_field, (2048, 2048), "rows", 4),
    "crowded": (crowded_field, (2048, 2048), "rows", 4),
    "galaxy": (large_galaxy, (2048, 2048), "rows", 4),
    "sky_gradient": (sky_gradient, (2048, 2048), "rows", 4),
    "sky_gradient_across": (sky_gradient_across, (2048, 2048), "rows", 4),
    "grism_trace": (grism_trace, (256, 2048), "rows", 4),
    "curved_trace": (curved_trace, (256, 2048), "columns", 1),
    "nebula": (nebula, (2048, 2048), "rows", 4),
    "edge_on_disk": (edge_on_disk, (2048, 2048), "rows", 4),
    "galaxy_cluster": (galaxy_cluster, (2048, 2048), "rows", 4),
    "bright_star": (bright_star, (2048, 2048), "rows", 4),
}


def make_scene(
    name: str = "sparse",
    shape: tuple[int, int] | None = None,
    *,
    sigma: float = 0.08,
    sky: float = 0.2,
    seed: int | np.random.Generator = 0,
    **options,
) -> Scene:
    """Build one of the :data:`SCENES`.

    Parameters
    ----------
    name : str
        ``"empty"``, ``"sparse"``, ``"crowded"``, ``"galaxy"``,
        ``"sky_gradient"``, ``"sky_gradient_across"``, ``"grism_trace"``,
        ``"curved_trace"``, ``"nebula"``, ``"edge_on_disk"``,
        ``"galaxy_cluster"`` or ``"bright_star"``.
    shape : tuple of int, optional
        ``(ny, nx)``; default the scene's own (2048x2048, 256x2048 for traces).
    sigma : float
        White noise of a sky pixel (DN/s); brightness scales with it.
    sky : float
        Flat sky level (DN/s).
    seed : int or numpy.random.Generator
        Seed; equal seeds give equal scenes.
    **options
        Passed to the scene function (e.g. ``fraction`` for fields,
        ``r_e``/``n``/``i_e`` for the galaxy, ``rise`` for the sky gradient,
        ``centre``/``peak`` for traces).

    Returns
    -------
    Scene
    """
    if name not in SCENES:
        raise ValueError(f"unknown scene {name!r}; known: {', '.join(SCENES)}.")
    function, default_shape, _, _ = SCENES[name]
    rng = np.random.default_rng(seed)
    sources = function(tuple(shape or default_shape), sigma, rng, **options)
    return Scene(name, np.ascontiguousarray(sources, dtype=np.float64), float(sky), float(sigma))
