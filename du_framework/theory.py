"""Closed-form baselines from the theory of first-order methods on quadratics."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["chebyshev_steps", "gd_contraction", "best_constant_step", "polyak_parameters", "chebyshev_period_factor"]


def chebyshev_steps(mu_min: float, mu_max: float, period: int) -> np.ndarray:
    """Chebyshev step sizes for a spectrum in ``[mu_min, mu_max]`` and period ``T``.

    ``eta_k = 1 / ((mu_max + mu_min)/2 + (mu_max - mu_min)/2 cos((2k+1) pi / (2T)))``,
    k = 0..T-1 (Takabe and Wadayama, arXiv:2001.05142): the reciprocals of the
    roots of the degree-T Chebyshev polynomial mapped onto the spectrum.
    """
    if period < 1:
        raise ValueError(f"period must be >= 1, got {period}")
    if not 0 < mu_min <= mu_max:
        raise ValueError(f"need 0 < mu_min <= mu_max, got {mu_min}, {mu_max}")
    k = np.arange(period)
    return 1.0 / ((mu_max + mu_min) / 2 + (mu_max - mu_min) / 2 * np.cos((2 * k + 1) * np.pi / (2 * period)))


def best_constant_step(mu_min: float, mu_max: float) -> float:
    """The constant step ``2 / (mu_min + mu_max)`` that minimises GD's worst-case rate."""
    return 2.0 / (mu_min + mu_max)


def gd_contraction(mu_min: float, mu_max: float) -> float:
    """Per-iteration error contraction ``(kappa - 1)/(kappa + 1)`` of GD with the best constant step."""
    kappa = mu_max / mu_min
    return (kappa - 1) / (kappa + 1)


def polyak_parameters(mu_min: float, mu_max: float) -> tuple[float, float]:
    """Polyak's optimal heavy-ball step and momentum for a spectrum in ``[mu_min, mu_max]``.

    ``alpha = 4 / (sqrt(mu_max) + sqrt(mu_min))^2``,
    ``beta = ((sqrt(kappa) - 1) / (sqrt(kappa) + 1))^2``.
    """
    alpha = 4.0 / (math.sqrt(mu_max) + math.sqrt(mu_min)) ** 2
    root = math.sqrt(mu_max / mu_min)
    return alpha, ((root - 1) / (root + 1)) ** 2


def chebyshev_period_factor(mu_min: float, mu_max: float, period: int) -> float:
    """Worst-case error factor of one whole period of Chebyshev steps: ``1 / T_T((kappa+1)/(kappa-1))``.

    ``T_T`` is the Chebyshev polynomial of the first kind, ``cosh(T arccosh(s))`` for ``s > 1``.
    """
    sigma = (mu_max + mu_min) / (mu_max - mu_min)
    return 1.0 / math.cosh(period * math.acosh(sigma))
