"""Make installed-looking plugin distributions in a temporary directory.

A ``NAME.dist-info`` folder with ``METADATA`` and ``entry_points.txt`` beside a
module on ``sys.path`` is an installed distribution to ``importlib.metadata``,
exactly as pip leaves one.
"""

import textwrap
from pathlib import Path


def make_distribution(root: Path, dist: str, entry_point: str, module: str, source: str) -> Path:
    """Write ``module.py`` (``source``, dedented) and a ``dist`` distribution whose entry point
    ``entry_point`` in the group ``du_framework`` names it; return ``root`` (put it on sys.path)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[du_framework]\n{entry_point} = {module}\n")
    return root


SOLVER_SOURCE = '''
    import dataclasses
    import numpy as np
    from du_framework import QuadraticSolver, hookimpl, learned, option, per_iteration

    class Richardson(QuadraticSolver):
        """x <- x - omega_t (H x - b): one learned relaxation per iteration."""

        @dataclasses.dataclass(frozen=True)
        class Options:
            init: float = option(0.01, help="initial relaxation omega_t")
            lr: float = option(1e-3, gt=0, help="learning rate of omega")

        name = "{name}"
        description = "test plugin solver"

        def __init__(self, options, *, problem, depth):
            super().__init__(options, problem=problem, depth=depth)
            self.omega = learned(np.full(depth, options.init), lr="lr", doc="relaxation omega_t")

        def step(self, problem, context, state, k):
            return state - per_iteration(self.omega, k) * self.gradient(problem, context, state)

    @hookimpl
    def register_solvers(register):
        register(Richardson)
'''


PROBLEM_AND_SCHEDULE_SOURCE = '''
    import dataclasses
    import jax
    import jax.numpy as jnp
    from du_framework import Problem, QuadraticProblem, Stage, TrainingSchedule, hookimpl, option

    class DiagonalQuadratic(Problem, QuadraticProblem):
        """H = diag(linspace(1, kappa, n)), b ~ N(0, I), target = H^-1 b."""

        @dataclasses.dataclass(frozen=True)
        class Options:
            n: int = option(5, ge=1, help="dimension")
            kappa: float = option(10.0, ge=1, help="condition number")

        name = "diag-quadratic"
        description = "test plugin problem"

        def __init__(self, n, kappa):
            self.n, self.kappa = n, kappa
            self.diagonal = jnp.linspace(1.0, kappa, n, dtype=jnp.float32)

        @classmethod
        def from_options(cls, options):
            return cls(options.n, options.kappa)

        @property
        def dim(self):
            return self.n

        def sample(self, key, batch_size):
            b = jax.random.normal(key, (batch_size, self.n))
            return {"b": b, "target": b / self.diagonal[None, :]}

        def hessian_apply(self, x):
            return x * self.diagonal[None, :]

        def linear_term(self, instance):
            return instance["b"]

        def spectrum_bounds(self):
            return 1.0, float(self.kappa)

    class Halves(TrainingSchedule):
        name = "halves"
        description = "test plugin schedule: half the depth, then all of it"

        def stages(self, depth, steps_per_stage):
            return [Stage((depth + 1) // 2, steps_per_stage), Stage(depth, steps_per_stage)]

    @hookimpl
    def register_problems(register):
        register(DiagonalQuadratic)

    @hookimpl
    def register_schedules(register):
        register(Halves)
'''
