"""Image restoration solvers: classical (Wiener, TV proximal gradient, TV-ADMM) and unrolled (DU-PGD, PGD-Net,
HQS-Net, ADMM-Net).

Every solver starts from ``x^(0) = A^T y`` (the blurred image again, the zero-filled image, the zero-filled MRI
reconstruction) and works on images ``(batch, s, s)`` through the problem's ``forward``, ``adjoint`` and
``normal_solve`` (:class:`~du_imaging.problem.RestorationOperator`), never a dense matrix.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from du_framework import LinearObservation, Positive, Tunable, UnfoldedSolver, learned, option, per_iteration

from .networks import denoiser_network
from .problem import RestorationOperator
from .tv import tv_prox

__all__ = ["RestorationContext", "SplittingState", "Wiener", "TVPGD", "TVADMM", "DUPGD", "PGDNet", "HQSNet",
           "ADMMNet"]


class RestorationContext(NamedTuple):
    """What every iteration reads: the observation ``y`` and ``A^T y`` (both flattened)."""

    y: jax.Array
    aty: jax.Array


class SplittingState(NamedTuple):
    """ADMM's iterate ``x``, split variable ``z`` and scaled dual ``u`` (flattened images); the estimate is ``z``."""

    x: jax.Array
    z: jax.Array
    u: jax.Array


class _Restoration(UnfoldedSolver):
    """Shared plumbing: the context, ``x^(0) = A^T y`` and a gradient step on ``1/2 ||A x - y||^2``."""

    requires = (LinearObservation, RestorationOperator)

    def prepare(self, problem, instance):
        y = problem.observation(instance)
        return RestorationContext(y, problem.adjoint(instance, y))

    def init_state(self, problem, context):
        return context.aty

    @staticmethod
    def gradient_step(problem, context, x, step):
        return x - step * (problem.adjoint(None, problem.forward(None, x)) - context.aty)

    @staticmethod
    def prox(problem, v, weight, iterations):
        return tv_prox(problem.image(v), weight, iterations).reshape(v.shape)


class Wiener(_Restoration):
    """``x = (A^T A + balance I)^{-1} A^T y`` in closed form: for a blur, the Wiener filter with a flat signal
    spectrum (``conj(K) Y / (|K|^2 + balance)`` in the DFT domain); every iteration returns the same image."""

    @dataclasses.dataclass(frozen=True)
    class Options:
        balance: float = option(1e-2, gt=0, tune=Tunable(1e-5, 1.0, log=True),
                                help="regularisation: noise-to-signal power ratio")

    name = "wiener"
    description = "Wiener filter / Tikhonov closed form (A^T A + balance I)^-1 A^T y, by FFT"

    def init_state(self, problem, context):
        return problem.normal_solve(None, context.aty, jnp.asarray(self.options.balance, context.aty.dtype))

    def step(self, problem, context, x, k):
        del problem, context, k
        return x

    def constants(self):
        return {"balance": np.array([self.options.balance])}


class TVPGD(_Restoration):
    """Proximal gradient on ``1/2 ||A x - y||^2 + lam TV(x)``: ``x <- prox_{eta lam TV}(x - eta A^T (A x - y))``,
    ``eta = step_scale / L``, the prox by ``inner`` dual iterations (:mod:`du_imaging.tv`)."""

    @dataclasses.dataclass(frozen=True)
    class Options:
        lam: float = option(0.01, ge=0, tune=Tunable(1e-4, 0.3, log=True), help="TV weight lambda")
        step_scale: float = option(1.0, gt=0, lt=2, tune=Tunable(0.5, 1.95), help="step eta = step_scale / L")
        inner: int = option(10, ge=1, le=500, help="dual iterations of each TV prox")

    name = "tv-pgd"
    description = "proximal gradient on TV-regularised least squares (TV prox by dual FGP iterations)"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        self.eta = options.step_scale / problem.lipschitz_bound()

    def step(self, problem, context, x, k):
        del k
        z = self.gradient_step(problem, context, x, self.eta)
        return self.prox(problem, z, self.eta * self.options.lam, self.options.inner)

    def constants(self):
        return {"eta": np.array([self.eta]), "lam": np.array([self.options.lam])}


def _admm_iteration(problem, context, state, rho, weight, inner):
    x = problem.normal_solve(None, context.aty + rho * (state.z - state.u), rho)
    z = _Restoration.prox(problem, x + state.u, weight, inner)
    return SplittingState(x, z, state.u + x - z)


class TVADMM(_Restoration):
    """ADMM on ``1/2 ||A x - y||^2 + lam TV(z)`` s.t. ``x = z``: ``x = (A^T A + rho I)^{-1}(A^T y + rho (z - u))``
    (exact, by FFT), ``z = prox_{(lam/rho) TV}(x + u)``, ``u <- u + x - z``; the estimate is ``z``."""

    @dataclasses.dataclass(frozen=True)
    class Options:
        lam: float = option(0.01, ge=0, tune=Tunable(1e-4, 0.3, log=True), help="TV weight lambda")
        rho: float = option(0.1, gt=0, tune=Tunable(1e-3, 10.0, log=True), help="ADMM penalty rho")
        inner: int = option(10, ge=1, le=500, help="dual iterations of each TV prox")

    name = "tv-admm"
    description = "ADMM on TV-regularised least squares, exact x-update by FFT"

    def init_state(self, problem, context):
        return SplittingState(context.aty, context.aty, jnp.zeros_like(context.aty))

    def step(self, problem, context, state, k):
        del k
        o = self.options
        return _admm_iteration(problem, context, state, o.rho, o.lam / o.rho, o.inner)

    def estimate(self, state):
        return state.z

    def constants(self):
        return {"lam": np.array([self.options.lam]), "rho": np.array([self.options.rho])}


class DUPGD(_Restoration):
    """TV proximal gradient with a learned step ``eta_t`` and threshold ``tau_t`` per iteration:
    ``x <- prox_{tau_t TV}(x - eta_t A^T (A x - y))``.

    Attributes:
        eta: steps, initialised at ``1 / L``.
        tau: TV prox weights, initialised at ``lam / L``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        lam: float = option(0.01, ge=0, help="initial TV weight: tau_t starts at lam / L")
        inner: int = option(10, ge=1, le=500, help="dual iterations of each TV prox")
        lr: float = option(0.02, gt=0, help="learning rate of eta_t")
        threshold_lr: float = option(0.02, gt=0, help="learning rate of tau_t")

    name = "du-pgd"
    description = "deep-unfolded TV proximal gradient: learned step eta_t and TV threshold tau_t"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        L = problem.lipschitz_bound()
        self.eta = learned(np.full(depth, 1 / L), constraint=Positive(), lr="lr", doc="step size eta_t")
        self.tau = learned(np.full(depth, max(options.lam, 1e-6) / L), constraint=Positive(), lr="threshold_lr",
                           doc="TV prox weight tau_t")

    def step(self, problem, context, x, k):
        z = self.gradient_step(problem, context, x, per_iteration(self.eta, k))
        return self.prox(problem, z, per_iteration(self.tau, k), self.options.inner)


@dataclasses.dataclass(frozen=True)
class _NetworkOptions:
    channels: int = option(32, ge=1, le=256, help="feature maps of the CNN denoiser")
    layers: int = option(4, ge=2, le=20, help="3 x 3 convolutions of the CNN denoiser")
    per_iteration: bool = option(False, help="one CNN per iteration instead of one shared by all")
    seed: int = option(0, ge=0, help="seed of the CNN's weights when built (a training run draws them from its own key)")
    lr: float = option(1e-3, gt=0, help="learning rate of the CNN's weights")


class PGDNet(_Restoration):
    """Unrolled proximal gradient whose proximal step is a learned residual CNN:
    ``x <- D_t(x - eta_t A^T (A x - y))``, ``D_t`` one network shared by every iteration (``per_iteration``
    gives each its own).

    Attributes:
        eta: steps, initialised at ``1 / L``.
        denoiser: the CNN, a :class:`du_framework.Network` of :class:`du_imaging.networks.Denoiser`.
    """

    @dataclasses.dataclass(frozen=True)
    class Options(_NetworkOptions):
        step_lr: float = option(0.01, gt=0, help="learning rate of eta_t")

    name = "pgd-net"
    description = "unrolled proximal gradient with a learned residual CNN as proximal step (weights tied by default)"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        self.eta = learned(np.full(depth, 1 / problem.lipschitz_bound()), constraint=Positive(), lr="step_lr",
                           doc="step size eta_t")
        self.denoiser = denoiser_network(depth if options.per_iteration else 1, options)

    def step(self, problem, context, x, k):
        z = self.gradient_step(problem, context, x, per_iteration(self.eta, k))
        return self.denoiser.at(k)(problem.image(z)).reshape(x.shape)


class HQSNet(_Restoration):
    """Unrolled half-quadratic splitting with a learned CNN denoiser: ``x = (A^T A + rho_t I)^{-1}(A^T y + rho_t z)``
    (exact, by FFT), then ``z <- D_t(x)``; learned penalty ``rho_t`` per iteration.

    Attributes:
        rho: penalties, initialised at ``rho``.
        denoiser: the CNN's weights.
    """

    @dataclasses.dataclass(frozen=True)
    class Options(_NetworkOptions):
        rho: float = option(0.1, gt=0, help="initial penalty rho_t")
        rho_lr: float = option(0.01, gt=0, help="learning rate of rho_t")

    name = "hqs-net"
    description = "unrolled half-quadratic splitting: exact data step by FFT, learned CNN denoiser, learned rho_t"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        self.rho = learned(np.full(depth, options.rho), constraint=Positive(), lr="rho_lr", doc="penalty rho_t")
        self.denoiser = denoiser_network(depth if options.per_iteration else 1, options)

    def step(self, problem, context, z, k):
        rho = per_iteration(self.rho, k)
        x = problem.normal_solve(None, context.aty + rho * z, rho)
        return self.denoiser.at(k)(problem.image(x)).reshape(z.shape)


class ADMMNet(_Restoration):
    """TV-ADMM with a learned penalty ``rho_t`` and TV weight ``lam_t`` per iteration (after ADMM-Net, Yang, Sun,
    Li and Xu, NeurIPS 2016, which also learns the transforms and the shrinkage; here only the scalars).

    Attributes:
        rho: penalties, initialised at ``rho``.
        lam: TV weights, initialised at ``lam``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        lam: float = option(0.01, gt=0, help="initial TV weight lam_t")
        rho: float = option(0.1, gt=0, help="initial penalty rho_t")
        inner: int = option(10, ge=1, le=500, help="dual iterations of each TV prox")
        lr: float = option(0.02, gt=0, help="learning rate of rho_t and lam_t")

    name = "admm-net"
    description = "unrolled TV-ADMM with learned penalty rho_t and TV weight lam_t per iteration"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        self.rho = learned(np.full(depth, options.rho), constraint=Positive(), lr="lr", doc="penalty rho_t")
        self.lam = learned(np.full(depth, options.lam), constraint=Positive(), lr="lr", doc="TV weight lam_t")

    def init_state(self, problem, context):
        return SplittingState(context.aty, context.aty, jnp.zeros_like(context.aty))

    def step(self, problem, context, state, k):
        rho = per_iteration(self.rho, k)
        return _admm_iteration(problem, context, state, rho, per_iteration(self.lam, k) / rho, self.options.inner)

    def estimate(self, state):
        return state.z
