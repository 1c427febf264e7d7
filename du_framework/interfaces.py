"""The three abstract interfaces of du-framework and the problem capabilities.

* :class:`Problem` samples batches of random instances and scores estimates.
* :class:`UnfoldedSolver` is a Flax NNX module: an iteration unrolled over a fixed
  depth whose per-iteration constants may be learned.
* :class:`TrainingSchedule` turns a depth into a list of :class:`Stage` records; the
  engine (:mod:`du_framework.engine`) runs them.

Capabilities are marker classes (:class:`QuadraticProblem`,
:class:`RegularizedLeastSquares`) that a problem inherits and a solver names in its
``requires`` attribute; the registry uses ``isinstance`` to decide which solvers fit
which problems.

Conventions the engine relies on:

* An instance is a dict pytree of arrays whose leading axis is the batch; it holds
  at least ``"target"`` (the vector the loss compares against, shape
  ``(batch, problem.dim)``).
* Every ``nnx.Param`` of a solver is stacked over iterations along its leading
  axis: iteration ``k`` (0-based) uses entry ``k % P`` where ``P`` is that axis'
  length. ``P == depth`` gives one value per iteration, ``P == T`` a period ``T``,
  ``P == 1`` a value shared by all iterations. :func:`per_iteration` reads it.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .errors import IncompatibleProblemError
from .options import NoOptions

__all__ = [
    "Instance",
    "Problem",
    "QuadraticProblem",
    "RegularizedLeastSquares",
    "UnfoldedSolver",
    "QuadraticSolver",
    "TrainingSchedule",
    "Stage",
    "per_iteration",
    "capability_name",
    "flat_params",
]

Instance = dict[str, jax.Array]


def per_iteration(stacked: jax.Array, k: jax.Array) -> jax.Array:
    """Entry of a per-iteration parameter used by iteration ``k`` (periodic)."""
    return stacked[k % stacked.shape[0]]


def capability_name(capability: type) -> str:
    """Human-readable name of a capability class (``object`` means none)."""
    return "any problem" if capability is object else capability.__name__


class Problem(nnx.Pytree, abc.ABC):
    """A distribution of problem instances and the loss that scores an estimate.

    A problem is a JAX pytree (through ``nnx.Pytree``): array attributes (an
    operator matrix, say) are leaves and travel into jitted code as arguments,
    other attributes (sizes, floats, strings) are static and must be hashable.

    Attributes:
        name: registry name (class attribute).
        Options: frozen dataclass of the options a configuration may set.
        description: one line shown by ``unfold list``.
        report_metric: what tables and plots show: ``"mse"`` or ``"nmse_db"``
            (``10 log10(MSE / mean ||target||^2)``); results files hold both.
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    description: ClassVar[str] = ""
    report_metric: ClassVar[Literal["mse", "nmse_db"]] = "mse"

    @classmethod
    @abc.abstractmethod
    def from_options(cls, options: Any) -> "Problem":
        """Build the problem from its validated ``Options``.

        Raises:
            ProblemDataError: user data (a matrix file, say) is unusable.
        """

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Length of the solution vector ``x`` (the last axis of ``target``)."""

    @abc.abstractmethod
    def sample(self, key: jax.Array, batch_size: int) -> Instance:
        """Draw ``batch_size`` independent instances from a PRNG key.

        Must be pure and traceable: the engine calls it inside ``jax.jit``.
        Returns a dict of arrays with leading axis ``batch_size`` holding at least
        ``"target"`` of shape ``(batch_size, dim)``.
        """

    def loss(self, estimate: jax.Array, target: jax.Array) -> jax.Array:
        """Scalar training loss: squared error summed over coordinates, mean over the batch."""
        return jnp.mean(jnp.sum(jnp.square(estimate - target), axis=-1))

    def describe(self) -> dict[str, Any]:
        """JSON-friendly facts about this instance of the problem (for results files)."""
        return {"name": self.name, "dim": self.dim}


class QuadraticProblem(abc.ABC):
    """Capability: minimise ``1/2 x^T H x - b^T x`` with ``H`` symmetric positive definite.

    ``H`` is the same for every instance; ``b`` varies per instance.
    """

    @abc.abstractmethod
    def hessian_apply(self, x: jax.Array) -> jax.Array:
        """``H x`` for a batch ``x`` of shape ``(batch, dim)``."""

    @abc.abstractmethod
    def linear_term(self, instance: Instance) -> jax.Array:
        """``b`` for each instance, shape ``(batch, dim)``."""

    @abc.abstractmethod
    def spectrum_bounds(self) -> tuple[float, float]:
        """``(mu_min, mu_max)``: extreme eigenvalues of ``H`` (host floats)."""


class RegularizedLeastSquares(QuadraticProblem):
    """Capability: ``f(x) = 1/2 ||y - A x||^2 + lam/2 ||x||^2`` with ``y = instance["y"]``.

    Then ``H = A^T A + lam I`` and ``b = A^T y``; solvers that learn the
    regularisation weight use ``gram`` (``A^T A``) and ``lam`` separately.
    """

    @property
    @abc.abstractmethod
    def matrix(self) -> jax.Array:
        """The operator ``A``, shape ``(m, dim)``."""

    @property
    @abc.abstractmethod
    def gram(self) -> jax.Array:
        """``A^T A``, shape ``(dim, dim)``."""

    @property
    @abc.abstractmethod
    def lam(self) -> float:
        """The regularisation weight ``lambda >= 0``."""

    def adjoint_observation(self, instance: Instance) -> jax.Array:
        """``A^T y`` per instance, shape ``(batch, dim)``."""
        return instance["y"] @ self.matrix

    def hessian_apply(self, x: jax.Array) -> jax.Array:
        return x @ self.gram + self.lam * x

    def linear_term(self, instance: Instance) -> jax.Array:
        return self.adjoint_observation(instance)


class UnfoldedSolver(nnx.Module, abc.ABC):
    """An iterative method unrolled over ``depth`` iterations, as a Flax NNX module.

    Learnable constants are ``nnx.Param`` arrays stacked over iterations along
    their leading axis (see the module docstring); a solver with no ``nnx.Param``
    is a classical method that the engine "trains" for free.

    The engine drives a solver through three pure methods inside ``lax.scan``::

        context = solver.prepare(problem, instance)      # once per batch
        state = solver.init_state(problem, context)      # x^(0) and friends
        state = solver.step(state, context, k)           # k = 0 .. depth-1
        x = solver.estimate(state)

    Subclasses are constructed as ``Solver(options, problem=problem, depth=depth)``
    and must keep ``self.depth``.

    Attributes:
        name: registry name (class attribute).
        Options: frozen dataclass of the options a configuration may set.
        requires: the capability class a problem must have (``object`` = any).
        description: one line shown by ``unfold list``.
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    requires: ClassVar[type] = object
    description: ClassVar[str] = ""

    def __init__(self, options: Any, *, problem: Problem, depth: int):
        self.check_problem(problem)
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive integer, got {depth!r}")
        self.options = options
        self.depth = depth

    @classmethod
    def fits(cls, problem: Problem) -> bool:
        """Whether ``problem`` has the capability this solver requires."""
        return isinstance(problem, cls.requires)

    @classmethod
    def check_problem(cls, problem: Problem) -> None:
        """Raise :class:`IncompatibleProblemError` unless ``problem`` fits."""
        if not cls.fits(problem):
            raise IncompatibleProblemError(
                f"solver {cls.name!r} needs a problem with capability "
                f"{capability_name(cls.requires)}, but problem {problem.name!r} "
                f"({type(problem).__name__}) does not provide it; problems that fit "
                f"must derive from du_framework.{cls.requires.__name__}"
            )

    def prepare(self, problem: Problem, instance: Instance) -> Any:
        """Per-batch precomputation shared by all iterations (default: the instance)."""
        return instance

    @abc.abstractmethod
    def init_state(self, problem: Problem, context: Any) -> Any:
        """The iteration state before the first iteration (a pytree of arrays)."""

    @abc.abstractmethod
    def step(self, state: Any, context: Any, k: jax.Array) -> Any:
        """One iteration ``k`` (a traced int32, 0-based); returns a state of the same shape."""

    def estimate(self, state: Any) -> jax.Array:
        """The estimate ``x`` held in ``state`` (default: ``state`` itself or ``state["x"]``)."""
        return state["x"] if isinstance(state, dict) else state

    def learning_rates(self) -> dict[str, float]:
        """Adam learning rate per learned parameter name (default: ``options.lr``)."""
        lr = getattr(self.options, "lr", 1e-3)
        return {name: lr for name in self.param_names()}

    def param_names(self) -> list[str]:
        """Names of the learned parameters (attribute paths joined by '.')."""
        return list(flat_params(self))

    @property
    def is_trainable(self) -> bool:
        """Whether the solver has any learned parameter."""
        return bool(self.param_names())

    def learned_parameters(self) -> dict[str, np.ndarray]:
        """Interpretable values of the learned parameters, by name (host arrays).

        Override where the stored parameter is a reparametrisation (for example
        ``lambda_t = |xi_t|``).
        """
        return {name: np.asarray(value) for name, value in flat_params(self).items()}


def flat_params(module: nnx.Module) -> dict[str, jax.Array]:
    """A module's ``nnx.Param`` values keyed by dotted attribute path."""

    def walk(tree: dict, prefix: str) -> dict[str, Any]:
        out = {}
        for key, value in tree.items():
            if isinstance(value, dict):
                out.update(walk(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out

    return walk(nnx.to_pure_dict(nnx.state(module, nnx.Param)), "")


class QuadraticSolver(UnfoldedSolver):
    """Base for solvers of a :class:`QuadraticProblem` that start from ``x^(0) = 0``.

    The context is ``{"problem": problem, "b": b}`` and :meth:`gradient` gives
    ``H x - b``; subclasses write only ``step`` (and ``__init__`` for parameters).
    """

    requires: ClassVar[type] = QuadraticProblem

    def prepare(self, problem: Problem, instance: Instance) -> dict[str, Any]:
        return {"problem": problem, "b": problem.linear_term(instance)}

    def init_state(self, problem: Problem, context: Any) -> Any:
        return jnp.zeros_like(context["b"])

    @staticmethod
    def gradient(x: jax.Array, context: dict[str, Any]) -> jax.Array:
        """``H x - b``, the gradient of the quadratic at ``x``."""
        return context["problem"].hessian_apply(x) - context["b"]


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of a training schedule.

    Attributes:
        active_depth: number of unrolled iterations whose output is scored (1..depth).
        steps: optimiser steps in this stage.
        train: ``"all"`` trains every parameter slot used by the active iterations;
            ``"newest"`` only the slot used by the last active iteration.
        lr_scale: multiplies every learning rate during this stage.
    """

    active_depth: int
    steps: int
    train: Literal["all", "newest"] = "all"
    lr_scale: float = 1.0

    def __post_init__(self):
        if self.active_depth < 1:
            raise ValueError(f"active_depth must be >= 1, got {self.active_depth}")
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if self.train not in ("all", "newest"):
            raise ValueError(f"train must be 'all' or 'newest', got {self.train!r}")


class TrainingSchedule(abc.ABC):
    """Data describing how to train: a list of stages for a given depth.

    Attributes:
        name: registry name (class attribute).
        Options: frozen dataclass of schedule-specific options (set under ``[train]``).
        description: one line shown by ``unfold list``.
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    description: ClassVar[str] = ""

    def __init__(self, options: Any = None):
        self.options = options if options is not None else self.Options()

    @abc.abstractmethod
    def stages(self, depth: int, steps_per_stage: int) -> list[Stage]:
        """The stages for a solver of ``depth`` iterations, in order."""
