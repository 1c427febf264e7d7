"""The progress bar of a training run (tqdm), or nothing."""

from __future__ import annotations

__all__ = ["progress_bar"]


class _Silent:
    def stage(self, number: int, stages: int, depth: int) -> None:
        pass

    def advance(self, steps: int, loss: float) -> None:
        pass

    def close(self) -> None:
        pass


class _Bar(_Silent):
    """Counts optimiser steps; names the stage, the active depth and the latest loss."""

    def __init__(self, total: int, label: str):
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, desc=f"training {label}", unit="step", leave=False)
        self._where = ""

    def stage(self, number, stages, depth):
        self._where = f"stage {number}/{stages}, depth {depth}"
        self._bar.set_postfix_str(self._where, refresh=False)

    def advance(self, steps, loss):
        self._bar.set_postfix_str(f"{self._where}, loss {loss:.3e}", refresh=False)
        self._bar.update(steps)

    def close(self):
        self._bar.close()


def progress_bar(total: int, label: str, enabled: bool) -> _Silent:
    """A bar over ``total`` optimiser steps when ``enabled``, else an object that shows nothing."""
    return _Bar(total, label) if enabled else _Silent()
