"""Building a configuration's components from the registry: the problem, the schedule, the solvers (a
solver that does not fit the problem is refused before anything trains), a plugin's failure named."""

from __future__ import annotations

from ..errors import DUError, IncompatibleProblemError, PluginError
from ..interfaces import Problem, TrainingSchedule, UnfoldedSolver, check_fit
from ..options import options_to_dict
from ..registry import Registry, describe_component, get_registry
from .config import ExperimentConfig, SolverConfig, sweep_point_options

__all__ = ["build_problem", "build_schedule", "build_solver", "build_solvers", "build_sweep_problems",
           "describe_learning"]


def _constructed(build, what: str):
    """``build()``, with a plugin's unexpected exception turned into a message naming ``what``."""
    try:
        return build()
    except DUError:
        raise
    except MemoryError:
        raise PluginError(f"{what}: not enough memory to build it with these options; use smaller sizes") from None
    except Exception as error:  # noqa: BLE001 - a plugin's bug or an option it did not bound
        raise PluginError(f"{what} could not be built: {type(error).__name__}: {error}") from None


def build_problem(config: ExperimentConfig, registry: Registry | None = None) -> Problem:
    registry = registry or get_registry()
    cls = registry.problem(config.problem.name)
    return _constructed(lambda: cls.from_options(config.problem.options),
                        f"problem {describe_component(cls, 'problem')} with options "
                        f"{options_to_dict(config.problem.options)}")


def build_sweep_problems(config: ExperimentConfig, registry: Registry | None = None) -> list[Problem]:
    """The problem at each point of ``evaluation.sweep``: built from the configured options with the swept one
    set to the point's value (empty without a sweep)."""
    registry = registry or get_registry()
    cls = registry.problem(config.problem.name)
    return [_constructed(lambda options=options: cls.from_options(options),
                         f"problem {describe_component(cls, 'problem')} with options {options_to_dict(options)} "
                         f"(evaluation.sweep.{config.evaluation.sweep_option} = {value!r})")
            for value, options in zip(config.evaluation.sweep_values,
                                      sweep_point_options(config.problem, config.evaluation, registry))]


def build_schedule(config: ExperimentConfig, registry: Registry | None = None) -> TrainingSchedule:
    registry = registry or get_registry()
    return registry.schedule(config.train.schedule)(config.schedule_options)


def build_solver(entry: SolverConfig, problem: Problem, depth: int, registry: Registry | None = None) -> UnfoldedSolver:
    """Construct a solver, refusing a problem that lacks its capability."""
    registry = registry or get_registry()
    cls = registry.solver(entry.name)
    check_fit(cls, problem)
    return _constructed(lambda: cls(entry.options, problem=problem, depth=depth),
                        f"solver {describe_component(cls, 'solver')} labelled {entry.label!r} with options "
                        f"{options_to_dict(entry.options)} and depth {depth}")


def build_solvers(config: ExperimentConfig, problem: Problem,
                  registry: Registry | None = None) -> list[UnfoldedSolver]:
    """Every solver of ``config``, built before any training so a mismatch is refused at once.

    Raises:
        IncompatibleProblemError: a solver does not fit the problem; the message
            names the solvers of the configuration that do (for ``--only``).
    """
    registry = registry or get_registry()
    try:
        return [build_solver(entry, problem, config.train.depth, registry) for entry in config.solvers]
    except IncompatibleProblemError as error:
        fitting = [e.label for e in config.solvers if registry.solver(e.name).fits(problem)]
        hint = (f" The solvers of this configuration that fit it: --only {','.join(fitting)}" if fitting
                else " No solver of this configuration fits it.")
        raise IncompatibleProblemError(f"{error}.{hint}") from None


def describe_learning(name: str, problems: list[str], depth: int, registry: Registry | None = None) -> dict:
    """What solver ``name`` learns with its default options, built on the first of ``problems`` (installed
    problems it fits, with their default options) that it accepts, at ``depth``.

    Returns ``{"problem": name, "depth": depth, "parts": learned_parts(...), "parameters": count}``, or
    ``{"unavailable": why}`` when no problem fits or building fails (a listing must not fail on it).
    """
    from ..networks import learned_parts, parameter_count

    registry = registry or get_registry()
    cls, why = registry.solver(name), "no installed problem fits it"
    for problem_name in problems:
        problem_cls = registry.problem(problem_name)
        try:
            problem = _constructed(lambda: problem_cls.from_options(problem_cls.Options()),
                                   f"problem {describe_component(problem_cls, 'problem')}")
            solver = _constructed(lambda: cls(cls.Options(), problem=problem, depth=depth),
                                  f"solver {describe_component(cls, 'solver')}")
        except DUError as error:
            why = str(error)
            continue
        return {"problem": problem_name, "depth": depth, "parts": learned_parts(solver),
                "parameters": parameter_count(solver)}
    return {"unavailable": why}
