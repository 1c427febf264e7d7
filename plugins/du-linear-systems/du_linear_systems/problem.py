"""The ``linear-system`` problem: a fixed SPD matrix A, a fresh right-hand side b per instance."""

from __future__ import annotations

import abc
import dataclasses
import jax
import jax.numpy as jnp
import numpy as np

from du_framework import Problem, ProblemDataError, QuadraticProblem
from du_framework.matrix import load_matrix


class JacobiSplitting(QuadraticProblem):
    """Capability: a quadratic problem (``H = A``, ``b``) whose ``D = diag(A)`` and spectrum of ``D^{-1} A`` are known."""

    @property
    @abc.abstractmethod
    def matrix(self) -> jax.Array:
        """``A`` (``= H``), shape ``(dim, dim)``."""

    @property
    @abc.abstractmethod
    def diagonal(self) -> jax.Array:
        """``diag(A)``, shape ``(dim,)``, all positive."""

    @abc.abstractmethod
    def jacobi_spectrum_bounds(self) -> tuple[float, float]:
        """``(lambda_min, lambda_max)`` of ``D^{-1} A`` (real and positive for SPD ``A``)."""


def spectrum_ensemble(n: int, kappa: float, seed: int) -> np.ndarray:
    """``A = Q diag(lam) Q^T``: Q Haar-orthogonal, ``lam_i = a + (1 - a) sqrt(i / (n - 1))``, ``a = 1/kappa``.

    The square root puts most eigenvalues near the top of ``[1/kappa, 1]`` and
    leaves a tail towards the bottom, so the spectrum of ``D^{-1} A`` is not
    symmetric about 1 and over-relaxation has something to gain.
    """
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    q = q * np.sign(np.diag(r))
    a = 1.0 / kappa
    eigenvalues = a + (1 - a) * np.sqrt(np.arange(n) / max(n - 1, 1))
    matrix = (q * eigenvalues) @ q.T
    return (matrix + matrix.T) / 2


class LinearSystem(Problem, JacobiSplitting):
    """Solve ``A x = b`` for a fixed SPD ``A`` and ``b ~ N(0, I)``; target ``x = A^{-1} b``.

    ``A`` comes from :func:`spectrum_ensemble` (``n``, ``kappa``, ``seed``) or from a
    ``.npy`` file (``matrix``): square, finite, symmetric, positive definite. As a
    quadratic problem, ``H = A``; as a Jacobi splitting, ``D = diag(A)``.

    >>> problem = LinearSystem.from_options(LinearSystem.Options(n=4, kappa=10.0))
    >>> problem.sample(jax.random.key(0), 2)["b"].shape
    (2, 4)
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        n: int = 64
        kappa: float = 50.0
        seed: int = 0
        matrix: str = ""

        def validate(self):
            if self.n < 2:
                raise ValueError(f"problem.n must be >= 2, got {self.n}")
            if not self.kappa >= 1:
                raise ValueError(f"problem.kappa must be >= 1, got {self.kappa}")

    name = "linear-system"
    report_metric = "nmse_db"
    description = "A x = b, fixed SPD A (prescribed-spectrum ensemble or .npy), fresh b ~ N(0, I)"

    def __init__(self, matrix: np.ndarray, *, source: str = "generated"):
        matrix = np.asarray(matrix, dtype=np.float64)
        eigenvalues = np.linalg.eigvalsh(matrix)
        if not eigenvalues[0] > 1e-12 * eigenvalues[-1]:
            raise ProblemDataError(
                f"A must be positive definite; its smallest eigenvalue is {eigenvalues[0]:.3g}")
        diagonal = np.diag(matrix)
        scaled = matrix / np.sqrt(np.outer(diagonal, diagonal))  # similar to D^{-1} A
        jacobi = np.linalg.eigvalsh(scaled)
        self.n = int(matrix.shape[0])
        self.source = source
        self.mu_min, self.mu_max = float(eigenvalues[0]), float(eigenvalues[-1])
        self.jacobi_min, self.jacobi_max = float(jacobi[0]), float(jacobi[-1])
        self.A = jnp.asarray(matrix, jnp.float32)
        self.inverse = jnp.asarray(np.linalg.inv(matrix), jnp.float32)
        self.D = jnp.asarray(diagonal, jnp.float32)

    @classmethod
    def from_options(cls, options: "LinearSystem.Options") -> "LinearSystem":
        if options.matrix:
            return cls(_load_spd(options.matrix, options.n), source=str(options.matrix))
        return cls(spectrum_ensemble(options.n, options.kappa, options.seed),
                   source=f"spectrum ensemble, kappa {options.kappa}, seed {options.seed}")

    @property
    def dim(self) -> int:
        return self.n

    @property
    def matrix(self) -> jax.Array:
        return self.A

    @property
    def diagonal(self) -> jax.Array:
        return self.D

    def sample(self, key, batch_size):
        b = jax.random.normal(key, (batch_size, self.n), jnp.float32)
        return {"b": b, "target": b @ self.inverse.T}

    def hessian_apply(self, x):
        return x @ self.A  # A is symmetric

    def linear_term(self, instance):
        return instance["b"]

    def spectrum_bounds(self):
        return self.mu_min, self.mu_max

    def jacobi_spectrum_bounds(self):
        return self.jacobi_min, self.jacobi_max

    def describe(self):
        return {"name": self.name, "dim": self.n, "n": self.n, "matrix": self.source,
                "mu_min": self.mu_min, "mu_max": self.mu_max,
                "jacobi_min": self.jacobi_min, "jacobi_max": self.jacobi_max}


def _load_spd(path: str, n: int) -> np.ndarray:
    matrix = load_matrix(path, shape=(n, n), names=("problem.n", "problem.n"))
    if not np.allclose(matrix, matrix.T, rtol=1e-6, atol=1e-9 * np.abs(matrix).max()):
        raise ProblemDataError(f"problem.matrix: {str(path)!r} is not symmetric; A must be symmetric positive definite")
    return matrix
