"""Tuning under an equal budget: an optuna search per solver, scored on validation instances.

For every solver of an experiment, :func:`tune` runs one optuna study with the
same number of trials and the same training budget (the configuration's
``[train]`` table: schedule, ``steps_per_stage``, ``batch_size``, depth):

* a learned solver's trial trains it with sampled hyperparameters: the rate of
  every learning-rate group (the options its parameters name with
  ``learned(..., lr=...)``), the optimiser (:data:`DEFAULT_OPTIMIZERS`),
  ``train.log_loss``, and every option it declares tunable
  (``option(..., tune=Tunable(...))``);
* a classical solver's trial only scores its tunable constants (nothing trains).

Every trial is scored on **validation** instances, drawn from
``fold_in(key(evaluation.seed), 2)``: disjoint from the training stream
(``fold_in(key(train.seed), 0)``, then the label) and from the evaluation
instances of ``unfold compare`` (``fold_in(key(evaluation.seed), 1)``). The
score is the chosen metric at the last iteration (``log10`` of it for a metric
plotted on a log axis), minimised or maximised as the metric says.

TPE (seeded) proposes the settings; a median pruner stops a trial whose training
loss at a stage boundary is worse than the median of earlier trials at that
stage. A trial whose training diverges, or whose validation score is not
finite, is recorded as pruned with its reason.

Trials go through an optuna storage: by default an SQLite file in the run
folder; an RDB URL (``sqlite:///...``, ``postgresql://...``, ``mysql://...``)
with a study name lets several processes or machines share the trials of one
search (each worker stops when the study holds ``trials`` trials).

The package, one concern a module: :mod:`.space` (the search space and ``--space``),
:mod:`.storage` (the optuna storage, opened with retries, and a study's identity),
:mod:`.trials` (the objective: one trial, trained and scored on validation
instances), :mod:`.grid` (the rate grid), :mod:`.results` (trial records and what
``tune.json``, ``tuned.toml`` and ``trials.csv`` hold) and :mod:`.study` (:func:`tune`).
"""

from __future__ import annotations

from .results import SolverSearch, TrialRecord, TuneResult, trials_csv
from .space import DEFAULT_OPTIMIZERS, OPTIMIZER_ALIASES, Dimension, check_selection, parse_space, search_space
from .storage import open_storage
from .study import tune
from .trials import VALIDATION_TAG, validation_key

__all__ = ["Dimension", "TrialRecord", "SolverSearch", "TuneResult", "DEFAULT_OPTIMIZERS", "OPTIMIZER_ALIASES",
           "VALIDATION_TAG", "validation_key", "search_space", "parse_space", "open_storage", "check_selection", "tune",
           "trials_csv"]
