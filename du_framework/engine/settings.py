"""The run settings, :class:`TrainSettings` and :class:`EvaluationSettings` (defined in
:mod:`du_framework.settings`, below the registry, and shown here as the engine's)."""

from ..settings import EvaluationSettings, TrainSettings

__all__ = ["TrainSettings", "EvaluationSettings"]
