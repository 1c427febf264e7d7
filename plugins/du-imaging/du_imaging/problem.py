"""The ``imaging`` problem: restore a grey-scale image patch ``x`` from ``y = A x + w``.

``A`` is a blur, an inpainting mask or subsampled-Fourier MRI (:mod:`du_imaging.operators`), ``w`` white Gaussian
noise of standard deviation ``noise`` on the ``[0, 1]`` intensity scale. Training patches are random crops (with
random horizontal and vertical flips) of the training images; evaluation (:meth:`ImageRestoration.held_out`)
draws its patches from held-out images only.
"""

from __future__ import annotations

import abc
import copy
import dataclasses
import functools
from pathlib import Path
from typing import Literal

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np

from du_framework import LinearObservation, Metric, Problem, ProblemDataError, option

from .images import HELD_OUT_IMAGES, TRAINING_IMAGES, ImageBank, bundled_images, folder_images, read_png
from .operators import Blur, Inpaint, _lift, SubsampledFourier, cartesian_mask, gaussian_kernel, motion_kernel, random_mask

__all__ = ["ImageRestoration", "RestorationOperator", "PSNR", "SSIM", "PIXEL_MSE", "psnr", "ssim", "pixel_mse"]


class RestorationOperator(abc.ABC):
    """Capability: ``y = A x + w`` where ``x`` is a square grey-scale image flattened row by row, and
    ``A^T A + rho I`` can be inverted exactly and cheaply (``A`` diagonal in the DFT or pixel basis).

    Contract: :meth:`normal_solve` is traceable, linear in ``r`` and exact; :attr:`image_side` is static.
    """

    @property
    @abc.abstractmethod
    def image_side(self) -> int:
        """The side ``s`` of the square images: ``dim == s * s``."""

    @abc.abstractmethod
    def normal_solve(self, instance, r: jax.Array, rho: jax.Array) -> jax.Array:
        """``(A^T A + rho I)^{-1} r`` per instance: ``(batch, dim) -> (batch, dim)``, for ``rho > 0`` (a scalar)."""


def _images(estimate, instance):
    side = int(round(estimate.shape[-1] ** 0.5))
    return estimate.reshape(-1, side, side), instance["target"].reshape(-1, side, side)


def psnr(estimate, instance):
    """Peak signal-to-noise ratio per image, ``10 log10(1 / mean((x - target)^2))`` in dB (data range 1)."""
    squared = jnp.mean((estimate - instance["target"]) ** 2, axis=-1)
    return 10 * jnp.log10(1.0 / jnp.maximum(squared, jnp.finfo(squared.dtype).tiny))


def ssim(estimate, instance):
    """Structural similarity per image (Wang et al. 2004; dm-pix: 11 x 11 Gaussian window of sigma 1.5,
    ``k1 = 0.01``, ``k2 = 0.03``, data range 1)."""
    x, target = _images(estimate, instance)
    return dm_pix.ssim(target[..., None], x[..., None], max_val=1.0)


def pixel_mse(estimate, instance):
    """Mean squared error per pixel, per image."""
    return jnp.mean((estimate - instance["target"]) ** 2, axis=-1)


PSNR = Metric("psnr", psnr, label="PSNR (dB)", lower_is_better=False, format=".2f")
SSIM = Metric("ssim", ssim, label="SSIM", lower_is_better=False, format=".4f")
PIXEL_MSE = Metric("mse", pixel_mse, label="MSE per pixel", format=".3e", log_axis=True)


@functools.lru_cache(maxsize=4)
def _bundled(names: tuple[str, ...]) -> ImageBank:
    return bundled_images(names)


def _read_mask(path: str, side: int) -> np.ndarray:
    image = read_png(Path(path).expanduser())
    if image.shape != (side, side):
        raise ProblemDataError(f"mask file {path!r} is {image.shape[1]} x {image.shape[0]} pixels; the images are "
                               f"{side} x {side} (problem.size), so the mask must be too")
    return (image > 0.5).astype(np.float64)


class ImageRestoration(Problem, LinearObservation, RestorationOperator):
    """Restore a grey-scale ``size x size`` patch from a blurred, masked or k-space-subsampled noisy observation.

    The target is the patch flattened row by row (``dim = size^2``, intensities in ``[0, 1]``); the observation
    ``y`` is ``A x + w``, of the image's size (blur, inpainting) or twice it (MRI: ``[Re; Im]`` of the sampled
    k-space, zero where not sampled). The noise is white Gaussian of standard deviation ``noise`` on every
    observed entry (for MRI, on each real component of the unitary DFT, i.e. the same level per pixel).
    Metrics: PSNR (primary; the mean over images of each image's PSNR), SSIM and the MSE per pixel.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        operator: Literal["blur", "inpaint", "mri"] = option("blur", help="the degradation: blur, inpaint or mri")
        images: str = option("bundled", help="\"bundled\" (scikit-image's images) or a folder of PNG files, the "
                                             "last quarter (by name) held out")
        size: int = option(64, ge=8, le=512, help="side of the square patches (pixels)")
        noise: float = option(0.01, ge=0, le=1, help="noise standard deviation on [0, 1] intensities")
        kernel: Literal["gaussian", "motion"] = option("gaussian", help="blur kernel shape")
        kernel_size: int = option(9, ge=1, help="side of the blur kernel (pixels, at most size)")
        blur_sigma: float = option(1.6, gt=0, help="standard deviation of the Gaussian kernel (pixels)")
        motion_length: float = option(7.0, gt=0, help="length of the motion blur (pixels, at most kernel_size)")
        motion_angle: float = option(30.0, help="direction of the motion blur (degrees from the horizontal)")
        missing: float = option(0.5, ge=0, lt=1, help="inpainting: share of missing pixels")
        acceleration: float = option(4.0, ge=1, help="mri: sampled share of k-space rows is 1 / acceleration")
        centre_fraction: float = option(0.08, gt=0, le=1, help="mri: share of rows around zero frequency kept")
        mask: str = option("", help="inpaint or mri: a PNG mask file (size x size, white = observed) instead "
                                    "of a random one")
        operator_seed: int = option(0, ge=0, help="seed of the random inpainting or MRI mask")
        augment: bool = option(True, help="random horizontal and vertical flips of training patches")

        def validate(self):
            if self.kernel_size > self.size:
                raise ValueError(f"kernel_size {self.kernel_size} is larger than the image (size {self.size}); "
                                 f"the blur kernel must fit in the image: kernel_size <= size")
            if self.kernel == "motion" and self.motion_length > self.kernel_size:
                raise ValueError(f"motion_length {self.motion_length} does not fit in a kernel of side "
                                 f"{self.kernel_size}: motion_length <= kernel_size")
            if self.mask and self.operator == "blur":
                raise ValueError("mask applies to operator = \"inpaint\" or \"mri\", not \"blur\"")

    name = "imaging"
    description = "grey-scale image restoration y = A x + w: blur, inpainting or subsampled-Fourier MRI"
    metrics = (PSNR, SSIM, PIXEL_MSE)

    def __init__(self, options, *, train: ImageBank, held_out: ImageBank, operator_data: np.ndarray):
        self.options = options
        self.side = options.size
        self.kind = options.operator
        self.noise = float(options.noise)
        self.augment = bool(options.augment)
        self.split = "train"
        self.image_names = (train.names, held_out.names)
        self.train_pixels = jax.device_put(train.pixels)
        self.train_shapes = jax.device_put(train.shapes)
        self.held_pixels = jax.device_put(held_out.pixels)
        self.held_shapes = jax.device_put(held_out.shapes)
        self.operator_data = jax.device_put(operator_data.astype(np.float32))
        self.L = self._lipschitz(operator_data)

    @classmethod
    def from_options(cls, options):
        if options.images == "bundled":
            train, held = _bundled(TRAINING_IMAGES), _bundled(HELD_OUT_IMAGES)
        else:
            train, held = folder_images(options.images, min_side=options.size)
        return cls(options, train=train, held_out=held, operator_data=cls.operator_array(options))

    @staticmethod
    def operator_array(options) -> np.ndarray:
        """The operator's data (float64 on the host): ``[Re; Im]`` of the kernel's DFT for a blur, else the mask.

        Raises:
            ProblemDataError: a mask file is unreadable or not ``size x size``.
        """
        side = options.size
        if options.operator == "blur":
            kernel = (gaussian_kernel(options.kernel_size, options.blur_sigma) if options.kernel == "gaussian"
                      else motion_kernel(options.kernel_size, options.motion_length, options.motion_angle))
            spectrum = Blur(kernel, side).spectrum
            return np.stack([spectrum.real, spectrum.imag])
        if options.mask:
            return _read_mask(options.mask, side)
        if options.operator == "inpaint":
            return random_mask(side, options.missing, options.operator_seed)
        return cartesian_mask(side, options.acceleration, options.centre_fraction, options.operator_seed)

    def _lipschitz(self, data: np.ndarray) -> float:
        if self.kind == "blur":
            return float(np.max(data[0] ** 2 + data[1] ** 2))
        return float(np.max(data, initial=0.0)) or 1.0

    @property
    def dim(self):
        return self.side * self.side

    @property
    def image_side(self):
        return self.side

    def figures(self, solvers):
        from .figure import reconstructions_figure

        return {"reconstructions": reconstructions_figure(self, solvers)}

    def held_out(self):
        held = copy.copy(self)
        object.__setattr__(held, "split", "held-out")
        return held

    def describe(self):
        o = self.options
        train, held = self.image_names
        facts = {**super().describe(), "operator": o.operator, "size": o.size, "noise": o.noise,
                 "images": f"{o.images}: {len(train)} training, held out {', '.join(held)}"}
        if o.operator == "blur":
            facts.update(kernel=o.kernel, kernel_size=o.kernel_size)
        return facts

    # -- sampling ---------------------------------------------------------------------------------------------

    def patches(self, key, batch_size, *, held_out: bool = False):
        """``batch_size`` random ``size x size`` crops, shape ``(batch, size, size)``: of the training images
        (randomly flipped when ``augment``) or of the held-out images (not flipped)."""
        pixels, shapes = (self.held_pixels, self.held_shapes) if held_out else (self.train_pixels, self.train_shapes)
        k_image, k_row, k_col, k_flip = jax.random.split(key, 4)
        index = jax.random.randint(k_image, (batch_size,), 0, pixels.shape[0])
        rows = jnp.floor(jax.random.uniform(k_row, (batch_size,)) * (shapes[index, 0] - self.side + 1))
        cols = jnp.floor(jax.random.uniform(k_col, (batch_size,)) * (shapes[index, 1] - self.side + 1))

        def crop(i, r, c):
            return jax.lax.dynamic_slice(pixels, (i, r, c), (1, self.side, self.side))[0]

        patches = jax.vmap(crop)(index, rows.astype(jnp.int32), cols.astype(jnp.int32))
        if self.augment and not held_out:
            flips = jax.random.bernoulli(k_flip, 0.5, (2, batch_size, 1, 1))
            patches = jnp.where(flips[0], jnp.flip(patches, -1), patches)
            patches = jnp.where(flips[1], jnp.flip(patches, -2), patches)
        return patches

    def sample(self, key, batch_size):
        patch_key, noise_key = jax.random.split(key)
        x = self.patches(patch_key, batch_size, held_out=self.split == "held-out")
        clean = self._forward(x)
        noise = self.noise * jax.random.normal(noise_key, clean.shape, clean.dtype)
        if self.kind != "blur":
            noise = _lift(self._mask(), noise) * noise
        return {"y": clean.reshape(batch_size, -1) + noise.reshape(batch_size, -1),
                "target": x.reshape(batch_size, -1)}

    # -- the operator, on images ------------------------------------------------------------------------------

    def _spectrum(self):
        data = self.operator_data
        return data[0] + 1j * data[1]

    def _mask(self):
        return self.operator_data

    def _operator(self):
        return {"blur": Blur, "inpaint": Inpaint, "mri": SubsampledFourier}[self.kind]

    def _data(self):
        return self._spectrum() if self.kind == "blur" else self._mask()

    def _forward(self, x):
        return self._operator().forward(self._data(), x)

    def image(self, v: jax.Array) -> jax.Array:
        """Flattened images ``(batch, dim)`` as ``(batch, size, size)``."""
        return v.reshape(v.shape[:-1] + (self.side, self.side))

    def observation_image(self, y: jax.Array) -> jax.Array:
        """Flattened observations ``(batch, m)`` in the operator's shape (``(batch, 2, s, s)`` for MRI)."""
        shape = (2, self.side, self.side) if self.kind == "mri" else (self.side, self.side)
        return y.reshape(y.shape[:-1] + shape)

    def forward(self, instance, x):
        out = self._forward(self.image(x))
        return out.reshape(x.shape[:-1] + (-1,))

    def adjoint(self, instance, r):
        return self._operator().adjoint(self._data(), self.observation_image(r)).reshape(r.shape[:-1] + (-1,))

    def normal_solve(self, instance, r, rho):
        return self._operator().normal_solve(self._data(), self.image(r), rho).reshape(r.shape)

    def lipschitz_bound(self):
        return self.L

    def operator(self, instance=None):
        """``A`` as a dense ``(m, dim)`` matrix, built column by column from :meth:`forward`: ``dim^2`` entries,
        meant for small sizes and checks (the solvers of this plugin never form it)."""
        eye = jnp.eye(self.dim, dtype=jnp.float32)
        return self.forward(None, eye).T

    def loss(self, estimate, instance):
        return jnp.mean((estimate - instance["target"]) ** 2)
