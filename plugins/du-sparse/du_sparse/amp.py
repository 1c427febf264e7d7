"""AMP and learned AMP (LAMP) for sparse recovery, and the check of the operator they rely on.

AMP's derivation and its state evolution assume an operator with i.i.d. entries of
variance ``1/m`` (unit columns on average). On an operator that is far from that
(ill-conditioned, correlated columns, entries with a nonzero mean) its error grows
without bound. :func:`iid_diagnosis` screens an operator for it on the host; AMP
refuses an operator that fails (``iid_check = "refuse"``, its default) or warns
(``"warn"``). A global scale of ``A`` is harmless: both solvers work in the units of
``A`` normalised to ``||A||_F^2 = n`` (see :class:`AMP`).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from du_framework import IncompatibleProblemError, Instance, Positive, Tunable, learned, option, per_iteration

from .solvers import _SparseSolver, soft_threshold

__all__ = ["iid_diagnosis", "AMPContext", "AMPState", "AMP", "LAMP"]

# Key of the instances an operator drawn per instance is checked on (two of them).
_CHECK_KEY = 0
_CHECKED_DRAWS = 2


def iid_diagnosis(matrix: np.ndarray) -> str | None:
    """Why ``matrix`` does not look like an i.i.d. Gaussian operator to AMP, or ``None`` when it does.

    The test, on the host in float64: normalised to ``||A||_F^2 = n`` (unit mean
    squared column norm, the scale AMP works in), the largest eigenvalue of
    ``A^T A`` must not exceed the Marchenko-Pastur edge ``(1 + sqrt(n/m))^2`` of an
    i.i.d. matrix of the same shape by more than ``5 % + 2 min(m, n)^(-2/3)`` (the
    second term covers the finite-size fluctuation of the edge). Ill-conditioning,
    correlated columns and entries with a nonzero mean all push that eigenvalue up;
    a matrix with orthogonal rows or a flatter spectrum (on which AMP still
    converges) passes. It is a screen, not a proof: see docs/algorithms/du-sparse.md
    for what it was calibrated on.

    Args:
        matrix: ``A``, shape ``(m, n)``.
    """
    matrix = np.asarray(matrix, np.float64)
    m, n = matrix.shape
    energy = float(np.sum(matrix**2)) / n
    if not (math.isfinite(energy) and energy > 0):
        return f"A ({m} x {n}) is zero or not finite (||A||_F^2 / n = {energy:.3g})"
    gram = matrix @ matrix.T if m <= n else matrix.T @ matrix
    top = float(np.linalg.eigvalsh(gram)[-1]) / energy
    edge = (1 + math.sqrt(n / m)) ** 2
    limit = 1.05 + 2 * min(m, n) ** (-2 / 3)
    if top > limit * edge:
        return (f"A ({m} x {n}), scaled to unit mean squared column norm, has largest squared singular value "
                f"{top:.4g}, {top / edge:.3f} times the edge (1 + sqrt(n/m))^2 = {edge:.4g} of an i.i.d. Gaussian "
                f"matrix of that shape (at most {limit:.3f} times accepted): a sign of ill-conditioning, correlated "
                f"columns or entries with a nonzero mean, on which AMP diverges")
    return None


def _operator_diagnosis(problem) -> str | None:
    """:func:`iid_diagnosis` of the problem's shared operator, or of a few operators drawn per instance."""
    if not getattr(problem, "per_instance_operator", False):
        return iid_diagnosis(np.asarray(problem.operator(None)))
    # One compiled program: sampling eagerly would compile every operation on its own.
    instance = jax.jit(problem.sample, static_argnums=1)(jax.random.key(_CHECK_KEY), _CHECKED_DRAWS)
    for index, matrix in enumerate(np.asarray(problem.operator(instance))):
        reason = iid_diagnosis(matrix)
        if reason is not None:
            return f"instance {index} of a test draw has {reason}"
    return None


def _check_operator(solver: "AMP", problem) -> None:
    reason = _operator_diagnosis(problem)
    if reason is None:
        return
    what = (f"solver {type(solver).name!r} assumes an operator with i.i.d. Gaussian-like entries, but the operator "
            f"of problem {getattr(problem, 'name', '?')!r} ({type(problem).__name__}) fails the i.i.d. screen: {reason}")
    if solver.options.iid_check == "refuse":
        raise IncompatibleProblemError(
            f"{what}. Use ista, fista, du-ista, tista or admm there, or set iid_check = \"warn\" to run it anyway")
    warnings.warn(f"{what}; its estimates may grow without bound (NaN or inf curves) (iid_check = \"warn\")",
                  RuntimeWarning, stacklevel=2)


class AMPContext(NamedTuple):
    """AMP's context: the instance, ``y`` and the mean squared column norm ``c^2 = ||A||_F^2 / n``.

    ``energy`` is a host float for a shared operator, ``(batch, 1)`` for one drawn per instance.
    """

    instance: Instance
    y: jax.Array
    energy: jax.Array | float


class AMPState(NamedTuple):
    """AMP's state: the estimate ``x`` and the Onsager-corrected residual ``z``."""

    x: jax.Array
    z: jax.Array


def _iid_check_option(default: str):
    return option(default, help="an operator that fails the i.i.d. screen (iid_diagnosis): 'refuse' it "
                                "(IncompatibleProblemError) or 'warn' and run")


class AMP(_SparseSolver):
    """AMP (Donoho, Maleki and Montanari, PNAS 106(45), 2009) with a soft threshold.

    With ``c^2 = ||A||_F^2 / n`` (1 for unit columns), ``x_0 = 0`` and ``z_0 = y``::

        theta_t = alpha ||z_t||_2 / (c sqrt(m))
        x_{t+1} = soft(x_t + A^T z_t / c^2, theta_t)
        z_{t+1} = y - A x_{t+1} + (||x_{t+1}||_0 / m) z_t

    which is AMP run on the normalised operator ``A / c`` (whose entries then have
    variance about ``1/m``) for the unknown ``c x``, written in the units of ``x``.
    ``||x||_0 / m = (1/delta) <eta'>``, ``delta = m/n``, is the Onsager coefficient of
    the soft threshold. The operator is screened by :func:`iid_diagnosis`
    (``iid_check``); it may be shared or drawn per instance. Reports ``alpha``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        alpha: float = option(1.2, gt=0, tune=Tunable(0.5, 3.0),
                              help="threshold scale: theta_t = alpha ||z_t|| / sqrt(m)")
        iid_check: Literal["refuse", "warn"] = _iid_check_option("refuse")

    name = "amp"
    description = "AMP (Donoho-Maleki-Montanari): soft threshold alpha ||z|| / sqrt(m), Onsager term"

    @classmethod
    def fits(cls, problem) -> bool:
        """The capability, and with ``iid_check = "refuse"`` by default, a shared operator that passes the screen."""
        if not super().fits(problem):
            return False
        if cls.Options().iid_check != "refuse" or getattr(problem, "per_instance_operator", False):
            return True  # an operator drawn per instance is screened when the solver is built
        return iid_diagnosis(np.asarray(problem.operator(None))) is None

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        _check_operator(self, problem)
        self.per_instance = bool(getattr(problem, "per_instance_operator", False))
        if not self.per_instance:
            self.energy = float(np.sum(np.asarray(problem.operator(None), np.float64) ** 2)) / problem.dim

    def prepare(self, problem, instance) -> AMPContext:
        y = problem.observation(instance)
        if self.per_instance:
            energy = jnp.sum(jnp.square(problem.operator(instance)), axis=(-2, -1))[:, None] / problem.dim
        else:
            energy = self.energy
        return AMPContext(instance, y, energy)

    def init_state(self, problem, context) -> AMPState:
        return AMPState(super().init_state(problem, context), context.y)

    def threshold_scale(self, k) -> jax.Array:
        """``alpha`` of iteration ``k``."""
        del k
        return self.options.alpha

    def linear(self, problem, context, state, k) -> jax.Array:
        """``x_t + A^T z_t / c^2``."""
        del k
        return state.x + problem.adjoint(context.instance, state.z) / context.energy

    def step(self, problem, context, state, k):
        m = context.y.shape[-1]
        noise_level = jnp.sqrt(jnp.sum(state.z**2, axis=-1, keepdims=True) / (m * context.energy))
        x = soft_threshold(self.linear(problem, context, state, k), self.threshold_scale(k) * noise_level)
        onsager = jnp.sum(x != 0, axis=-1, keepdims=True).astype(x.dtype) / m
        return AMPState(x, self.residual(problem, context, x) + onsager * state.z)

    def constants(self):
        return {"alpha": np.array([self.options.alpha])}


class LAMP(AMP):
    """Learned AMP (Borgerding, Schniter and Rangan, IEEE Trans. Signal Processing 65(16), 2017).

    AMP's iteration with a learned matrix ``B_t`` (``n x m``) in place of ``A^T / c^2``
    and a learned threshold scale ``alpha_t > 0``; the Onsager term is kept::

        x_{t+1} = soft(x_t + B_t z_t, alpha_t ||z_t|| / (c sqrt(m)))
        z_{t+1} = y - A x_{t+1} + (||x_{t+1}||_0 / m) z_t

    Initialised at AMP (``B_t = A^T / c^2``, ``alpha_t = alpha``), it computes AMP's
    iterates before training. With ``tied`` one ``B`` serves every iteration;
    ``alpha_t`` is per iteration either way. ``B`` is shaped by one fixed ``A``: a
    problem whose operator is drawn per instance is refused. The operator screen
    only warns by default (``iid_check = "warn"``): LAMP learns ``B_t`` and may
    correct what AMP cannot, though it starts from AMP's diverging iterates.

    Attributes:
        B: the learned matrices, ``(depth or 1, n, m)`` (not reported in results and
            plots; checkpoints hold them); learning rate ``lr``.
        alpha: threshold scales, one per iteration (``> 0``, through ``exp``); learning
            rate ``alpha_lr``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        alpha: float = option(1.2, gt=0, help="initial threshold scale alpha_t")
        tied: bool = option(False, help="one matrix B for every iteration")
        lr: float = option(1e-3, gt=0, tune=Tunable(1e-5, 1e-2, log=True), help="learning rate of B_t")
        alpha_lr: float = option(1e-2, gt=0, tune=Tunable(1e-4, 1e-1, log=True),
                                 help="learning rate of alpha_t (moved on a log scale)")
        iid_check: Literal["refuse", "warn"] = _iid_check_option("warn")

    name = "lamp"
    description = "LAMP (Borgerding-Schniter-Rangan): AMP with learned B_t and alpha_t (tied or not); shared operator only"

    @classmethod
    def fits(cls, problem) -> bool:
        return super().fits(problem) and not getattr(problem, "per_instance_operator", False)

    @classmethod
    def check_problem(cls, problem) -> None:
        super().check_problem(problem)
        if getattr(problem, "per_instance_operator", False):
            raise IncompatibleProblemError(
                f"solver {cls.name!r} learns matrices B_t shaped by one fixed operator A, but problem "
                f"{getattr(problem, 'name', '?')!r} ({type(problem).__name__}) draws A per instance "
                f"(per_instance_operator); use amp, ista, fista, du-ista or tista there, or a shared operator")

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        matrix = np.asarray(problem.operator(None), np.float64)
        layers = 1 if options.tied else depth
        self.B = learned(np.broadcast_to(matrix.T / self.energy, (layers,) + matrix.T.shape), lr="lr", report=False,
                         doc="matrix B_t (n x m) of the linear step")
        self.alpha = learned(np.full(depth, options.alpha), constraint=Positive(), lr="alpha_lr",
                             doc="threshold scale alpha_t")

    def threshold_scale(self, k):
        return per_iteration(self.alpha, k)

    def linear(self, problem, context, state, k):
        return state.x + state.z @ per_iteration(self.B, k).T

    def constants(self):
        return {}
