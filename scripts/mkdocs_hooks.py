"""MkDocs hooks for the documentation site (mkdocs.yml: ``hooks:``).

The docstrings use Sphinx roles (``:class:`~rtrl.learner.OnlineLearner```, ``:func:`save```), which Markdown
renders as the role's name followed by a code span. This hook drops the role and keeps the code span (with
Sphinx's ``~`` meaning: show only the last name), so the API pages read ``OnlineLearner`` instead of
``:class:~rtrl.learner.OnlineLearner``.
"""

from __future__ import annotations

import re

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const):<code>(~?)([^<]*)</code>")


def _code(match: re.Match) -> str:
    tilde, name = match.groups()
    return f"<code>{name.rsplit('.', 1)[-1] if tilde else name}</code>"


def on_page_content(html: str, **kwargs) -> str:
    return ROLE.sub(_code, html)
