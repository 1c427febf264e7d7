"""Theory baselines for any problem with a known spectrum (``QuadraticProblem``).

- ``gd-chebyshev``: gradient descent with the Chebyshev step sizes of period T;
- ``cg``: conjugate gradient, the per-instance Krylov optimum;
- ``heavy-ball``: Polyak's momentum method with its optimal constant parameters.

None learns anything: they bound what a learned method can reach. Each reports
its fixed constants (``eta``; ``alpha`` and ``beta``) through ``constants()``.
"""

__version__ = "0.1.0"

from .solvers import CGState, ChebyshevGD, ConjugateGradient, HeavyBall, HeavyBallState

__all__ = ["ChebyshevGD", "ConjugateGradient", "HeavyBall", "CGState", "HeavyBallState"]
