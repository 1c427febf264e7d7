"""The ridge-regularised least-squares problem of the reference experiment."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from du_framework import MSE, NMSE_DB, Problem, ProblemDataError, RegularizedLeastSquares, option
from du_framework import load_matrix


class RidgeProblem(Problem, RegularizedLeastSquares):
    """Minimise ``1/2 ||y - A x||^2 + lam/2 ||x||^2`` for random ``y ~ N(0, I_m)``.

    ``A`` (``m x n``) is fixed: drawn once with i.i.d. N(0, 1) entries from
    ``seed``, or read from a ``.npy`` file. Each instance is a fresh ``y``; its
    target is the closed-form minimiser ``x_opt = (A^T A + lam I)^{-1} A^T y``.
    Metrics: the MSE (primary) and the NMSE in dB.

    Attributes:
        n, m: sizes of ``x`` and ``y``.
        lam: regularisation weight.
        mu_min, mu_max: extreme eigenvalues of ``A^T A + lam I``.

    >>> problem = RidgeProblem.from_options(RidgeProblem.Options(n=4, m=8, lam=1.0))
    >>> batch = problem.sample(jax.random.key(0), 3)
    >>> batch["y"].shape, batch["target"].shape
    ((3, 8), (3, 4))
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        n: int = option(50, ge=1, help="length of x (columns of A)")
        m: int = option(100, ge=1, help="length of y (rows of A)")
        lam: float = option(3.0, ge=0, help="regularisation weight lambda")
        seed: int = option(0, ge=0, help="seed of the Gaussian matrix A (unused with matrix)")
        matrix: str = option("", help="path of a .npy file holding A (m x n); empty: draw A from seed")

    name = "ridge"
    description = "ridge least squares, fixed Gaussian A, fresh y ~ N(0, I) per instance"
    metrics = (MSE, NMSE_DB)

    def __init__(self, matrix: np.ndarray, lam: float, *, source: str = "generated"):
        matrix = np.asarray(matrix, dtype=np.float64)
        hessian = matrix.T @ matrix + lam * np.eye(matrix.shape[1])
        eigenvalues = np.linalg.eigvalsh(hessian)
        if not eigenvalues[0] > 1e-12 * max(eigenvalues[-1], 1.0):
            raise ProblemDataError(
                f"A^T A + lam I is singular (smallest eigenvalue {eigenvalues[0]:.3g}): "
                f"use lam > 0 or a matrix A of full column rank"
            )
        self.n = int(matrix.shape[1])
        self.m = int(matrix.shape[0])
        self._lam = float(lam)
        self.mu_min = float(eigenvalues[0])
        self.mu_max = float(eigenvalues[-1])
        self.source = source
        # Cast on the host and transfer: jnp.asarray would compile an eager operation per shape.
        self.A = jax.device_put(matrix.astype(np.float32))
        self.AtA = jax.device_put((matrix.T @ matrix).astype(np.float32))
        # Regularised pseudo-inverse, formed once in float64 on the host.
        self.pinv = jax.device_put(np.linalg.solve(hessian, matrix.T).astype(np.float32))

    @classmethod
    def from_options(cls, options: "RidgeProblem.Options") -> "RidgeProblem":
        if options.matrix:
            matrix = load_matrix(options.matrix, shape=(options.m, options.n))
            return cls(matrix, options.lam, source=str(options.matrix))
        rng = np.random.default_rng(options.seed)
        return cls(rng.standard_normal((options.m, options.n)), options.lam, source=f"seed {options.seed}")

    @property
    def dim(self) -> int:
        return self.n

    @property
    def matrix(self) -> jax.Array:
        return self.A

    @property
    def gram(self) -> jax.Array:
        return self.AtA

    @property
    def lam(self) -> float:
        return self._lam

    def spectrum_bounds(self) -> tuple[float, float]:
        return self.mu_min, self.mu_max

    def sample(self, key: jax.Array, batch_size: int) -> dict:
        y = jax.random.normal(key, (batch_size, self.m), dtype=jnp.float32)
        return {"y": y, "target": y @ self.pinv.T}

    def describe(self) -> dict:
        return {
            "name": self.name, "dim": self.n, "n": self.n, "m": self.m, "lam": self.lam,
            "matrix": self.source, "mu_min": self.mu_min, "mu_max": self.mu_max,
            "condition_number": self.mu_max / self.mu_min,
        }
