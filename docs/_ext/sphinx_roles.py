"""Griffe extension for the docs site: Sphinx roles in docstrings become inline code.

The docstrings cross-reference with Sphinx roles (``:class:`Problem```, ``:func:`~.train```);
mkdocstrings does not read them, so they are shown as inline code with the role and the
``~``/``.`` prefixes removed (``Problem``, ``train``) instead of as raw reStructuredText.
"""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:mod|class|func|meth|attr|data|exc|obj|const|term|ref):`(~?)([^`]+)`")


def _plain(match: re.Match) -> str:
    short, target = match.group(1), match.group(2).strip()
    if short:  # ~a.b.c shows as c
        target = target.rsplit(".", 1)[-1]
    return f"`{target.lstrip('.')}`"


class SphinxRoles(griffe.Extension):
    """Rewrites Sphinx roles in every docstring as inline code."""

    def _rewrite(self, obj: griffe.Object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_plain, obj.docstring.value)

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        self._rewrite(obj)
