"""Sparse recovery ``y = A x + w`` and its classical and unfolded solvers."""

from .problem import SparseLinearInverseProblem, SparseRecovery
from .solvers import DUISTA, FISTA, ISTA, LISTA, TISTA, soft_threshold

__all__ = ["SparseRecovery", "SparseLinearInverseProblem", "ISTA", "FISTA", "DUISTA", "TISTA", "LISTA",
           "soft_threshold"]
