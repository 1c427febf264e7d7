"""Capabilities: the structure a problem promises and a solver may rely on.

A capability is an abstract class that a problem inherits (beside
:class:`~du_framework.Problem`) and a solver names in ``requires``; the registry
and the engine test it with ``isinstance``. A plugin defines its own the same
way: an ``abc.ABC`` subclass with abstract methods and a docstring stating the
contract.

Shipped with the core:

* :class:`QuadraticProblem`: ``1/2 x^T H x - b^T x`` with known spectrum bounds;
* :class:`RegularizedLeastSquares`: ``1/2 ||y - A x||^2 + lam/2 ||x||^2``, ``A`` shared;
* :class:`LinearObservation`: ``y = A x + noise`` with ``A`` shared by every
  instance or drawn per instance (``forward``, ``adjoint``, a step bound).
"""

from __future__ import annotations

import abc
import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["QuadraticProblem", "RegularizedLeastSquares", "LinearObservation", "capability_name"]


def capability_name(capability: type | tuple[type, ...]) -> str:
    """Human-readable name of a capability or of several (``()`` or ``object``: none)."""
    if isinstance(capability, tuple):
        return " and ".join(c.__name__ for c in capability) if capability else "any problem"
    return "any problem" if capability is object else capability.__name__


class QuadraticProblem(abc.ABC):
    """Minimise ``1/2 x^T H x - b^T x`` with ``H`` symmetric positive definite.

    ``H`` is the same for every instance; ``b`` varies per instance.
    """

    @abc.abstractmethod
    def hessian_apply(self, x: jax.Array) -> jax.Array:
        """``H x`` for a batch ``x`` of shape ``(batch, dim)``."""

    @abc.abstractmethod
    def linear_term(self, instance: Any) -> jax.Array:
        """``b`` for each instance, shape ``(batch, dim)``."""

    @abc.abstractmethod
    def spectrum_bounds(self) -> tuple[float, float]:
        """``(mu_min, mu_max)``: extreme eigenvalues of ``H`` (host floats, ``0 < mu_min <= mu_max``)."""


class RegularizedLeastSquares(QuadraticProblem):
    """``f(x) = 1/2 ||y - A x||^2 + lam/2 ||x||^2`` with ``y = instance["y"]`` and one shared ``A``.

    Then ``H = A^T A + lam I`` and ``b = A^T y``; solvers that learn the
    regularisation weight use ``gram`` (``A^T A``) and ``lam`` separately.
    """

    @property
    @abc.abstractmethod
    def matrix(self) -> jax.Array:
        """The operator ``A``, shape ``(m, dim)``."""

    @property
    @abc.abstractmethod
    def gram(self) -> jax.Array:
        """``A^T A``, shape ``(dim, dim)``."""

    @property
    @abc.abstractmethod
    def lam(self) -> float:
        """The regularisation weight ``lambda >= 0``."""

    def adjoint_observation(self, instance: Any) -> jax.Array:
        """``A^T y`` per instance, shape ``(batch, dim)``."""
        return instance["y"] @ self.matrix

    def hessian_apply(self, x: jax.Array) -> jax.Array:
        return x @ self.gram + self.lam * x

    def linear_term(self, instance: Any) -> jax.Array:
        return self.adjoint_observation(instance)


class LinearObservation(abc.ABC):
    """``y = A x + noise``, where ``A`` (``m x dim``) is shared or drawn per instance.

    The problem implements :meth:`operator` and :meth:`lipschitz_bound`; the
    rest has defaults that work for both a shared operator (shape ``(m, dim)``)
    and one per instance (shape ``(batch, m, dim)``, kept in the instance).

    Attributes:
        per_instance_operator: ``True`` when ``A`` is drawn afresh for every
            instance (then :meth:`operator` needs the instance); a solver that
            learns something shaped by one fixed ``A`` (LISTA's matrices)
            refuses such a problem.
    """

    per_instance_operator: bool = False

    @abc.abstractmethod
    def operator(self, instance: Any = None) -> jax.Array:
        """``A``: shape ``(m, dim)`` when shared (``instance`` may be ``None``), ``(batch, m, dim)`` per instance."""

    @abc.abstractmethod
    def lipschitz_bound(self) -> float:
        """A host float ``L >= ||A||_2^2`` for (almost) every instance: ``1/L`` is a safe gradient step.

        For a shared operator, ``||A||_2^2`` itself; for a random one, a bound
        that holds with high probability over the ensemble (say so in the
        problem's docs).
        """

    def observation(self, instance: Any) -> jax.Array:
        """``y``, shape ``(batch, m)`` (default: ``instance["y"]``)."""
        return instance["y"]

    def forward(self, instance: Any, x: jax.Array) -> jax.Array:
        """``A x`` per instance: ``(batch, dim) -> (batch, m)``."""
        matrix = self.operator(instance)
        return x @ matrix.T if matrix.ndim == 2 else jnp.einsum("bmn,bn->bm", matrix, x)

    def adjoint(self, instance: Any, r: jax.Array) -> jax.Array:
        """``A^T r`` per instance: ``(batch, m) -> (batch, dim)``."""
        matrix = self.operator(instance)
        return r @ matrix if matrix.ndim == 2 else jnp.einsum("bmn,bm->bn", matrix, r)

    def pseudo_inverse(self, instance: Any, *, ridge: float = 0.0) -> jax.Array:
        """``W = A^T (A A^T + ridge I)^{-1}``: ``(dim, m)`` shared or ``(batch, dim, m)`` per instance.

        With ``ridge = 0`` (the default) this is ``A^T (A A^T)^{-1}``, the
        pseudo-inverse of an ``A`` with independent rows (``m <= dim``, full row
        rank). When the rows are dependent (``A A^T`` singular or nearly so:
        more rows than columns, ``m > dim``, as in a MIMO channel with more
        receive than transmit antennas; repeated or collinear rows) the
        unregularised solve is not finite; pass a small ``ridge > 0`` (for
        example the noise variance, or ``1e-3 * ||A||_2^2``). The result is the
        regularised (Tikhonov, LMMSE-like) inverse, equal to
        ``(A^T A + ridge I)^{-1} A^T``, finite for every ``A``, and it tends to
        the Moore-Penrose pseudo-inverse as ``ridge -> 0``.

        Computed in the program by default; a problem with a shared operator may
        return one formed once on the host in float64 (an override that takes
        no ``ridge`` still serves ``ridge = 0``).

        Args:
            ridge: the regularisation ``>= 0`` added to the diagonal of ``A A^T``
                (a host float).

        Raises:
            ValueError: ``ridge`` is negative or not finite.
        """
        if isinstance(ridge, bool) or not isinstance(ridge, numbers.Real) or not 0.0 <= ridge < math.inf:
            raise ValueError(f"pseudo_inverse(ridge={ridge!r}): ridge must be a finite number >= 0 "
                             f"(0 for A^T (A A^T)^-1, a small positive value when A's rows are dependent)")
        matrix = self.operator(instance)
        rows = matrix @ jnp.swapaxes(matrix, -1, -2)
        if ridge:
            rows = rows + jnp.broadcast_to(ridge * jnp.eye(rows.shape[-1], dtype=rows.dtype), rows.shape)
        return jnp.swapaxes(jnp.linalg.solve(rows, matrix), -1, -2)

    def apply_pseudo_inverse(self, instance: Any, r: jax.Array, *, ridge: float = 0.0) -> jax.Array:
        """``W r`` per instance: ``(batch, m) -> (batch, dim)``, ``W`` from :meth:`pseudo_inverse` with ``ridge``."""
        w = self.pseudo_inverse(instance, ridge=ridge) if ridge else self.pseudo_inverse(instance)
        return r @ w.T if w.ndim == 2 else jnp.einsum("bnm,bm->bn", w, r)
