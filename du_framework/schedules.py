"""The shared training schedules, registered through the same hook as any plugin's.

* ``incremental``: stages t = 1..D; stage t trains the chain unrolled to t
  iterations, all parameters used so far, starting from those of stage t-1
  (Wadayama's incremental training).
* ``incremental-restart``: as ``incremental``, with a fresh optimiser state
  (moments, step count) at the start of every stage.
* ``incremental-frozen``: as ``incremental`` but only the parameter slot of the
  newest iteration trains; earlier ones stay as learned.
* ``end-to-end``: one stage at full depth D with ``D * steps_per_stage`` steps, so
  that it spends the same number of optimiser steps as the incremental schedules.
* ``layer-wise``: for t = 1..D, first the newest slot alone, then all slots with
  the learning rate scaled by ``finetune_lr_scale`` (LISTA/ALISTA style).
"""

from __future__ import annotations

import dataclasses

from .hookspecs import hookimpl
from .interfaces import Stage, TrainingSchedule
from .options import option

__all__ = ["Incremental", "IncrementalRestart", "IncrementalFrozen", "EndToEnd", "LayerWise"]


class Incremental(TrainingSchedule):
    name = "incremental"
    description = "stages t=1..D, all parameters used so far train (Wadayama's default)"

    def stages(self, depth: int, steps_per_stage: int) -> list[Stage]:
        return [Stage(t, steps_per_stage) for t in range(1, depth + 1)]


class IncrementalRestart(TrainingSchedule):
    name = "incremental-restart"
    description = "as incremental, with a fresh optimiser state at every stage"

    def stages(self, depth: int, steps_per_stage: int) -> list[Stage]:
        return [Stage(t, steps_per_stage, restart_optimizer=True) for t in range(1, depth + 1)]


class IncrementalFrozen(TrainingSchedule):
    name = "incremental-frozen"
    description = "stages t=1..D, only the newest iteration's parameters train"

    def stages(self, depth: int, steps_per_stage: int) -> list[Stage]:
        return [Stage(t, steps_per_stage, train="newest") for t in range(1, depth + 1)]


class EndToEnd(TrainingSchedule):
    name = "end-to-end"
    description = "full depth from the start, depth x steps_per_stage steps"

    def stages(self, depth: int, steps_per_stage: int) -> list[Stage]:
        return [Stage(depth, depth * steps_per_stage)]


class LayerWise(TrainingSchedule):
    @dataclasses.dataclass(frozen=True)
    class Options:
        finetune_lr_scale: float = option(0.1, gt=0, help="learning-rate factor of the all-slots half of each stage")

    name = "layer-wise"
    description = "per stage: newest iteration alone, then all with a decayed learning rate"

    def stages(self, depth: int, steps_per_stage: int) -> list[Stage]:
        stages = []
        for t in range(1, depth + 1):
            stages.append(Stage(t, steps_per_stage, train="newest"))
            stages.append(Stage(t, steps_per_stage, lr_scale=self.options.finetune_lr_scale))
        return stages


@hookimpl
def register_schedules(register):
    for schedule in (Incremental, IncrementalRestart, IncrementalFrozen, EndToEnd, LayerWise):
        register(schedule)
