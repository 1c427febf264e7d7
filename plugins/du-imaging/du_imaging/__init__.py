"""Image restoration ``y = A x + w`` (blur, inpainting, subsampled-Fourier MRI) and its solvers: Wiener, TV
proximal gradient, TV-ADMM, and unrolled DU-PGD, PGD-Net, HQS-Net and ADMM-Net."""

__version__ = "0.1.0"

from .networks import Denoiser, denoiser_network, network_parameter_count
from .operators import (Blur, Inpaint, SubsampledFourier, cartesian_mask, centred_kernel_spectrum, gaussian_kernel,
                        motion_kernel, random_mask)
from .problem import PIXEL_MSE, PSNR, SSIM, ImageRestoration, RestorationOperator, pixel_mse, psnr, ssim
from .solvers import (ADMMNet, DUPGD, HQSNet, PGDNet, TVADMM, TVPGD, RestorationContext, SplittingState, Wiener)
from .tv import gradient, gradient_adjoint, total_variation, tv_prox

__all__ = ["ImageRestoration", "RestorationOperator", "PSNR", "SSIM", "PIXEL_MSE", "psnr", "ssim", "pixel_mse",
           "Blur", "Inpaint", "SubsampledFourier", "gaussian_kernel", "motion_kernel", "random_mask",
           "cartesian_mask", "centred_kernel_spectrum", "Wiener", "TVPGD", "TVADMM", "DUPGD", "PGDNet", "HQSNet",
           "ADMMNet", "RestorationContext", "SplittingState", "Denoiser", "denoiser_network",
           "network_parameter_count", "gradient", "gradient_adjoint", "total_variation", "tv_prox"]
