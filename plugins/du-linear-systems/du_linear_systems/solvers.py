"""Relaxations of the Jacobi fixed-point map ``f(x) = x + D^{-1} (b - A x)``.

Following Takabe and Wadayama's periodical successive over-relaxation (PSOR) of
a fixed-point iteration, every solver here is ``x^(k+1) = x^(k) + w_k (f(x^(k)) - x^(k))
= x^(k) + w_k D^{-1} (b - A x^(k))`` and differs only in the relaxation factors:

- ``jacobi``: ``w_k = 1``;
- ``sor``: the optimal constant ``w = 2 / (lambda_min + lambda_max)`` of ``D^{-1} A``;
- ``chebyshev-psor``: Chebyshev-periodical factors of period T from that spectrum;
- ``du-psor``: factors learned by deep unfolding (period T).

``gauss-seidel-sor`` is the classical SOR sweep, a different iteration,
``(D + w L) x^(k+1) = w b - (w U + (w - 1) D) x^(k)``, and ``du-sor`` learns its
factors ``w_k`` (period T) the same way.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import jax.scipy.linalg
import numpy as np
from flax import nnx

from du_framework import QuadraticSolver, per_iteration
from du_framework.theory import chebyshev_steps

from .problem import JacobiSplitting


class _RelaxedJacobi(QuadraticSolver):
    requires = JacobiSplitting

    def prepare(self, problem, instance):
        return {**super().prepare(problem, instance), "inverse_diagonal": (1.0 / problem.diagonal)[None, :]}

    def relaxation(self, k):
        """The factor ``w_k`` of iteration ``k``."""
        raise NotImplementedError

    def step(self, x, context, k):
        return x - self.relaxation(k) * self.gradient(x, context) * context["inverse_diagonal"]


class Jacobi(_RelaxedJacobi):
    """The Jacobi method, ``x^(k+1) = D^{-1} (b - (A - D) x^(k))``; converges iff ``lambda_max(D^{-1}A) < 2``."""

    name = "jacobi"
    description = "Jacobi iteration (relaxation factor 1)"

    def relaxation(self, k):
        return 1.0


class SOR(_RelaxedJacobi):
    """Over-relaxed Jacobi map with one constant factor, by default the optimal ``2/(lambda_min + lambda_max)``."""

    @dataclasses.dataclass(frozen=True)
    class Options:
        omega: float = 0.0

        def validate(self):
            if self.omega < 0:
                raise ValueError(f"omega must be >= 0 (0 = optimal constant), got {self.omega}")

    name = "sor"
    description = "successive over-relaxation of the Jacobi map, optimal constant factor"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        low, high = problem.jacobi_spectrum_bounds()
        self.omega = float(options.omega or 2.0 / (low + high))

    def relaxation(self, k):
        return self.omega

    def learned_parameters(self):
        return {"omega": np.array([self.omega])}


class ChebyshevPSOR(_RelaxedJacobi):
    """Chebyshev-periodical SOR (Takabe and Wadayama, IEICE Trans. Fundamentals E105.A(8), 2022).

    ``w_k = 1 / ((l_max + l_min)/2 + (l_max - l_min)/2 cos((2k+1) pi / (2T)))`` for the
    spectrum ``[l_min, l_max]`` of ``D^{-1} A``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        period: int = 8

        def validate(self):
            if self.period < 1:
                raise ValueError(f"period must be >= 1, got {self.period}")

    name = "chebyshev-psor"
    description = "Chebyshev-periodical SOR factors of period T (Takabe-Wadayama)"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        self.factors = jnp.asarray(chebyshev_steps(*problem.jacobi_spectrum_bounds(), options.period), jnp.float32)

    def relaxation(self, k):
        return per_iteration(self.factors, k)

    def learned_parameters(self):
        return {"omega": np.asarray(self.factors)}


class DUPSOR(_RelaxedJacobi):
    """Deep-unfolded periodical SOR: relaxation factors learned with period T.

    The learned parameter is the reciprocal ``nu_k = 1 / w_k``: over one period the
    error is multiplied by ``prod_k (I - D^{-1} A / nu_k)``, a polynomial whose roots
    are the ``nu_k``, which live on the spectrum of ``D^{-1} A`` (a well-scaled
    interval) while the factors ``w_k`` span orders of magnitude. Adam on the roots
    learns what Adam on the factors does not (see docs/algorithms/linear-system.md).

    Attributes:
        nu: learned reciprocal factors, shape ``(period,)`` (period 0: one per
            iteration), initialised at ``1 / init_omega`` (init_omega 0: the optimal
            constant factor, as ``sor`` uses).
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        period: int = 8
        init_omega: float = 0.0
        lr: float = 1e-2

        def validate(self):
            if self.period < 0 or self.init_omega < 0 or not self.lr > 0:
                raise ValueError("need period >= 0, init_omega >= 0 (0 = optimal constant) and lr > 0")

    name = "du-psor"
    description = "DU-PSOR: learned periodical relaxation factors of the Jacobi map"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        low, high = problem.jacobi_spectrum_bounds()
        start = options.init_omega or 2.0 / (low + high)
        self.nu = nnx.Param(jnp.full((options.period or depth,), 1.0 / start, jnp.float32))

    def relaxation(self, k):
        return 1.0 / per_iteration(self.nu, k)

    def learned_parameters(self):
        return {"omega": 1.0 / np.asarray(self.nu[...])}


class _GaussSeidelSweep(QuadraticSolver):
    """``(D + w L) x^(k+1) = w b - (w U + (w - 1) D) x^(k)``, ``A = L + D + U``, for a factor ``w_k``."""

    requires = JacobiSplitting

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        A = np.asarray(problem.matrix, np.float64)
        self.lower = jnp.asarray(np.tril(A, -1), jnp.float32)
        self.upper = jnp.asarray(np.triu(A, 1), jnp.float32)
        self.D = jnp.asarray(np.diag(np.diag(A)), jnp.float32)
        low, high = problem.jacobi_spectrum_bounds()
        rho = max(abs(1 - low), abs(1 - high))
        self.young = float(2.0 / (1.0 + np.sqrt(1.0 - rho**2)) if rho < 1 else 1.0)

    def relaxation(self, k):
        """The factor ``w_k`` of iteration ``k``."""
        raise NotImplementedError

    def step(self, x, context, k):
        w = self.relaxation(k)
        rhs = x @ ((1 - w) * self.D - w * self.upper).T + w * context["b"]
        return jax.scipy.linalg.solve_triangular(self.D + w * self.lower, rhs.T, lower=True).T


class GaussSeidelSOR(_GaussSeidelSweep):
    """Classical SOR: a Gauss-Seidel sweep with one relaxation factor ``w``.

    The default ``w`` is Young's ``2 / (1 + sqrt(1 - rho_J^2))`` from the Jacobi spectral
    radius ``rho_J = max(|1 - l_min|, |1 - l_max|)``: optimal for consistently ordered
    matrices, a standard choice otherwise (1 when ``rho_J >= 1``).
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        omega: float = 0.0

        def validate(self):
            if not 0 <= self.omega < 2:
                raise ValueError(f"omega must be in (0, 2) (0 = Young's formula), got {self.omega}")

    name = "gauss-seidel-sor"
    description = "classical SOR (Gauss-Seidel sweep), Young's relaxation factor"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        self.omega = float(options.omega or self.young)

    def relaxation(self, k):
        return self.omega

    def learned_parameters(self):
        return {"omega": np.array([self.omega])}


class DUSOR(_GaussSeidelSweep):
    """Deep-unfolded SOR: the Gauss-Seidel sweep with learned factors ``w_k`` of period T.

    Attributes:
        omega: learned factors, shape ``(period,)`` (0: one per iteration), initialised
            at Young's factor (as ``gauss-seidel-sor`` uses) or ``init_omega``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        period: int = 8
        init_omega: float = 0.0
        lr: float = 1e-2

        def validate(self):
            if self.period < 0 or not 0 <= self.init_omega < 2 or not self.lr > 0:
                raise ValueError("need period >= 0, 0 <= init_omega < 2 (0 = Young's factor) and lr > 0")

    name = "du-sor"
    description = "DU-SOR: Gauss-Seidel SOR sweep with learned periodical relaxation factors"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        start = options.init_omega or self.young
        self.omega = nnx.Param(jnp.full((options.period or depth,), start, jnp.float32))

    def relaxation(self, k):
        return per_iteration(self.omega, k)
