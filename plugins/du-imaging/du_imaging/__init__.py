"""Image restoration ``y = A x + w``: blur, inpainting and subsampled-Fourier MRI."""

__version__ = "0.1.0"
