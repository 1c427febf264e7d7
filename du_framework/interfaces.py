"""The contract: :class:`Problem`, :class:`UnfoldedSolver`, :class:`TrainingSchedule`.

* A :class:`Problem` samples batches of random instances and declares its
  metrics; its structure is offered through capabilities
  (:mod:`du_framework.capabilities`).
* An :class:`UnfoldedSolver` is a Flax NNX module: an iteration unrolled over a
  fixed depth whose per-iteration constants may be learned
  (:mod:`du_framework.params`).
* A :class:`TrainingSchedule` is data: a list of :class:`Stage` records; the
  engine (:mod:`du_framework.engine`) runs them.
* An :class:`Experiment` is a named, ready-to-run configuration a plugin ships.

Conventions the engine relies on:

* An instance is a dict of arrays whose leading axis is the batch; it holds at
  least ``"target"`` (what the estimate is compared with, shape ``(batch, dim)``).
* Every learned parameter is stacked over iterations along its leading axis:
  iteration ``k`` (0-based) uses slot ``k % P``. ``P == depth`` gives one value
  per iteration, ``P == T`` a period ``T``, ``P == 1`` one shared value.
"""

from __future__ import annotations

import abc
import dataclasses
import weakref
from typing import Any, ClassVar, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .capabilities import QuadraticProblem, capability_name
from .errors import IncompatibleProblemError
from .metrics import MSE, Metric, squared_error
from .options import NoOptions
from .params import constrained, learned_variables

__all__ = [
    "Instance",
    "Problem",
    "UnfoldedSolver",
    "QuadraticSolver",
    "QuadraticContext",
    "TrainingSchedule",
    "Stage",
    "Experiment",
    "flat_params",
    "check_fit",
]

Instance = dict[str, jax.Array]


class Problem(nnx.Pytree, abc.ABC):
    """A distribution of problem instances and the metrics that score an estimate.

    A problem is a JAX pytree (through ``nnx.Pytree``): array attributes (an
    operator matrix, say) are leaves and travel into jitted code as arguments;
    other attributes (sizes, floats, strings) are static and must be hashable.

    Attributes:
        name: registry name (class attribute).
        Options: frozen dataclass of the options a configuration may set
            (declared with :func:`du_framework.option`).
        description: one line shown by ``unfold list``.
        metrics: the :class:`~du_framework.Metric` values reported for every
            iteration (default: the MSE).
        primary_metric: the metric tables and plots show (default: the first).
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    description: ClassVar[str] = ""
    metrics: ClassVar[tuple[Metric, ...]] = (MSE,)
    primary_metric: ClassVar[str] = ""

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

    def loss(self, estimate: jax.Array, instance: Instance) -> jax.Array:
        """Scalar training loss (default: squared error summed over coordinates, mean over the batch).

        Separate from the reported metrics; ``train.loss`` may name a metric instead.
        """
        return jnp.mean(squared_error(estimate, instance))

    def describe(self) -> dict[str, Any]:
        """JSON-friendly facts about this instance of the problem (for results files)."""
        return {"name": self.name, "dim": self.dim}

    def figures(self, solvers: dict[str, Any]) -> dict[str, Any]:
        """``{file stem: matplotlib Figure}`` of this problem's own kind for ``{label: trained solver}`` (default:
        none); ``unfold compare`` saves each beside its other figures (an imaging problem draws the restored
        images). Import matplotlib inside the method: the kernel never loads it."""
        del solvers
        return {}

    def held_out(self) -> "Problem":
        """The problem whose instances evaluation draws (default: ``self``): a problem built from finite data
        (images, say) returns a copy that samples only data kept apart from training."""
        return self

    @classmethod
    def primary(cls) -> str:
        """Name of the primary metric."""
        return cls.primary_metric or cls.metrics[0].name


def _requirements(requires: Any) -> tuple[type, ...]:
    if requires is object or requires is None:
        return ()
    return tuple(requires) if isinstance(requires, (tuple, list)) else (requires,)


class UnfoldedSolver(nnx.Module, abc.ABC):
    """An iterative method unrolled over ``depth`` iterations, as a Flax NNX module.

    The engine drives a solver through four pure methods inside ``lax.scan``::

        context = solver.prepare(problem, instance)          # once per batch
        state = solver.init_state(problem, context)          # x^(0) and friends
        state = solver.step(problem, context, state, k)      # k = 0 .. depth-1
        x = solver.estimate(state)

    Contexts and states are pytrees of declared types (a ``NamedTuple`` or an
    array); ``step`` must return a state of exactly the structure, shapes and
    dtypes of ``init_state``'s (the engine checks it once and names the solver).

    Learned constants are :func:`du_framework.learned` parameters (each carries
    its constraint, initial value, learning-rate group and doc). A solver with
    none is a classical method, evaluated like the others and "trained" for free;
    it reports its fixed constants through :meth:`constants`.

    Subclasses are constructed as ``Solver(options, problem=problem, depth=depth)``
    and call ``super().__init__(options, problem=problem, depth=depth)`` first.

    Attributes:
        name: registry name (class attribute).
        Options: frozen dataclass of the options a configuration may set.
        requires: the capability class a problem must have, or a tuple of them
            (all required); ``()`` for any problem.
        description: one line shown by ``unfold list``.
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    requires: ClassVar[Any] = ()
    description: ClassVar[str] = ""

    def __init__(self, options: Any, *, problem: Problem, depth: int):
        check_fit(type(self), problem)
        if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
            raise ValueError(f"depth must be a positive integer, got {depth!r}")
        self.options = options
        self.depth = int(depth)

    @classmethod
    def capabilities(cls) -> tuple[type, ...]:
        """The capability classes a problem must have (all of them)."""
        return _requirements(cls.requires)

    @classmethod
    def fits(cls, problem: Problem) -> bool:
        """Whether ``problem`` has every capability this solver requires."""
        return all(isinstance(problem, capability) for capability in cls.capabilities())

    @classmethod
    def check_problem(cls, problem: Problem) -> None:
        """Raise :class:`IncompatibleProblemError` unless ``problem`` fits, naming both sides."""
        missing = [c for c in cls.capabilities() if not isinstance(problem, c)]
        if missing:
            raise IncompatibleProblemError(
                f"solver {cls.name!r} needs a problem with capability {capability_name(tuple(missing))}, "
                f"but problem {getattr(problem, 'name', '?')!r} ({type(problem).__name__}) does not provide it; "
                f"problems that fit derive from "
                + " and ".join(f"{c.__module__.split('.')[0]}.{c.__name__}" for c in missing))

    def prepare(self, problem: Problem, instance: Instance) -> Any:
        """Per-batch precomputation shared by all iterations (default: ``None``)."""
        return None

    @abc.abstractmethod
    def init_state(self, problem: Problem, context: Any) -> Any:
        """The iteration state before the first iteration (an array or a NamedTuple of arrays)."""

    @abc.abstractmethod
    def step(self, problem: Problem, context: Any, state: Any, k: jax.Array) -> Any:
        """One iteration ``k`` (a traced int32, 0-based); returns a state of the same structure."""

    def estimate(self, state: Any) -> jax.Array:
        """The estimate ``x`` held in ``state`` (default: ``state`` itself, or its field ``x``)."""
        return state if isinstance(state, jax.Array) else state.x

    def has_fixed_point(self) -> bool:
        """Whether every iteration applies one map ``T(x; params)`` (``step`` does not depend on ``k``), whose
        iterates approach a fixed point ``x* = T(x*)``: then ``train.backward = "implicit"`` may
        differentiate the fixed point instead of the iterations (default: False)."""
        return False

    def constants(self) -> dict[str, np.ndarray]:
        """Fixed constants a classical solver reports beside the learned ones (default: none)."""
        return {}

    def reference_values(self, problem: Problem) -> dict[str, dict[str, np.ndarray]]:
        """Reference lines for the parameter plot: ``{parameter: {label: values}}`` (default: none).

        For example DU-GD returns the Chebyshev steps of its period beside ``eta``.
        """
        return {}

    def param_names(self) -> list[str]:
        """Names of the learned parameters (attribute paths joined by '.')."""
        return list(learned_variables(self))

    @property
    def is_trainable(self) -> bool:
        """Whether the solver has any learned parameter."""
        return bool(self.param_names())

    def learned_parameters(self) -> dict[str, np.ndarray]:
        """The reported values by name: learned parameters in constrained form, then :meth:`constants`.

        Parameters declared with ``report=False`` (large learned matrices) are left out.
        """
        values = {name: np.asarray(constrained(variable), np.float64)
                  for name, variable in learned_variables(self).items()
                  if getattr(variable, "report", True)}
        values.update({name: np.atleast_1d(np.asarray(value, np.float64)) for name, value in self.constants().items()})
        return values


# Problems already checked against solver classes: {id(problem): (weak reference to it, {solver classes})}.
_FITTED: dict[int, tuple[Any, set[type]]] = {}


def check_fit(solver: "UnfoldedSolver | type[UnfoldedSolver]", problem: Problem) -> None:
    """:meth:`UnfoldedSolver.check_problem` once per (solver class, problem instance).

    Whether a problem fits depends only on the solver's class and the problem's
    capabilities, so a later check of the same pair (the constructor, then
    training, then evaluation, of any solver of that class) is free. The problem
    is held weakly: the memo ends with it.

    Raises:
        IncompatibleProblemError: the problem lacks a capability the solver requires.
    """
    cls = solver if isinstance(solver, type) else type(solver)
    key = id(problem)
    entry = _FITTED.get(key)
    if entry is not None and entry[0]() is problem and cls in entry[1]:
        return
    cls.check_problem(problem)
    if entry is None or entry[0]() is not problem:
        try:
            ref = weakref.ref(problem, lambda dead, key=key: _forget(key, dead))
        except TypeError:  # not weakly referenceable: checked every time
            return
        entry = _FITTED[key] = (ref, set())
    entry[1].add(cls)


def _forget(key: int, dead: Any) -> None:
    entry = _FITTED.get(key)
    if entry is not None and entry[0] is dead:
        del _FITTED[key]


def flat_params(module: nnx.Module) -> dict[str, jax.Array]:
    """A module's raw ``nnx.Param`` arrays keyed by dotted attribute path."""
    return {name: variable[...] for name, variable in learned_variables(module).items()}


class QuadraticContext(NamedTuple):
    """Context of :class:`QuadraticSolver`: the linear term ``b`` per instance."""

    b: jax.Array


class QuadraticSolver(UnfoldedSolver):
    """Base for solvers of a :class:`QuadraticProblem` that start from ``x^(0) = 0``.

    The context is a :class:`QuadraticContext` and :meth:`gradient` gives
    ``H x - b``; subclasses write only ``step`` (and ``__init__`` for parameters).
    """

    requires: ClassVar[Any] = QuadraticProblem

    def prepare(self, problem: QuadraticProblem, instance: Instance) -> QuadraticContext:
        return QuadraticContext(problem.linear_term(instance))

    def init_state(self, problem: QuadraticProblem, context: QuadraticContext) -> Any:
        return jnp.zeros_like(context.b)

    @staticmethod
    def gradient(problem: QuadraticProblem, context: QuadraticContext, x: jax.Array) -> jax.Array:
        """``H x - b``, the gradient of the quadratic at ``x``."""
        return problem.hessian_apply(x) - context.b


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of a training schedule.

    Attributes:
        active_depth: number of unrolled iterations whose output is scored (1..depth).
        steps: optimiser steps in this stage.
        train: ``"all"`` trains every parameter slot used by the active iterations;
            ``"newest"`` only the slot used by the last active iteration.
        lr_scale: multiplies every learning rate during this stage.
        restart_optimizer: reset the optimiser state at the start of this stage
            (moments, and the step count, so a learning-rate schedule starts again);
            the parameters are kept.
    """

    active_depth: int
    steps: int
    train: Literal["all", "newest"] = "all"
    lr_scale: float = 1.0
    restart_optimizer: bool = False

    def __post_init__(self):
        for key in ("active_depth", "steps"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"Stage.{key} must be an integer, got {value!r}")
        if self.active_depth < 1:
            raise ValueError(f"Stage.active_depth must be >= 1, got {self.active_depth}")
        if self.steps < 0:
            raise ValueError(f"Stage.steps must be >= 0, got {self.steps}")
        if self.train not in ("all", "newest"):
            raise ValueError(f"Stage.train must be 'all' or 'newest', got {self.train!r}")
        if not (isinstance(self.lr_scale, (int, float)) and np.isfinite(self.lr_scale) and self.lr_scale >= 0):
            raise ValueError(f"Stage.lr_scale must be a finite number >= 0, got {self.lr_scale!r}")
        if not isinstance(self.restart_optimizer, (bool, np.bool_)):
            raise ValueError(f"Stage.restart_optimizer must be true or false, got {self.restart_optimizer!r}")


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


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A ready-to-run configuration a plugin ships (``unfold compare --experiment NAME``).

    Attributes:
        name: registry name.
        config: the configuration as TOML text.
        description: one line shown by ``unfold list``.
        default: run it when ``unfold compare`` gets neither ``--config`` nor
            ``--experiment`` (at most one installed experiment should say so).
    """

    name: str
    config: str
    description: str = ""
    default: bool = False
