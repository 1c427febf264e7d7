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
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg
import numpy as np

from du_framework import QuadraticSolver, Reciprocal, Unconstrained, learned, option, per_iteration
from du_framework import chebyshev_steps
from du_framework import Tunable

from .problem import JacobiSplitting


class JacobiContext(NamedTuple):
    """Context of the relaxed Jacobi solvers: ``b`` per instance and ``D^{-1}``."""

    b: jax.Array
    """Right-hand sides, shape ``(batch, dim)``."""
    inverse_diagonal: jax.Array
    """``1 / diag(A)``, shape ``(1, dim)``."""


class _RelaxedJacobi(QuadraticSolver):
    requires = JacobiSplitting

    def prepare(self, problem, instance):
        return JacobiContext(problem.linear_term(instance), (1.0 / problem.diagonal)[None, :])

    def relaxation(self, k):
        """The factor ``w_k`` of iteration ``k``."""
        raise NotImplementedError

    def step(self, problem, context, x, k):
        return x - self.relaxation(k) * self.gradient(problem, context, x) * context.inverse_diagonal


class Jacobi(_RelaxedJacobi):
    """The Jacobi method, ``x^(k+1) = D^{-1} (b - (A - D) x^(k))``; converges iff ``lambda_max(D^{-1}A) < 2``."""

    name = "jacobi"
    description = "Jacobi iteration (relaxation factor 1)"

    def relaxation(self, k):
        return 1.0


class SOR(_RelaxedJacobi):
    """Over-relaxed Jacobi map with one constant factor, by default the optimal ``2/(lambda_min + lambda_max)``.

    Nothing is learned; the factor is reported as the constant ``omega``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        omega: float = option(0.0, ge=0, tune=Tunable(0.01, 2.0), help="the constant relaxation factor (0: the optimal "
                                               "2/(l_min + l_max) of D^-1 A)")

    name = "sor"
    description = "successive over-relaxation of the Jacobi map, optimal constant factor"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        low, high = problem.jacobi_spectrum_bounds()
        self.omega = float(options.omega or 2.0 / (low + high))

    def relaxation(self, k):
        return self.omega

    def constants(self):
        return {"omega": np.array([self.omega])}


class ChebyshevPSOR(_RelaxedJacobi):
    """Chebyshev-periodical SOR (Takabe and Wadayama, IEICE Trans. Fundamentals E105.A(8), 2022).

    ``w_k = 1 / ((l_max + l_min)/2 + (l_max - l_min)/2 cos((2k+1) pi / (2T)))`` for the
    spectrum ``[l_min, l_max]`` of ``D^{-1} A``. Nothing is learned; the factors are
    reported as the constant ``omega``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        period: int = option(8, ge=1, help="period T of the Chebyshev relaxation factors")

    name = "chebyshev-psor"
    description = "Chebyshev-periodical SOR factors of period T (Takabe-Wadayama)"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        factors = chebyshev_steps(*problem.jacobi_spectrum_bounds(), options.period)
        self.factors = jax.device_put(factors.astype(np.float32))

    def relaxation(self, k):
        return per_iteration(self.factors, k)

    def constants(self):
        return {"omega": np.asarray(self.factors)}


class DUPSOR(_RelaxedJacobi):
    """Deep-unfolded periodical SOR: relaxation factors learned with period T.

    The optimiser moves the reciprocal ``nu_k = 1 / w_k`` (``omega`` is declared with
    :class:`~du_framework.Reciprocal` of scale 1, so its raw value is ``nu``): over one
    period the error is multiplied by ``prod_k (I - D^{-1} A / nu_k)``, a polynomial
    whose roots are the ``nu_k``, which live on the spectrum of ``D^{-1} A`` (a
    well-scaled interval) while the factors ``w_k`` span orders of magnitude. Adam on
    the roots learns what Adam on the factors does not (see
    docs/algorithms/du-linear-systems.md). The parameter plot shows the
    Chebyshev-PSOR factors of the same period beside ``omega``.

    Attributes:
        omega: learned relaxation factors ``w_k``, shape ``(period,)`` (period 0: one
            per iteration), stored as ``nu_k = 1 / w_k`` and initialised at
            ``init_omega`` (0: the optimal constant factor, as ``sor`` uses);
            learning rate ``lr``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        period: int = option(8, ge=0, help="learned factors, used periodically (0: one per iteration)")
        init_omega: float = option(0.0, ge=0, help="initial factor (0: the optimal constant 2/(l_min + l_max))")
        lr: float = option(1e-2, gt=0, tune=Tunable(1e-4, 1e-1, log=True),
                           help="learning rate of the factors (moves their reciprocals nu = 1/omega)")

    name = "du-psor"
    description = "DU-PSOR: learned periodical relaxation factors of the Jacobi map"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        low, high = problem.jacobi_spectrum_bounds()
        start = options.init_omega or 2.0 / (low + high)
        self.omega = learned(np.full(options.period or depth, start), constraint=Reciprocal(1.0), lr="lr",
                             doc="relaxation factor w_k (stored as its reciprocal nu_k = 1/w_k)")

    def relaxation(self, k):
        return per_iteration(self.omega, k)

    def reference_values(self, problem):
        period = len(self.omega[...])  # the Chebyshev-PSOR factors of the same period, beside omega
        return {"omega": {f"Chebyshev-PSOR factors (T={period})": chebyshev_steps(
            *problem.jacobi_spectrum_bounds(), period)}}


class SweepContext(NamedTuple):
    """Context of the Gauss-Seidel sweeps: ``b`` and the splitting ``A = L + D + U``."""

    b: jax.Array
    """Right-hand sides, shape ``(batch, dim)``."""
    lower: jax.Array
    """``L``, the strictly lower triangle of ``A``, shape ``(dim, dim)``."""
    diagonal: jax.Array
    """``D = diag(diag(A))``, shape ``(dim, dim)``."""
    upper: jax.Array
    """``U``, the strictly upper triangle of ``A``, shape ``(dim, dim)``."""


class _GaussSeidelSweep(QuadraticSolver):
    """``(D + w L) x^(k+1) = w b - (w U + (w - 1) D) x^(k)``, ``A = L + D + U``, for a factor ``w_k``."""

    requires = JacobiSplitting

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        low, high = problem.jacobi_spectrum_bounds()
        rho = max(abs(1 - low), abs(1 - high))
        self.young = float(2.0 / (1.0 + np.sqrt(1.0 - rho**2)) if rho < 1 else 1.0)

    def prepare(self, problem, instance):
        matrix = problem.matrix
        return SweepContext(problem.linear_term(instance), jnp.tril(matrix, -1), jnp.diag(problem.diagonal),
                            jnp.triu(matrix, 1))

    def relaxation(self, k):
        """The factor ``w_k`` of iteration ``k``."""
        raise NotImplementedError

    def step(self, problem, context, x, k):
        w = self.relaxation(k)
        rhs = x @ ((1 - w) * context.diagonal - w * context.upper).T + w * context.b
        return jax.scipy.linalg.solve_triangular(context.diagonal + w * context.lower, rhs.T, lower=True).T


class GaussSeidelSOR(_GaussSeidelSweep):
    """Classical SOR: a Gauss-Seidel sweep with one relaxation factor ``w``.

    The default ``w`` is Young's ``2 / (1 + sqrt(1 - rho_J^2))`` from the Jacobi spectral
    radius ``rho_J = max(|1 - l_min|, |1 - l_max|)``: optimal for consistently ordered
    matrices, a standard choice otherwise (1 when ``rho_J >= 1``). Nothing is learned;
    the factor is reported as the constant ``omega``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        omega: float = option(0.0, ge=0, lt=2, tune=Tunable(0.5, 1.99),
                              help="the relaxation factor, in (0, 2) (0: Young's factor)")

    name = "gauss-seidel-sor"
    description = "classical SOR (Gauss-Seidel sweep), Young's relaxation factor"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        self.omega = float(options.omega or self.young)

    def relaxation(self, k):
        return self.omega

    def constants(self):
        return {"omega": np.array([self.omega])}


class DUSOR(_GaussSeidelSweep):
    """Deep-unfolded SOR: the Gauss-Seidel sweep with learned factors ``w_k`` of period T.

    Attributes:
        omega: learned factors, shape ``(period,)`` (0: one per iteration), unconstrained,
            initialised at Young's factor (as ``gauss-seidel-sor`` uses) or ``init_omega``;
            learning rate ``lr``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        period: int = option(8, ge=0, help="learned factors, used periodically (0: one per iteration)")
        init_omega: float = option(0.0, ge=0, lt=2, help="initial factor, in (0, 2) (0: Young's factor)")
        lr: float = option(1e-2, gt=0, tune=Tunable(1e-4, 1e-1, log=True), help="learning rate of the factors omega")

    name = "du-sor"
    description = "DU-SOR: Gauss-Seidel SOR sweep with learned periodical relaxation factors"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        start = options.init_omega or self.young
        self.omega = learned(np.full(options.period or depth, start), constraint=Unconstrained(), lr="lr",
                             doc="relaxation factor w_k of the Gauss-Seidel sweep")

    def relaxation(self, k):
        return per_iteration(self.omega, k)
