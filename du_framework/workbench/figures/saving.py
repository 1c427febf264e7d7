"""Saving figures: the format from the file's suffix (PDF, SVG, PNG at >= 200 dpi), written atomically,
with no date in the file (the same figure gives the same bytes)."""

from __future__ import annotations

from pathlib import Path

from ...errors import ConfigError
from .style import MIN_PNG_DPI, pyplot

__all__ = ["FORMATS", "figure_format", "figure_bytes", "save_figure"]

FORMATS = ("pdf", "svg", "png")
"""File formats by suffix."""


def figure_format(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise ConfigError(f"figure file {str(path)!r}: the suffix chooses the format; use .pdf, .svg or .png")
    return suffix


def figure_bytes(fig, kind: str = "svg") -> bytes:
    """``fig`` as the bytes of a ``pdf``, ``svg`` or ``png`` file (same settings as :func:`save_figure`)."""
    import io

    buffer = io.BytesIO()
    _savefig(fig, buffer, kind)
    return buffer.getvalue()


def _savefig(fig, target, kind: str) -> None:
    plt = pyplot()
    dpi = plt.rcParams["savefig.dpi"]
    dpi = max(MIN_PNG_DPI, float(fig.dpi if dpi == "figure" else dpi))
    metadata = {"pdf": {"CreationDate": None}, "svg": {"Date": None}, "png": {}}[kind]
    fig.savefig(target, format=kind, dpi=dpi, metadata=metadata)


def save_figure(fig, path: str | Path, *, close: bool = True) -> Path:
    """Save ``fig`` atomically to ``path`` in the format of its suffix (``.pdf``, ``.svg``, ``.png`` at >= 200 dpi).

    Raises:
        ConfigError: another suffix.
    """
    from ...io.atomic import atomic_write

    path = Path(path)
    kind = figure_format(path)
    plt = pyplot()
    try:
        with atomic_write(path, "wb") as handle:
            _savefig(fig, handle, kind)
    finally:
        if close:
            plt.close(fig)
    return path
