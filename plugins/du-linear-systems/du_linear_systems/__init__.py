"""Linear systems ``A x = b`` and relaxation methods built on the Jacobi fixed-point map."""

__version__ = "0.1.0"

from .problem import JacobiSplitting, LinearSystem
from .solvers import DUPSOR, DUSOR, SOR, ChebyshevPSOR, GaussSeidelSOR, Jacobi, JacobiContext, SweepContext

__all__ = ["LinearSystem", "JacobiSplitting", "Jacobi", "SOR", "DUPSOR", "ChebyshevPSOR", "GaussSeidelSOR", "DUSOR",
           "JacobiContext", "SweepContext"]
