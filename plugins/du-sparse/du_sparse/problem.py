"""The ``sparse-recovery`` problem: y = A x + w with a Bernoulli-Gaussian x, A shared or drawn per instance."""

from __future__ import annotations

import abc
import dataclasses
import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from du_framework import MSE, NMSE_DB, LinearObservation, Problem, ProblemDataError, option
from du_framework import load_matrix

__all__ = ["BernoulliGaussianPrior", "SparseRecovery", "per_instance_lipschitz_bound"]

# Deviations t of the Davidson-Szarek bound used by the per-instance operator's step bound
# (see per_instance_lipschitz_bound).
_DEVIATIONS = 3.0


class BernoulliGaussianPrior(abc.ABC):
    """Capability: a Bernoulli-Gaussian signal observed in white Gaussian noise.

    Contract (with :class:`~du_framework.LinearObservation`, ``y = A x + w``):

    * every entry of ``x`` is independently ``b g`` with ``b ~ Bernoulli(sparsity)``
      and ``g ~ N(0, signal_variance)``;
    * ``w ~ N(0, noise_variance I)``, independent of ``x`` (and of ``A``);
    * the three values are host floats, fixed for the problem (the same for every
      instance). With an operator drawn per instance, ``noise_variance`` is the
      one every instance uses (a problem that sets it from an SNR uses the
      expected signal energy over the ensemble of operators).

    TISTA's MMSE shrinkage and error-variance estimates are built on these values.
    """

    @property
    @abc.abstractmethod
    def sparsity(self) -> float:
        """Probability ``p`` in ``(0, 1]`` that an entry of ``x`` is nonzero."""

    @property
    @abc.abstractmethod
    def signal_variance(self) -> float:
        """Variance (``> 0``) of a nonzero entry of ``x``."""

    @property
    @abc.abstractmethod
    def noise_variance(self) -> float:
        """Per-entry variance (``>= 0``) of the noise ``w``."""


def per_instance_lipschitz_bound(n: int, m: int) -> float:
    """Step bound for an ``m x n`` Gaussian matrix with unit-norm columns, drawn afresh.

    ``min(n, (1 + sqrt(n/m) + t/sqrt(m))^2)`` with ``t = 3``. For a matrix ``G``
    with i.i.d. ``N(0, 1/m)`` entries, Davidson and Szarek's bound gives
    ``P(||G||_2 > 1 + sqrt(n/m) + t/sqrt(m)) <= exp(-t^2/2)`` (about 1 % at
    ``t = 3``); normalising the columns to unit length removes the spread of their
    norms and in practice only tightens ``||A||_2`` around ``1 + sqrt(n/m)``
    (the tests check the bound empirically on thousands of draws). ``n`` is a
    certain bound: with unit columns ``||A||_2^2 <= ||A||_F^2 = n``.
    """
    return float(min(n, (1 + math.sqrt(n / m) + _DEVIATIONS / math.sqrt(m)) ** 2))


class SparseRecovery(Problem, LinearObservation, BernoulliGaussianPrior):
    """Recover a sparse ``x`` from ``y = A x + w``.

    ``x_i = b_i g_i`` with ``b_i ~ Bernoulli(p)``, ``g_i ~ N(0, 1)``. ``A`` (``m x n``):

    * ``operator = "shared"`` (default): one fixed matrix, i.i.d. Gaussian with
      columns normalised to unit length (from ``seed``) or a user's ``.npy``
      (full row rank). ``lipschitz_bound()`` is ``||A||_2^2`` and the
      pseudo-inverse ``A^T (A A^T)^{-1}`` is formed once on the host in float64.
    * ``operator = "per-instance"``: every instance draws its own Gaussian ``A``
      with unit-norm columns inside :meth:`sample` (``instance["A"]``, shape
      ``(batch, m, n)``); ``seed`` is unused. ``lipschitz_bound()`` is
      :func:`per_instance_lipschitz_bound` (a bound that holds with high
      probability over the ensemble) and the pseudo-inverse is computed per
      instance in the program.

    The noise variance gives the requested SNR, ``E||A x||^2 / E||w||^2 = 10^(snr_db / 10)``:
    ``sigma^2 = p ||A||_F^2 / (m 10^(snr_db/10))``; for the per-instance operator
    ``||A||_F^2 = n`` for every draw, so the expected and the per-instance values agree.
    Metrics: the NMSE in dB (primary) and the MSE.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        n: int = option(500, ge=1, help="length of x (columns of A)")
        m: int = option(250, ge=1, help="length of y (rows of A)")
        p: float = option(0.1, gt=0, le=1, help="probability that an entry of x is nonzero")
        snr_db: float = option(40.0, help="signal-to-noise ratio E||A x||^2 / E||w||^2 in dB")
        seed: int = option(0, ge=0, help="seed of the shared Gaussian matrix A (unused with matrix or per-instance)")
        matrix: str = option("", help="path of a .npy file holding A (m x n, full row rank); empty: draw A")
        operator: Literal["shared", "per-instance"] = option(
            "shared", help="one A for every instance, or a fresh Gaussian A (unit columns) drawn per instance")

        def validate(self):
            if self.matrix and self.operator == "per-instance":
                raise ValueError("problem.matrix gives one shared A; it cannot be used with "
                                 "problem.operator = 'per-instance' (leave matrix empty or use 'shared')")

    name = "sparse-recovery"
    description = ("y = A x + w, Bernoulli-Gaussian x, Gaussian A with unit columns (shared or per instance), "
                   "noise at a set SNR")
    metrics = (NMSE_DB, MSE)

    def __init__(self, matrix: np.ndarray | None, *, p: float, snr_db: float, source: str = "generated",
                 shape: tuple[int, int] | None = None):
        """Build the problem from a shared ``matrix``, or with ``matrix=None`` and ``shape=(m, n)``
        for a Gaussian operator drawn per instance.

        Raises:
            ProblemDataError: ``A`` lacks full row rank (per instance: ``m > n``).
        """
        self.p = float(p)
        self.snr_db = float(snr_db)
        self.source = source
        if matrix is None:
            m, n = shape
            if m > n:
                raise ProblemDataError(f"A drawn per instance ({m} x {n}) must have full row rank for the "
                                       f"pseudo-inverse A^T (A A^T)^-1: need m <= n")
            self.n, self.m = int(n), int(m)
            self.per_instance_operator = True
            # Unit columns: ||A||_F^2 = n for every draw.
            self.sigma2 = float(p * n / (m * 10 ** (snr_db / 10)))
            self.L = per_instance_lipschitz_bound(self.n, self.m)
            self.A = None
            self.W = None
            return
        matrix = np.asarray(matrix, np.float64)
        m, n = matrix.shape
        gram_rows = matrix @ matrix.T
        if np.linalg.matrix_rank(gram_rows) < m:
            raise ProblemDataError(f"A ({m} x {n}) must have full row rank for the pseudo-inverse A^T (A A^T)^-1")
        self.n, self.m = int(n), int(m)
        self.per_instance_operator = False
        # E||A x||^2 = p ||A||_F^2 for unit-variance nonzeros.
        self.sigma2 = float(p * np.sum(matrix**2) / (m * 10 ** (snr_db / 10)))
        self.L = float(np.linalg.norm(matrix, 2) ** 2)
        # Cast on the host and transfer: jnp.asarray would compile an eager operation per shape.
        self.A = jax.device_put(matrix.astype(np.float32))
        self.W = jax.device_put((matrix.T @ np.linalg.inv(gram_rows)).astype(np.float32))

    @classmethod
    def from_options(cls, options: "SparseRecovery.Options") -> "SparseRecovery":
        if options.operator == "per-instance":
            return cls(None, p=options.p, snr_db=options.snr_db, shape=(options.m, options.n),
                       source="Gaussian, unit columns, drawn per instance")
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

    # -- LinearObservation ------------------------------------------------------------------

    def operator(self, instance=None):
        if self.per_instance_operator:
            if instance is None:
                raise ValueError(f"problem {self.name!r} draws A per instance: operator() needs the instance")
            return instance["A"]
        return self.A

    def lipschitz_bound(self):
        return self.L

    def pseudo_inverse(self, instance=None):
        if self.per_instance_operator:
            return super().pseudo_inverse(instance)
        return self.W  # formed once on the host in float64

    # -- BernoulliGaussianPrior -------------------------------------------------------------

    @property
    def sparsity(self):
        return self.p

    @property
    def signal_variance(self):
        return 1.0

    @property
    def noise_variance(self):
        return self.sigma2

    # -- Problem ----------------------------------------------------------------------------

    def sample(self, key, batch_size):
        if self.per_instance_operator:
            support_key, value_key, noise_key, matrix_key = jax.random.split(key, 4)
        else:
            support_key, value_key, noise_key = jax.random.split(key, 3)
        support = jax.random.bernoulli(support_key, self.p, (batch_size, self.n))
        x = jnp.where(support, jax.random.normal(value_key, (batch_size, self.n), jnp.float32), 0.0)
        noise = jnp.sqrt(self.sigma2) * jax.random.normal(noise_key, (batch_size, self.m), jnp.float32)
        if not self.per_instance_operator:
            return {"y": x @ self.A.T + noise, "target": x}
        matrix = jax.random.normal(matrix_key, (batch_size, self.m, self.n), jnp.float32)
        matrix = matrix / jnp.linalg.norm(matrix, axis=1, keepdims=True)
        return {"y": jnp.einsum("bmn,bn->bm", matrix, x) + noise, "target": x, "A": matrix}

    def describe(self):
        return {"name": self.name, "dim": self.n, "n": self.n, "m": self.m, "p": self.p, "snr_db": self.snr_db,
                "noise_variance": self.sigma2, "lipschitz": self.L,
                "operator": "per-instance" if self.per_instance_operator else "shared", "matrix": self.source}
