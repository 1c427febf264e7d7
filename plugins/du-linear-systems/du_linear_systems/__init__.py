"""Linear systems ``A x = b`` and relaxation methods built on the Jacobi fixed-point map."""

from .problem import JacobiSplitting, LinearSystem
from .solvers import DUPSOR, ChebyshevPSOR, Jacobi, SOR

__all__ = ["LinearSystem", "JacobiSplitting", "Jacobi", "SOR", "DUPSOR", "ChebyshevPSOR"]
