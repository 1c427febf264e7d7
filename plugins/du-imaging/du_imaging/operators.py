"""The observation operators of the imaging problem, each with its adjoint and its regularised normal solve.

Images are square, ``size x size``, grey-scale, intensities in ``[0, 1]``; an operator acts on a batch of
images shaped ``(batch, size, size)``. Every operator is linear, and each provides

* ``forward(x)``: ``A x``;
* ``adjoint(y)``: ``A^T y`` (the adjoint for the real inner product, ``<A x, y> = <x, A^T y>``);
* ``normal_solve(r, rho)``: ``(A^T A + rho I)^{-1} r`` for ``rho > 0``, exact, by FFT or elementwise: every
  operator here is diagonal in the 2-D DFT basis or in the pixel basis;
* ``lipschitz``: ``||A||_2^2`` (a host float): ``1 / lipschitz`` is a safe gradient step.

Blur (:class:`Blur`): a circular convolution with a ``k x k`` kernel (``k <= size``), applied by FFT. The
boundary is **periodic**: the image is treated as wrapping around, so the blur at the left edge mixes in pixels
of the right edge. This keeps ``A`` diagonal in the DFT basis (the fast path, and the exact Wiener filter); real
cameras do not wrap, so a model trained here sees a little less boundary artefact than on a photograph.

Inpainting (:class:`Inpaint`): ``A x = m * x`` for a binary mask ``m`` (1 = observed pixel). The observation
keeps the image's shape with zeros at the missing pixels.

MRI (:class:`SubsampledFourier`): ``A x = m * F x`` where ``F`` is the unitary 2-D DFT (``norm="ortho"``) and
``m`` a binary mask of sampled k-space locations. k-space is complex; the problem's vectors are real, so an
observation is stored as the real vector ``[Re(y); Im(y)]`` of twice the image's size. With that representation
``A`` maps ``R^n`` to ``R^{2n}`` and its adjoint is ``A^T [a; b] = Re(F^H (m * (a + i b)))``.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

__all__ = ["gaussian_kernel", "motion_kernel", "Blur", "Inpaint", "SubsampledFourier", "random_mask",
           "cartesian_mask", "centred_kernel_spectrum"]


def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """A normalised ``size x size`` Gaussian kernel of standard deviation ``sigma`` pixels (float64)."""
    if size < 1 or sigma <= 0:
        raise ValueError(f"a Gaussian kernel needs size >= 1 and sigma > 0, got size {size}, sigma {sigma}")
    offsets = np.arange(size) - (size - 1) / 2
    profile = np.exp(-offsets ** 2 / (2 * sigma ** 2))
    kernel = np.outer(profile, profile)
    return kernel / kernel.sum()


def motion_kernel(size: int, length: float, angle: float) -> np.ndarray:
    """A normalised ``size x size`` linear motion blur: a line of ``length`` pixels through the centre at
    ``angle`` degrees (counter-clockwise from the horizontal), drawn anti-aliased by sampling the segment finely
    and splatting each sample bilinearly (float64)."""
    if size < 1 or length <= 0:
        raise ValueError(f"a motion kernel needs size >= 1 and length > 0, got size {size}, length {length}")
    if length > size:
        raise ValueError(f"a motion kernel of length {length} does not fit a {size} x {size} kernel")
    kernel = np.zeros((size, size))
    centre = (size - 1) / 2
    theta = math.radians(angle)
    samples = max(8, int(8 * length))
    for t in np.linspace(-(length - 1) / 2, (length - 1) / 2, samples):
        row, col = centre - t * math.sin(theta), centre + t * math.cos(theta)
        r0, c0 = int(math.floor(row)), int(math.floor(col))
        fr, fc = row - r0, col - c0
        for dr, wr in ((0, 1 - fr), (1, fr)):
            for dc, wc in ((0, 1 - fc), (1, fc)):
                r, c = r0 + dr, c0 + dc
                if 0 <= r < size and 0 <= c < size:
                    kernel[r, c] += wr * wc
    return kernel / kernel.sum()


def centred_kernel_spectrum(kernel: np.ndarray, size: int) -> np.ndarray:
    """The 2-D DFT of ``kernel`` embedded in a ``size x size`` image with its centre at pixel ``(0, 0)``
    (complex128): multiplying an image's DFT by it is the circular convolution with the kernel, centred."""
    k = kernel.shape[0]
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        raise ValueError(f"a blur kernel must be square, got shape {kernel.shape}")
    if k > size:
        raise ValueError(f"the blur kernel ({k} x {k}) is larger than the image ({size} x {size})")
    padded = np.zeros((size, size))
    padded[:k, :k] = kernel
    padded = np.roll(padded, (-(k // 2), -(k // 2)), axis=(0, 1))
    return np.fft.fft2(padded)


def random_mask(size: int, missing: float, seed: int) -> np.ndarray:
    """A ``size x size`` inpainting mask (float, 1 = observed) with a share ``missing`` of pixels removed at
    random (exactly ``round(missing * size^2)`` of them), drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    mask = np.ones(size * size)
    mask[rng.permutation(size * size)[:round(missing * size * size)]] = 0.0
    return mask.reshape(size, size)


def cartesian_mask(size: int, acceleration: float, centre_fraction: float, seed: int) -> np.ndarray:
    """A Cartesian k-space sampling mask (float, 1 = sampled), in unshifted DFT order: whole rows (phase
    encodes) are sampled, the ``centre_fraction`` of rows around zero frequency always, and other rows at random
    until ``size / acceleration`` rows are sampled (the fastMRI convention), drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    total = max(1, round(size / acceleration))
    centre = min(total, max(1, round(size * centre_fraction)))
    frequencies = np.fft.fftfreq(size) * size  # row index -> signed frequency
    order = np.argsort(np.abs(frequencies), kind="stable")
    rows = set(order[:centre].tolist())
    others = [r for r in range(size) if r not in rows]
    rows.update(rng.permutation(others)[:total - centre].tolist())
    mask = np.zeros((size, size))
    mask[sorted(rows), :] = 1.0
    return mask


class Blur:
    """Circular convolution with a kernel, by FFT (periodic boundary; see the module's docs).

    Args:
        kernel: the ``k x k`` kernel (``k <= size``), host array.
        size: the image side.
    """

    def __init__(self, kernel: np.ndarray, size: int):
        spectrum = centred_kernel_spectrum(np.asarray(kernel, np.float64), size)
        self.spectrum = spectrum  # host complex128, for float64 checks
        self.lipschitz = float(np.max(np.abs(spectrum)) ** 2)
        self.observation_shape = (size, size)

    @staticmethod
    def forward(spectrum, x):
        return jnp.real(jnp.fft.ifft2(_lift(spectrum, x) * jnp.fft.fft2(x)))

    @staticmethod
    def adjoint(spectrum, y):
        return jnp.real(jnp.fft.ifft2(jnp.conj(_lift(spectrum, y)) * jnp.fft.fft2(y)))

    @staticmethod
    def normal_solve(spectrum, r, rho):
        return jnp.real(jnp.fft.ifft2(jnp.fft.fft2(r) / (jnp.abs(_lift(spectrum, r)) ** 2 + rho)))


class Inpaint:
    """``A x = mask * x``: pixels where the mask is 0 are missing."""

    lipschitz = 1.0

    @staticmethod
    def forward(mask, x):
        return _lift(mask, x) * x

    @staticmethod
    def adjoint(mask, y):
        return _lift(mask, y) * y

    @staticmethod
    def normal_solve(mask, r, rho):
        return r / (_lift(mask, r) + rho)


class SubsampledFourier:
    """``A x = mask * F x`` (unitary 2-D DFT), observations as ``[Re; Im]`` stacked on a leading axis of 2."""

    lipschitz = 1.0

    @staticmethod
    def forward(mask, x):
        k = _lift(mask, x) * jnp.fft.fft2(x, norm="ortho")
        return jnp.stack([jnp.real(k), jnp.imag(k)], axis=-3)

    @staticmethod
    def adjoint(mask, y):
        real = y[..., 0, :, :]
        k = _lift(mask, real) * jax_complex(real, y[..., 1, :, :])
        return jnp.real(jnp.fft.ifft2(k, norm="ortho"))

    @staticmethod
    def normal_solve(mask, r, rho):
        # A^T A = Re(F^H m F .) on real images; F^H m F is Hermitian-symmetric for a mask symmetric under
        # k -> -k, and in general Re(F^H m F x) = F^H m_s F x with m_s the mask's symmetrisation
        # (m(k) + m(-k)) / 2, diagonal in the DFT basis.
        symmetric = (mask + jnp.roll(jnp.flip(mask, axis=(-2, -1)), 1, axis=(-2, -1))) / 2
        return jnp.real(jnp.fft.ifft2(jnp.fft.fft2(r) / (_lift(symmetric, r) + rho)))


def _lift(data, images):
    """``data`` (an ``s x s`` array) with leading axes of one, to the rank of ``images`` (explicit broadcasting)."""
    return jnp.reshape(data, (1,) * (jnp.ndim(images) - jnp.ndim(data)) + jnp.shape(data))


def jax_complex(real, imag):
    """``real + i imag`` in the complex dtype matching ``real``'s precision."""
    dtype = jnp.complex128 if real.dtype == jnp.float64 else jnp.complex64
    return real.astype(dtype) + 1j * imag.astype(dtype)
