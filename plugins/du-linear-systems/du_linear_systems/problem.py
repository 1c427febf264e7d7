"""The ``linear-system`` problem: a fixed SPD matrix A, a fresh right-hand side b per instance."""

from __future__ import annotations

import abc
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from du_framework import MSE, NMSE_DB, Problem, ProblemDataError, QuadraticProblem, option
from du_framework import load_matrix


class JacobiSplitting(QuadraticProblem):
    """Capability: ``A x = b`` for one symmetric positive definite ``A`` with its Jacobi splitting known.

    Contract, beside :class:`~du_framework.QuadraticProblem`'s:

    * ``H = A``: ``hessian_apply(x)`` is ``A x`` and ``linear_term(instance)`` is ``b``, so the
      minimiser of the quadratic solves ``A x = b``;
    * ``A`` is the same for every instance (``b`` varies); :attr:`matrix` and :attr:`diagonal`
      are arrays of the problem (leaves of its pytree), usable inside jitted code;
    * :attr:`diagonal` is ``diag(A)``, every entry > 0 (true for SPD ``A``), so ``D^{-1}``
      exists and the Jacobi map ``f(x) = x + D^{-1} (b - A x)`` is defined;
    * :meth:`jacobi_spectrum_bounds` gives the extreme eigenvalues of ``D^{-1} A`` as host
      floats, ``0 < lambda_min <= lambda_max`` (``D^{-1} A`` is similar to the SPD
      ``D^{-1/2} A D^{-1/2}``, so its spectrum is real and positive).

    Solvers that relax the Jacobi map (``jacobi``, ``sor``, ``chebyshev-psor``, ``du-psor``)
    and the Gauss-Seidel sweep (``gauss-seidel-sor``, ``du-sor``) require it.
    """

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
        """``(lambda_min, lambda_max)`` of ``D^{-1} A`` (host floats, real and positive for SPD ``A``)."""


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
    quadratic problem, ``H = A``; as a Jacobi splitting, ``D = diag(A)``. Metrics: the
    NMSE in dB (primary) and the MSE.

    >>> problem = LinearSystem.from_options(LinearSystem.Options(n=4, kappa=10.0))
    >>> problem.sample(jax.random.key(0), 2)["b"].shape
    (2, 4)
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        n: int = option(64, ge=2, help="size of the system (A is n x n)")
        kappa: float = option(50.0, ge=1, help="condition number of the generated A (unused with matrix)")
        seed: int = option(0, ge=0, help="seed of the generated A's eigenvectors (unused with matrix)")
        matrix: str = option("", help="path of a .npy file holding a symmetric positive definite A (n x n); "
                                      "empty: generate A from the spectrum ensemble")

    name = "linear-system"
    description = "A x = b, fixed SPD A (prescribed-spectrum ensemble or .npy), fresh b ~ N(0, I)"
    metrics = (NMSE_DB, MSE)

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
        # Cast on the host and transfer: jnp.asarray would compile an eager operation per shape.
        self.A = jax.device_put(matrix.astype(np.float32))
        self.inverse = jax.device_put(np.linalg.inv(matrix).astype(np.float32))
        self.D = jax.device_put(diagonal.astype(np.float32))

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
