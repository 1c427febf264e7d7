"""Helpers shared by the CLI failure tests: run the command in process, read its one error line."""

from du_framework.cli import main


def run(*args) -> int:
    """``unfold ARGS...`` in this process; its exit code."""
    return main([*map(str, args)])


def one_error_line(err: str) -> str:
    """The single ``unfold: error:`` line of ``err``; fails on a traceback or on several lines."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("unfold: error:")]
    assert len(lines) == 1, err
    return lines[0]
