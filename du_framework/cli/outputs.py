"""What ``unfold compare`` and ``unfold train`` check, draw and print around a run folder: figure formats
refused before any work, plotting imported while the solvers train, the published folder's contents and
how to view what an observer wrote there."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from ..errors import ConfigError

__all__ = ["shell_word", "folder_contents", "viewing_hint", "figure_formats", "prefetch_plotting"]


def shell_word(word: str) -> str:
    import shlex

    return shlex.quote(str(word))


def folder_contents(folder: Path) -> list[str]:
    """What a published run folder holds: its files, and its folders with a ``/`` (checkpoints/, an observer's)."""
    try:
        return sorted(entry.name + ("/" if entry.is_dir() else "") for entry in folder.iterdir())
    except OSError:
        return []


def viewing_hint(folder: Path) -> None:
    """How to view what the tensorboard observer wrote (the extra installs the viewer, docs/observers.md)."""
    if (folder / "tensorboard").is_dir():
        print(f"view the TensorBoard files with: tensorboard --logdir {shell_word(folder / 'tensorboard')}")


def figure_formats(args) -> tuple[str, ...]:
    """``--figures`` as a tuple of formats, refused before any work when one is unknown (or the style is)."""
    from ..workbench.figures import FORMATS, style_spec

    formats = tuple(part.strip().lower().lstrip(".") for part in (args.figures or "png").split(",") if part.strip())
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ConfigError(f"--figures {args.figures!r}: give formats among {', '.join(FORMATS)}, "
                          f"comma-separated (e.g. png,pdf)")
    if args.style:
        style_spec(args.style)
    return formats


def prefetch_plotting() -> None:
    """Import matplotlib and the figures module in a background thread while the solvers train.

    The import takes about half a second of Python work, and training leaves the
    interpreter idle while XLA runs; the report then finds everything imported.
    """

    def load():
        with contextlib.suppress(Exception):  # the report imports it again and reports a failure itself
            from ..workbench import figures

            figures.pyplot()

    threading.Thread(target=load, name="unfold-prefetch-plotting", daemon=True).start()
