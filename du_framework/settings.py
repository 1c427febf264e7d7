"""The run settings: the ``[train]`` and ``[evaluation]`` tables as one object each.

They sit below the registry (which checks that a schedule's options do not clash with
``[train]``) and the engine, which re-exports them as :mod:`du_framework.engine.settings`.

:class:`TrainSettings` travels whole from the configuration to the engine (no
argument is relayed by hand); :func:`du_framework.engine.train` takes one, and
keyword overrides for quick use in notebooks and tests::

    train(solver, problem, schedule, TrainSettings(steps_per_stage=10), key=0)
    train(solver, problem, schedule, steps_per_stage=10, key=0)      # the same
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

from .errors import nearest
from .options import option

__all__ = ["TrainSettings", "EvaluationSettings", "LOSS_WEIGHT_WORDS"]

LOSS_WEIGHT_WORDS = ("final", "all", "linear")  # the named forms of TrainSettings.loss_weights

_SEED_LIMIT = 2**32
_MAX_SEEDS = 4096


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """How to train (the ``[train]`` table, less the schedule's own options)."""

    schedule: str = option("incremental", help="training schedule by name (see unfold list)")
    depth: int = option(50, ge=1, le=100_000, help="unrolled iterations D")
    steps_per_stage: int = option(20, ge=1, le=10_000_000, help="optimiser steps per schedule stage")
    batch_size: int = option(100, ge=1, le=10_000_000, help="fresh training instances per optimiser step")
    seed: int = option(1, ge=0, lt=_SEED_LIMIT, help="seed of the training instances")
    seeds: int | list[int] = option(
        1, ge=0, lt=_SEED_LIMIT, help="training seeds of every learned solver: a count N (seed, seed+1, ..., "
                                      "seed+N-1) or a list of seeds; several train as one vmapped ensemble")
    optimizer: str = option("adam", help="optax optimiser by name (adam, adamw, sgd, rmsprop, lion, ...)")
    optimizer_options: dict[str, Any] = option(
        None, help="keyword options of the optimiser, e.g. { b1 = 0.9 } (learning rates come from the solver)")
    lr_schedule: str = option("constant", help="learning-rate schedule: constant, or an optax schedule by name "
                                               "(cosine_decay, exponential_decay, warmup_cosine_decay, ...)")
    lr_schedule_options: dict[str, Any] = option(
        None, help="the schedule's optax arguments, e.g. { decay_steps = 1000 }; it multiplies every group's "
                   "rate, so its peak_value (or else init_value) is 1 unless given")
    loss: str = option("", help="training loss: empty for the problem's own, or the name of one of its metrics")
    log_loss: bool = option(True, help="descend log(loss) (each stage keeps its minimiser)")
    loss_weights: str | list[float] = option(
        "final", ge=0, help="which iterations' losses are trained on: final (the last active one), all (their "
                            "mean), linear (iteration t weighs t), or D weights >= 0; renormalised over the active "
                            "iterations")
    chunk_size: int = option(256, ge=1, le=1_000_000, help="most optimiser steps per compiled call")
    remat: bool | int = option(False, ge=0, le=16, help="rematerialise: true (2 levels, ~2 sqrt(D) states) "
                                                        "or a number of checkpoint levels")
    unroll: bool | int = option(
        1, ge=1, le=100_000, help="iterations traced per body of the loop over the depth (lax.scan's unroll; with "
                                  "remat, of a block): 1 usually compiles fastest; true (all of them) leaves no "
                                  "loop over the iterations, faster on a 2-core CPU for steps with large "
                                  "intermediates (networks, FFTs, gathers), slower for small dense ones")
    devices: int = option(1, ge=0, help="split each batch over this many devices (0: all)")
    backward: Literal["full", "truncated", "implicit"] = option(
        "full", help="gradient of the loss: full (backpropagate through every active iteration), truncated "
                     "(through the last `truncate` active iterations only; memory grows with `truncate`) or "
                     "implicit (differentiate the fixed point the iterations approach, for solvers that have one; "
                     "memory independent of the depth)")
    truncate: int = option(0, ge=0, le=100_000, help="with backward = 'truncated': the iterations backpropagated "
                                                     "through (1..depth)")

    def __post_init__(self):
        for key in ("optimizer_options", "lr_schedule_options"):
            if getattr(self, key) is None:
                object.__setattr__(self, key, {})
        if isinstance(self.seeds, list):
            object.__setattr__(self, "seeds", tuple(self.seeds))
        if isinstance(self.loss_weights, list):
            object.__setattr__(self, "loss_weights", tuple(self.loss_weights))

    def validate(self) -> None:
        """Relations between fields (called by :func:`~du_framework.options.parse_options`)."""
        if isinstance(self.seeds, int):
            if not 1 <= self.seeds <= _MAX_SEEDS:
                raise ValueError(f"train.seeds = {self.seeds}: a count of seeds must be 1..{_MAX_SEEDS} "
                                 f"(or give a list of seeds, e.g. [1, 2, 3])")
        else:
            if not 1 <= len(self.seeds) <= _MAX_SEEDS:
                raise ValueError(f"train.seeds has {len(self.seeds)} entries: give 1..{_MAX_SEEDS} seeds")
            repeated = sorted({s for s in self.seeds if list(self.seeds).count(s) > 1})
            if repeated:
                raise ValueError(f"train.seeds repeats {', '.join(map(str, repeated))}: each seed would train "
                                 f"the same run twice; give distinct seeds")
        self._validate_loss_weights()
        self._validate_backward()

    def _validate_backward(self) -> None:
        if self.backward == "full":
            if self.truncate:
                raise ValueError(f"train.truncate = {self.truncate} applies only with train.backward = 'truncated' "
                                 f"(train.backward is 'full')")
            return
        if self.backward == "implicit":
            if self.truncate or self.remat:
                raise ValueError("train.backward = 'implicit' stores no iteration: train.truncate and train.remat "
                                 "do not apply (leave them 0 and false)")
            return
        if not 1 <= self.truncate <= self.depth:
            raise ValueError(f"train.truncate = {self.truncate}: with train.backward = 'truncated' give the "
                             f"iterations to backpropagate through, 1..{self.depth} (train.depth)")
        if self.remat:
            raise ValueError("train.backward = 'truncated' and train.remat do not combine: a truncated gradient "
                             "stores only its last train.truncate iterations already; set remat = false")

    def truncation(self) -> int | None:
        """The ``truncate`` argument of :func:`~du_framework.engine.unroll`: ``None`` for a full backward pass."""
        return self.truncate if self.backward == "truncated" else None

    def implicit(self) -> bool:
        """Whether the gradient is taken at the fixed point (``backward = "implicit"``)."""
        return self.backward == "implicit"

    def _validate_loss_weights(self) -> None:
        """A known word, or a non-empty list of finite weights >= 0, not all zero (its length, one weight
        per iteration, is checked by the engine against the solver's depth)."""
        weights = self.loss_weights
        if isinstance(weights, str):
            if weights not in LOSS_WEIGHT_WORDS:
                hint = nearest(weights, LOSS_WEIGHT_WORDS)
                raise ValueError(f"train.loss_weights = {weights!r} is not one of {', '.join(LOSS_WEIGHT_WORDS)}"
                                 + (f" (did you mean {hint!r}?)" if hint else "")
                                 + "; or give one weight >= 0 per iteration, e.g. [0.1, 0.2, 0.7] for D = 3")
            return
        if not weights:
            raise ValueError("train.loss_weights is an empty list: give one weight >= 0 per iteration (D of them), "
                             "or 'final', 'all' or 'linear'")
        for t, weight in enumerate(weights, 1):
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < math.inf:
                raise ValueError(f"train.loss_weights[{t - 1}] (iteration {t}) = {weight!r}: every weight must be "
                                 f"a finite number >= 0")
        if not any(weights):
            raise ValueError(f"train.loss_weights are all zero ({len(weights)} weights): at least one iteration "
                             f"must carry weight; use 'final' to train on the last one")

    def seed_list(self) -> tuple[int, ...]:
        """The training seeds: ``seeds`` as a list, or ``seed, seed+1, ...`` for a count."""
        if isinstance(self.seeds, int):
            return tuple((self.seed + i) % _SEED_LIMIT for i in range(self.seeds))
        return tuple(int(s) for s in self.seeds)

    def replace(self, **changes: Any) -> "TrainSettings":
        """A copy with ``changes`` (unknown names raise ``TypeError`` naming them)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise TypeError(f"unknown training setting(s) {', '.join(unknown)}; valid: "
                            f"{', '.join(f.name for f in dataclasses.fields(self))}")
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class EvaluationSettings:
    """The ``[evaluation]`` table: fresh instances shared by every solver."""

    batch_size: int = option(100, ge=1, le=10_000_000, help="instances per evaluation batch")
    batches: int = option(10, ge=1, le=1_000_000, help="evaluation batches")
    seed: int = option(2026, ge=0, lt=_SEED_LIMIT, help="seed of the evaluation instances (disjoint from training)")
    table_iterations: list[int] = option(
        None, ge=1, help="iterations the printed table and reports show, increasing, e.g. [1, 5, 10] "
                         "(default: chosen from the depth)")
    target_errors: int | None = option(
        None, ge=1, help="evaluate batch after batch until the primary metric (one that counts errors, a BER) "
                         "has this many errors after the final iteration, or max_batches (default: the fixed "
                         "number of batches)")
    max_batches: int = option(1000, ge=1, le=1_000_000, help="most evaluation batches with target_errors")
    sweep: dict[str, list[Any]] = option(
        None, help="evaluate every solver at each value of one problem option, the problem rebuilt for each, "
                   "e.g. { snr_db = [0, 2, 4, 6] } (training is unchanged)")

    def __post_init__(self):
        object.__setattr__(self, "table_iterations", tuple(self.table_iterations or ()))
        object.__setattr__(self, "sweep", {str(k): tuple(v) for k, v in (self.sweep or {}).items()})

    def validate(self) -> None:
        """Relations between fields (called by :func:`~du_framework.options.parse_options`)."""
        chosen = list(self.table_iterations)
        if any(isinstance(t, bool) or not isinstance(t, int) for t in chosen):
            raise ValueError(f"evaluation.table_iterations = {chosen}: give whole iterations, e.g. [1, 5, 10]")
        if chosen != sorted(set(chosen)):
            raise ValueError(f"evaluation.table_iterations = {chosen}: give distinct iterations in increasing "
                             f"order, e.g. {sorted(set(chosen))}")
        self._validate_sweep()

    def _validate_sweep(self) -> None:
        """One option, at least one value, no value twice (the option itself is checked against the problem
        where the configuration is built)."""
        if len(self.sweep) > 1:
            raise ValueError(f"evaluation.sweep names {len(self.sweep)} options ({', '.join(self.sweep)}): a sweep "
                             f"varies one problem option; keep one of them, e.g. "
                             f"{{ {next(iter(self.sweep))} = [...] }}")
        for name, values in self.sweep.items():
            if not values:
                raise ValueError(f"evaluation.sweep.{name} is an empty list: give the values of {name} to evaluate "
                                 f"at, e.g. {{ {name} = [0, 2, 4, 6] }}")
            shown = [repr(v) for v in values]
            repeated = sorted({v for v in shown if shown.count(v) > 1})
            if repeated:
                raise ValueError(f"evaluation.sweep.{name} repeats {', '.join(repeated)}: give each value once")

    @property
    def sweep_option(self) -> str | None:
        """The swept problem option, or ``None`` without a sweep."""
        return next(iter(self.sweep), None)

    @property
    def sweep_values(self) -> tuple:
        """The values of the swept option (empty without a sweep)."""
        return next(iter(self.sweep.values()), ())
