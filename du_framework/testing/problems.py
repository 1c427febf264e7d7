"""Small problems inside the core for the conformance kit (no plugin needed)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ..capabilities import LinearObservation, RegularizedLeastSquares
from ..interfaces import Problem
from ..metrics import MSE, NMSE_DB
from ..options import option

__all__ = ["SmallLeastSquares", "BareProblem"]


class SmallLeastSquares(Problem, RegularizedLeastSquares, LinearObservation):
    """``min 1/2 ||y - A x||^2 + lam/2 ||x||^2`` for a fixed Gaussian ``A`` and ``y ~ N(0, I)``.

    The target is the closed-form minimiser ``(A^T A + lam I)^{-1} A^T y``. A
    quadratic problem, a regularised least-squares problem and a linear
    observation model (shared operator) at once, so most solvers can be checked
    on it; it is deliberately small (``n = 8``, ``m = 16`` by default).
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        n: int = option(8, ge=1, le=4096, help="length of x")
        m: int = option(16, ge=1, le=4096, help="length of y")
        lam: float = option(1.0, ge=0, help="regularisation weight")
        seed: int = option(0, ge=0, help="seed of the matrix A")

    name = "conformance-least-squares"
    description = "small ridge least squares inside the core, for the conformance kit"
    metrics = (MSE, NMSE_DB)

    def __init__(self, options: "SmallLeastSquares.Options"):
        matrix = np.random.default_rng(options.seed).standard_normal((options.m, options.n))
        hessian = matrix.T @ matrix + options.lam * np.eye(options.n)
        eigenvalues = np.linalg.eigvalsh(hessian)
        self.n, self.m, self._lam = options.n, options.m, float(options.lam)
        self.mu_min, self.mu_max = float(eigenvalues[0]), float(eigenvalues[-1])
        self.L = float(np.linalg.norm(matrix, 2) ** 2)
        self.A = jax.device_put(matrix.astype(np.float32))
        self.AtA = jax.device_put((matrix.T @ matrix).astype(np.float32))
        self.pinv = jax.device_put(np.linalg.solve(hessian, matrix.T).astype(np.float32))

    @classmethod
    def from_options(cls, options):
        return cls(options)

    @property
    def dim(self):
        return self.n

    @property
    def matrix(self):
        return self.A

    @property
    def gram(self):
        return self.AtA

    @property
    def lam(self):
        return self._lam

    def spectrum_bounds(self):
        return self.mu_min, self.mu_max

    def operator(self, instance):
        return self.A

    def lipschitz_bound(self):
        return self.L

    def sample(self, key, batch_size):
        y = jax.random.normal(key, (batch_size, self.m), jnp.float32)
        return {"y": y, "target": y @ self.pinv.T}


class BareProblem(Problem):
    """A problem with no capability at all (for refusal checks)."""

    name = "conformance-bare"

    def __init__(self, dim: int = 3):
        self._dim = dim

    @classmethod
    def from_options(cls, options):
        return cls()

    @property
    def dim(self):
        return self._dim

    def sample(self, key, batch_size):
        return {"target": jax.random.normal(key, (batch_size, self._dim))}
