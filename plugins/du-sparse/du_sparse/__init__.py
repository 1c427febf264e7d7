"""Sparse recovery ``y = A x + w`` (``A`` shared or drawn per instance) and its classical and unfolded solvers."""

__version__ = "0.1.0"

from .problem import BernoulliGaussianPrior, SparseRecovery, per_instance_lipschitz_bound
from .solvers import DUISTA, FISTA, ISTA, LISTA, TISTA, FISTAState, LinearContext, TISTAContext, soft_threshold

__all__ = ["SparseRecovery", "BernoulliGaussianPrior", "per_instance_lipschitz_bound", "ISTA", "FISTA", "DUISTA",
           "TISTA", "LISTA", "LinearContext", "FISTAState", "TISTAContext", "soft_threshold"]
