"""Passwords hidden from what a run records (its command line, a storage URL).

A database URL such as ``postgresql://user:secret@host/db`` given on the command line
(``unfold tune --storage ...``) would otherwise be copied verbatim into the run folder's
``manifest.json`` and ``tune.json``, which are meant to be published.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

HIDDEN = "***"

# scheme://[user]:password@ -- the password runs to the last '@' of the word, so a password
# holding an unescaped '@' is hidden whole (hiding too much is the safe side).
_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*):(?P<password>\S*)@")


def hide_passwords(text: str) -> str:
    """``text`` with every ``scheme://user:password@`` written ``scheme://user:***@``.

    >>> hide_passwords("--storage=postgresql://ana:s3cret@db.example.org/studies")
    '--storage=postgresql://ana:***@db.example.org/studies'
    >>> hide_passwords("sqlite:///runs/tune.db")
    'sqlite:///runs/tune.db'
    """
    return _CREDENTIALS.sub(lambda m: f"{m['head']}:{HIDDEN}@", str(text))


def hidden_argv(argv: Iterable[str]) -> list[str]:
    """A command line (``sys.argv``) with :func:`hide_passwords` applied to every element."""
    return [hide_passwords(word) for word in argv]
