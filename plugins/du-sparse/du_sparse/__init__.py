"""Sparse recovery ``y = A x + w`` (``A`` shared or drawn per instance) and its classical and unfolded solvers."""

__version__ = "0.1.0"

from .problem import BernoulliGaussianPrior, SparseRecovery, per_instance_lipschitz_bound
from .admm import ADMM, DUADMM, ADMMContext, ADMMState, lasso_factor
from .alista import ALISTA, LISTACP, analytic_weight, kth_largest_magnitude, support_counts, support_selected_threshold
from .amp import AMP, LAMP, AMPContext, AMPState, iid_diagnosis
from .solvers import DUISTA, FISTA, ISTA, LISTA, TISTA, FISTAState, LinearContext, TISTAContext, soft_threshold

__all__ = ["SparseRecovery", "BernoulliGaussianPrior", "per_instance_lipschitz_bound", "ISTA", "FISTA", "DUISTA",
           "TISTA", "LISTA", "LinearContext", "FISTAState", "TISTAContext", "soft_threshold",
           "AMP", "LAMP", "AMPContext", "AMPState", "iid_diagnosis", "ADMM", "DUADMM", "ADMMContext", "ADMMState",
           "lasso_factor", "LISTACP", "ALISTA", "analytic_weight", "support_counts", "kth_largest_magnitude",
           "support_selected_threshold"]
