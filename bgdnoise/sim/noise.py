"""1/f time streams clocked into pixels, and what a ramp fit leaves of them.

Every stream runs through a whole integration (all its frames, overheads
included) at one sample per pixel clock. The rate's stripes are the
least-squares slope of the frames: a fixed weighted sum of the frames, so
each stream is first folded into one frame's worth of clocks with those
weights and then mapped to pixels once.
"""

from __future__ import annotations

import functools

import numpy as np

from .readout import NoiseModel, Readout

__all__ = ["pink_stream", "stripes_1f", "white_sigma"]


def _fast_length(n: int) -> int:
    """The smallest 5-smooth even number >= n (a fast FFT length)."""
    best = 2 * n
    p2 = 2
    while p2 < best:
        p3 = p2
        while p3 < best:
            p5 = p3
            while p5 < n:
                p5 *= 5
            best = min(best, p5)
            p3 *= 3
        p2 *= 2
    return best


@functools.lru_cache(maxsize=8)
def _amplitude(m: int, exponent: float, dtype: str) -> np.ndarray:
    """Fourier amplitude of a unit-variance ``f ** -exponent`` stream of ``m`` samples."""
    freqs = np.arange(m // 2 + 1, dtype=np.float64) / m
    amplitude = np.zeros_like(freqs)
    amplitude[1:-1] = freqs[1:-1] ** (-exponent / 2.0)
    # Real and imaginary parts of each coefficient have variance amplitude**2:
    # the inverse transform has variance 4 * sum(amplitude**2) / m**2.
    amplitude *= m / np.sqrt(4.0 * np.sum(amplitude**2))
    amplitude = amplitude.astype(dtype)
    amplitude.flags.writeable = False
    return amplitude


def pink_stream(
    n: int,
    rng: np.random.Generator,
    *,
    exponent: float = 1.0,
    dtype=np.float32,
) -> np.ndarray:
    """A Gaussian time stream whose power per frequency falls as ``1/f``.

    White noise shaped in Fourier space: power ``f ** -exponent`` from the
    lowest frequency of the (slightly padded) stream up to the Nyquist
    frequency, none at zero frequency. The stream is not periodic over its
    ``n`` samples when padding was needed, and nearly so otherwise.

    Parameters
    ----------
    n : int
        Samples.
    rng : numpy.random.Generator
        Source of randomness.
    exponent : float
        Spectral index: 1 for 1/f (pink), 0 for white.
    dtype : numpy dtype
        float32 (fast) or float64.

    Returns
    -------
    numpy.ndarray
        ``(n,)``, expected variance 1 (one realisation's variance scatters
        around it, as 1/f noise does).
    """
    m = _fast_length(int(n))
    amplitude = _amplitude(m, float(exponent), np.dtype(dtype).str)
    complex_type = np.complex64 if np.dtype(dtype) == np.float32 else np.complex128
    coefficients = rng.standard_normal((amplitude.size, 2), dtype=dtype).view(complex_type)[:, 0]
    coefficients *= amplitude
    return np.fft.irfft(coefficients, m)[:n].astype(dtype, copy=False)


def _folded(n_frames, clocks, weights, amplitude, exponent, rng) -> np.ndarray:
    """One stream through an integration, folded with the slope weights."""
    stream = pink_stream(n_frames * clocks, rng, exponent=exponent)
    frames = stream.reshape(n_frames, clocks)
    used = np.flatnonzero(weights)
    folded = (amplitude * weights[used]).astype(np.float32) @ frames[used]
    return folded.astype(np.float64)


def stripes_1f(
    shape: tuple[int, int],
    readout: Readout,
    noise: NoiseModel,
    rng: np.random.Generator,
) -> np.ndarray:
    """The 1/f stripes of one integration's rate, in DN/s.

    Per output ``k``, the pixel read at clock ``t`` of a frame gets
    ``common(t) + own_k(t) + (-1)**p acn_k(t)``, ``p`` being its index in
    the output's read order, from streams that run through all the frames
    of the integration; the rate is the least-squares slope over the
    frames; a constant offset per output and an even/odd offset per output
    are added to the rate.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the image in the DMS frame.
    readout : Readout
        Axes, outputs, timing and ramp.
    noise : NoiseModel
        Amplitudes.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` float64.
    """
    clock, position = readout.read_order(shape)
    width = clock.shape[1] // readout.n_outputs
    n_frames, clocks = readout.n_frames, readout.frame_clocks(shape)
    weights = readout.frame_weights(shape) / noise.gain

    def fold(amplitude):
        if amplitude == 0:
            return np.zeros(clocks)
        return _folded(n_frames, clocks, weights, amplitude, noise.pink_exponent, rng)

    image = fold(noise.common_pink)[clock]
    parity = np.where(position % 2 == 0, 1.0, -1.0)
    for k in range(readout.n_outputs):
        band = slice(k * width, (k + 1) * width)
        own, acn = fold(noise.output_pink), fold(noise.acn)
        offset = rng.normal(0.0, noise.output_offset) if noise.output_offset else 0.0
        odd_even = rng.normal(0.0, noise.odd_even_offset) if noise.odd_even_offset else 0.0
        band_clock = clock[:, band]
        image[:, band] += own[band_clock] + parity[band] * (acn[band_clock] + odd_even) + offset
    return image if readout.axis == "rows" else np.ascontiguousarray(image.T)


def white_sigma(flux: np.ndarray | float, readout: Readout, noise: NoiseModel, shape) -> np.ndarray:
    """Standard deviation of the white noise of a rate pixel, in DN/s.

    Read noise through the slope fit (``read_noise**2 * sum(w**2)``) plus,
    with ``noise.photon_noise``, the shot noise of the accumulated charge
    (``flux * w @ min(t_i, t_j) @ w``).

    Parameters
    ----------
    flux : numpy.ndarray or float
        Signal in DN/s (negative values count as 0).
    readout : Readout
        Ramp and timing.
    noise : NoiseModel
        Read noise, gain, photon noise.
    shape : tuple of int
        ``(ny, nx)`` of a frame (sets the frame time).

    Returns
    -------
    numpy.ndarray
        Same shape as ``flux``.
    """
    weights = readout.frame_weights(shape)
    times = np.arange(1, weights.size + 1) * readout.frame_time(shape)
    read = noise.read_noise**2 * np.sum(weights**2)
    shot = weights @ np.minimum.outer(times, times) @ weights if noise.photon_noise else 0.0
    electrons = np.clip(np.asarray(flux, dtype=np.float64), 0.0, None) * noise.gain
    return np.sqrt(read + shot * electrons) / noise.gain
