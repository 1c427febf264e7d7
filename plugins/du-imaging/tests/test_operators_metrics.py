"""The imaging operators against float64 identities and independent implementations (SciPy's wrapped convolution,
NumPy's FFT), the TV prox against scikit-image's Chambolle denoiser, and PSNR / SSIM against skimage.metrics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.restoration import denoise_tv_chambolle

from du_framework import parse_options
from du_imaging import (Blur, ImageRestoration, Inpaint, SubsampledFourier, cartesian_mask, gaussian_kernel,
                        gradient, gradient_adjoint, motion_kernel, psnr, random_mask, ssim, total_variation, tv_prox)

SIDE = 16


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def operators():
    """(name, operator class, its data in float64, observation shape) for every operator and kernel kind."""
    cases = []
    for name, kernel in (("gaussian", gaussian_kernel(7, 1.3)), ("motion", motion_kernel(9, 6.0, 30.0)),
                         ("asymmetric", np.random.default_rng(3).uniform(size=(5, 5)))):
        cases.append((f"blur-{name}", Blur, Blur(kernel, SIDE).spectrum, (SIDE, SIDE)))
    cases.append(("inpaint", Inpaint, random_mask(SIDE, 0.4, 1), (SIDE, SIDE)))
    cases.append(("mri", SubsampledFourier, cartesian_mask(SIDE, 3.0, 0.1, 2), (2, SIDE, SIDE)))
    return cases


@pytest.mark.parametrize("name, op, data, shape", operators(), ids=[c[0] for c in operators()])
def test_adjoint_identity_in_float64(x64, name, op, data, shape):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((3, SIDE, SIDE)), rng.standard_normal((3, *shape))
    ax, aty = op.forward(jnp.asarray(data), jnp.asarray(x)), op.adjoint(jnp.asarray(data), jnp.asarray(y))
    assert ax.dtype == jnp.float64 and ax.shape == (3, *shape) and aty.shape == x.shape
    np.testing.assert_allclose(np.sum(np.asarray(ax) * y), np.sum(x * np.asarray(aty)), rtol=1e-12)


@pytest.mark.parametrize("name, op, data, shape", operators(), ids=[c[0] for c in operators()])
def test_normal_solve_inverts_at_a_plus_rho(x64, name, op, data, shape):
    rng = np.random.default_rng(1)
    r, rho = rng.standard_normal((2, SIDE, SIDE)), 0.07
    data = jnp.asarray(data)
    x = op.normal_solve(data, jnp.asarray(r), rho)
    back = op.adjoint(data, op.forward(data, x)) + rho * x
    np.testing.assert_allclose(np.asarray(back), r, atol=1e-10)


def test_blur_is_scipys_wrapped_convolution(x64):
    kernel = np.random.default_rng(4).uniform(size=(5, 5))
    image = np.random.default_rng(5).uniform(size=(SIDE, SIDE))
    ours = Blur.forward(jnp.asarray(Blur(kernel, SIDE).spectrum), jnp.asarray(image))
    np.testing.assert_allclose(np.asarray(ours), scipy.ndimage.convolve(image, kernel, mode="wrap"), atol=1e-12)


def test_mri_is_the_masked_unitary_dft_in_real_form(x64):
    mask = cartesian_mask(SIDE, 4.0, 0.1, 0)
    image = np.random.default_rng(6).uniform(size=(SIDE, SIDE))
    k = mask * np.fft.fft2(image) / SIDE
    ours = np.asarray(SubsampledFourier.forward(jnp.asarray(mask), jnp.asarray(image)))
    np.testing.assert_allclose(ours[0], k.real, atol=1e-12)
    np.testing.assert_allclose(ours[1], k.imag, atol=1e-12)
    assert mask.sum(axis=1).min() in (0, SIDE) and mask[:, 0].sum() == round(SIDE / 4) and mask[0, 0] == 1


def test_kernels_are_normalised_and_shaped():
    g = gaussian_kernel(9, 1.6)
    assert g.shape == (9, 9) and abs(g.sum() - 1) < 1e-12 and g[4, 4] == g.max() and np.allclose(g, g.T)
    horizontal = motion_kernel(9, 7.0, 0.0)
    assert abs(horizontal.sum() - 1) < 1e-12 and np.count_nonzero(horizontal.sum(axis=1)) == 1
    assert np.count_nonzero(horizontal[4]) == 7
    with pytest.raises(ValueError, match="larger than the image"):
        Blur(gaussian_kernel(9, 1.0), 8)


def test_problem_operator_matches_the_dense_matrix_and_its_transpose():
    for operator in ("blur", "inpaint", "mri"):
        problem = ImageRestoration.from_options(parse_options(ImageRestoration.Options,
                                                              {"operator": operator, "size": 8, "kernel_size": 5}))
        a = np.asarray(problem.operator(), np.float64)
        v = np.random.default_rng(7).standard_normal((2, a.shape[0])).astype(np.float32)
        np.testing.assert_allclose(np.asarray(problem.adjoint(None, jnp.asarray(v))), v @ a, atol=1e-5)
        assert problem.lipschitz_bound() == pytest.approx(np.linalg.norm(a, 2) ** 2, rel=1e-4)


def test_tv_gradient_adjoint_and_prox_against_skimage(x64):
    rng = np.random.default_rng(8)
    x, q = rng.standard_normal((2, 9, 9)), rng.standard_normal((2, 2, 9, 9))
    np.testing.assert_allclose(np.sum(np.asarray(gradient(jnp.asarray(x))) * q),
                               np.sum(x * np.asarray(gradient_adjoint(jnp.asarray(q)))), rtol=1e-12)
    z = rng.uniform(size=(1, 16, 16))
    ours = np.asarray(tv_prox(jnp.asarray(z), 0.1, 1000))[0]
    theirs = denoise_tv_chambolle(z[0], weight=0.1, eps=1e-12, max_num_iter=20000)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)

    def objective(x):
        return 0.5 * np.sum((x - z[0]) ** 2) + 0.1 * float(total_variation(jnp.asarray(x)))

    assert objective(ours) == pytest.approx(objective(theirs), rel=1e-7)
    tv = float(total_variation(jnp.asarray(x[0])))
    dh, dv = np.diff(x[0], axis=1, append=x[0][:, -1:]), np.diff(x[0], axis=0, append=x[0][-1:])
    assert tv == pytest.approx(np.sum(np.sqrt(dh ** 2 + dv ** 2)), rel=1e-12)


def test_psnr_and_ssim_match_skimage_metrics():
    from skimage import data
    from skimage.transform import resize

    target = resize(data.camera() / 255.0, (48, 48), anti_aliasing=True)
    rng = np.random.default_rng(9)
    estimates = [np.clip(target + s * rng.standard_normal(target.shape), 0, 1) for s in (0.02, 0.1)]
    estimates.append(scipy.ndimage.gaussian_filter(target, 1.5))
    instance = {"target": jnp.asarray(np.stack([target] * 3).reshape(3, -1), jnp.float32)}
    estimate = jnp.asarray(np.stack(estimates).reshape(3, -1), jnp.float32)
    ours_psnr, ours_ssim = np.asarray(psnr(estimate, instance)), np.asarray(ssim(estimate, instance))
    for i, image in enumerate(estimates):
        assert ours_psnr[i] == pytest.approx(peak_signal_noise_ratio(target, image, data_range=1.0), abs=1e-3)
        theirs = structural_similarity(target, image, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False)
        assert ours_ssim[i] == pytest.approx(theirs, abs=2e-4)
