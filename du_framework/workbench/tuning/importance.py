"""Which searched settings mattered: optuna's parameter importance, from a study's recorded trials.

:func:`param_importances` rebuilds a solver's study in memory from its
:class:`~du_framework.workbench.tuning.TrialRecord` (the complete trials, each with the
distribution its dimension declares) and asks
:func:`optuna.importance.get_param_importances` with optuna's default evaluator:
PED-ANOVA since optuna 5 (:class:`optuna.importance.PedAnovaImportanceEvaluator`),
fANOVA before (:class:`optuna.importance.FanovaImportanceEvaluator`, which needs
scikit-learn: without it, PED-ANOVA). A trial that did not sample a setting (the rate
grid's, the configuration as given) counts with the value it ran with, when that value
lies in the searched range.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

from .results import SolverSearch, TrialRecord
from .space import Dimension

__all__ = ["Importance", "param_importances", "importance_evaluator"]


@dataclasses.dataclass
class Importance:
    """The importance of each searched setting of one solver (``values``, summing to 1, most important
    first), or ``None`` with ``note`` saying why none could be computed.

    Attributes:
        evaluator: the evaluator that computed them (``"PED-ANOVA (...)"``), or ``""``.
        trials: the complete trials they were computed on.
    """

    values: dict[str, float] | None
    evaluator: str
    trials: int
    note: str = ""


def importance_evaluator(optuna) -> tuple[Any, str]:
    """optuna's default importance evaluator (fANOVA before optuna 5, PED-ANOVA since), and its description;
    PED-ANOVA where the default is fANOVA and scikit-learn is not installed."""
    from optuna.importance import PedAnovaImportanceEvaluator

    major = int(str(optuna.__version__).split(".")[0])
    if major >= 5:
        return PedAnovaImportanceEvaluator(), "PED-ANOVA (optuna's default importance evaluator)"
    try:
        import sklearn  # noqa: F401 - fANOVA's random forest
    except ImportError:
        return PedAnovaImportanceEvaluator(), ("PED-ANOVA (optuna's default, fANOVA, needs scikit-learn, which "
                                              "is not installed)")
    from optuna.importance import FanovaImportanceEvaluator

    return FanovaImportanceEvaluator(seed=0), "fANOVA (optuna's default importance evaluator, seed 0)"


def _distribution(optuna, dim: Dimension):
    t = dim.tunable
    if t.choices is not None:
        return optuna.distributions.CategoricalDistribution(list(t.choices))
    if dim.integer:
        return optuna.distributions.IntDistribution(int(t.low), int(t.high), log=t.log)
    return optuna.distributions.FloatDistribution(float(t.low), float(t.high), log=t.log)


def _ran_with(trial: TrialRecord, key: str) -> Any:
    """The value of ``key`` (an option, ``train.NAME`` or ``train.NAME.INNER``) trial ran with, or ``None``."""
    if key.startswith("train."):
        name, _, inner = key[len("train."):].partition(".")
        value = (trial.train or {}).get(name)
        return value.get(inner) if inner and isinstance(value, dict) else (None if inner else value)
    return (trial.options or {}).get(key)


def _params(optuna, trial: TrialRecord, distributions: dict[str, Any]) -> dict[str, Any]:
    params = {}
    for key, distribution in distributions.items():
        value = trial.params.get(key, _ran_with(trial, key))
        if value is None:
            continue
        try:
            distribution.to_internal_repr(value)
        except (ValueError, TypeError):
            continue
        if isinstance(distribution, optuna.distributions.CategoricalDistribution) or \
                distribution.low <= value <= distribution.high:
            params[key] = value
    return params


def param_importances(search: SolverSearch) -> Importance:
    """The importance of each searched setting of ``search``, computed by optuna from its complete trials.

    Never raises for want of data: one searched setting, fewer than two complete
    trials, optuna missing or an evaluator that fails give ``values=None`` and a ``note``.
    """
    complete = [t for t in search.trials if t.state == "complete" and t.value is not None]
    if len(search.dimensions) < 2:
        what = (f"one setting was searched ({search.dimensions[0].key})" if search.dimensions
                else "nothing was searched")
        return Importance(None, "", len(complete), f"{what}: importance ranks searched settings against each "
                                                   f"other, so there is nothing to rank")
    if len(complete) < 2:
        return Importance(None, "", len(complete), f"{len(complete)} complete trial(s): importance needs at "
                                                   f"least two scored trials")
    try:
        from .storage import load_optuna

        optuna = load_optuna()
    except Exception as error:  # noqa: BLE001 - the ConfigError of a missing optuna
        return Importance(None, "", len(complete), f"not computed: {error}")
    evaluator, described = importance_evaluator(optuna)
    distributions = {dim.key: _distribution(optuna, dim) for dim in search.dimensions}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(direction=search.direction)
        for trial in complete:
            params = _params(optuna, trial, distributions)
            study.add_trial(optuna.trial.create_trial(
                params=params, distributions={key: distributions[key] for key in params}, value=trial.value))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            values = optuna.importance.get_param_importances(study, evaluator=evaluator)
        except Exception as error:  # noqa: BLE001 - an evaluator's refusal is a sentence in the report
            return Importance(None, described, len(complete), f"optuna could not compute them: "
                                                              f"{type(error).__name__}: {error}")
    said = [str(w.message) for w in caught if not issubclass(w.category, (DeprecationWarning,
                                                                          optuna.exceptions.ExperimentalWarning))]
    if said:
        return Importance(None, described, len(complete), f"optuna could not compute them: {said[0]}")
    return Importance({key: float(value) for key, value in values.items()}, described, len(complete))
