"""The ``sparse-recovery`` problem: y = A x + w with a Bernoulli-Gaussian x."""

from __future__ import annotations

import abc
import dataclasses
import jax
import jax.numpy as jnp
import numpy as np

from du_framework import Problem, ProblemDataError
from du_framework.matrix import load_matrix


class SparseLinearInverseProblem(abc.ABC):
    """Capability: ``y = A x + w``, ``x`` Bernoulli-Gaussian, ``w ~ N(0, noise_variance I)``.

    Instances hold ``"y"`` (observations) and ``"target"`` (the true ``x``).
    """

    @property
    @abc.abstractmethod
    def matrix(self) -> jax.Array:
        """``A``, shape ``(m, n)``."""

    @property
    @abc.abstractmethod
    def lipschitz(self) -> float:
        """``L = ||A||_2^2``, the Lipschitz constant of the gradient of ``1/2 ||y - A x||^2``."""

    @property
    @abc.abstractmethod
    def noise_variance(self) -> float:
        """Per-entry variance of ``w``."""

    @property
    @abc.abstractmethod
    def sparsity(self) -> float:
        """Probability ``p`` that an entry of ``x`` is nonzero."""

    @property
    @abc.abstractmethod
    def signal_variance(self) -> float:
        """Variance of a nonzero entry of ``x``."""

    @property
    @abc.abstractmethod
    def pseudo_inverse(self) -> jax.Array:
        """``W = A^T (A A^T)^{-1}``, shape ``(n, m)``."""


class SparseRecovery(Problem, SparseLinearInverseProblem):
    """Recover a sparse ``x`` from ``y = A x + w``.

    ``x_i = b_i g_i`` with ``b_i ~ Bernoulli(p)``, ``g_i ~ N(0, 1)``. ``A`` (``m x n``)
    is fixed: i.i.d. Gaussian with columns normalised to unit length (from ``seed``)
    or a user's ``.npy``. The noise variance gives the requested SNR,
    ``E||A x||^2 / E||w||^2 = 10^(snr_db / 10)``. Reported metric: NMSE in dB.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        n: int = 500
        m: int = 250
        p: float = 0.1
        snr_db: float = 40.0
        seed: int = 0
        matrix: str = ""

        def validate(self):
            if self.n < 1 or self.m < 1:
                raise ValueError(f"problem.n and problem.m must be >= 1, got {self.n}, {self.m}")
            if not 0 < self.p <= 1:
                raise ValueError(f"problem.p must be in (0, 1], got {self.p}")

    name = "sparse-recovery"
    description = "y = A x + w, Bernoulli-Gaussian x, Gaussian A with unit columns, noise at a set SNR"
    report_metric = "nmse_db"

    def __init__(self, matrix: np.ndarray, *, p: float, snr_db: float, source: str = "generated"):
        matrix = np.asarray(matrix, np.float64)
        m, n = matrix.shape
        gram_rows = matrix @ matrix.T
        if np.linalg.matrix_rank(gram_rows) < m:
            raise ProblemDataError(f"A ({m} x {n}) must have full row rank for the pseudo-inverse A^T (A A^T)^-1")
        self.n, self.m = int(n), int(m)
        self.p = float(p)
        self.snr_db = float(snr_db)
        self.source = source
        # E||A x||^2 = p ||A||_F^2 for unit-variance nonzeros.
        self.sigma2 = float(p * np.sum(matrix**2) / (m * 10 ** (snr_db / 10)))
        self.L = float(np.linalg.norm(matrix, 2) ** 2)
        self.A = jnp.asarray(matrix, jnp.float32)
        self.W = jnp.asarray(matrix.T @ np.linalg.inv(gram_rows), jnp.float32)

    @classmethod
    def from_options(cls, options: "SparseRecovery.Options") -> "SparseRecovery":
        if options.matrix:
            matrix = load_matrix(options.matrix, shape=(options.m, options.n))
            source = str(options.matrix)
        else:
            rng = np.random.default_rng(options.seed)
            matrix = rng.standard_normal((options.m, options.n))
            matrix /= np.linalg.norm(matrix, axis=0, keepdims=True)
            source = f"Gaussian, unit columns, seed {options.seed}"
        return cls(matrix, p=options.p, snr_db=options.snr_db, source=source)

    @property
    def dim(self):
        return self.n

    @property
    def matrix(self):
        return self.A

    @property
    def lipschitz(self):
        return self.L

    @property
    def noise_variance(self):
        return self.sigma2

    @property
    def sparsity(self):
        return self.p

    @property
    def signal_variance(self):
        return 1.0

    @property
    def pseudo_inverse(self):
        return self.W

    def sample(self, key, batch_size):
        support_key, value_key, noise_key = jax.random.split(key, 3)
        support = jax.random.bernoulli(support_key, self.p, (batch_size, self.n))
        x = jnp.where(support, jax.random.normal(value_key, (batch_size, self.n), jnp.float32), 0.0)
        noise = jnp.sqrt(self.sigma2) * jax.random.normal(noise_key, (batch_size, self.m), jnp.float32)
        return {"y": x @ self.A.T + noise, "target": x}

    def describe(self):
        return {"name": self.name, "dim": self.n, "n": self.n, "m": self.m, "p": self.p, "snr_db": self.snr_db,
                "noise_variance": self.sigma2, "lipschitz": self.L, "matrix": self.source}
