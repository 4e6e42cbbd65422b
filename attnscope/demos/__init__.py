"""Demos: small reference models trained on synthetic tasks whose correct attention is
known in advance, so one command checks the whole pipeline (train, capture, store,
plot) end to end. An application of attnscope, kept apart from the core: nothing in the
core imports it, and the command line imports it only for ``attnscope demo``.

Example:
    >>> from attnscope.demos import get_family
    >>> result = get_family("lstm").run("runs/demo", quick=True)
    >>> result.passed, result.metric, result.threshold

Layout: :mod:`~attnscope.demos.demo` (the one run template), :mod:`~.registry`,
:mod:`~.training` (Lightning plumbing), :mod:`~.report` (evolution figure and
``summary.md``), and one module per family in :mod:`~.families`.
"""

from __future__ import annotations

from attnscope.demos.demo import Demo, Run
from attnscope.demos.registry import DemoResult, get_family, list_families, register_family

__all__ = ["Demo", "DemoResult", "Run", "get_family", "list_families", "register_family"]
