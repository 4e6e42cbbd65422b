"""The demo registry: every family is one module in ``attnscope.demos.families`` holding
one :class:`~attnscope.demos.demo.Demo` subclass decorated with :func:`register_family`.

Families are found by importing those modules; a module whose optional dependency is
missing is left out of the listing instead of failing it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from attnscope.errors import AttnscopeError

if TYPE_CHECKING:
    from attnscope.demos.demo import Demo

D = TypeVar("D", bound="type[Demo]")
FAMILIES_PACKAGE = "attnscope.demos.families"


@dataclass
class DemoResult:
    """What one run found: the pattern metric against its threshold, and what it wrote."""

    family: str
    metric_name: str  # e.g. "mean attention mass on the marked step"
    metric: float
    threshold: float  # the pattern is shown when metric >= threshold
    train_seconds: float
    files: list[Path] = field(default_factory=list)
    details: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.metric >= self.threshold


_FAMILIES: dict[str, Demo] = {}


def register_family(cls: D) -> D:
    """Class decorator: make the demo ``cls`` (one instance) available by ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a name")
    _FAMILIES[cls.name] = cls()
    return cls


def list_families() -> dict[str, Demo]:
    """Every family whose module imports (optional dependencies missing: left out)."""
    from attnscope.demos.families import NAMES

    for name in NAMES:
        try:
            importlib.import_module(f"{FAMILIES_PACKAGE}.{name}")
        except ModuleNotFoundError as err:
            if err.name and not err.name.startswith("attnscope"):
                continue  # an optional framework this family needs is not installed
            raise
    return dict(_FAMILIES)


def get_family(name: str) -> Demo:
    found = list_families()
    if name not in found:
        raise AttnscopeError(f"no demo {name!r}; available: {', '.join(sorted(found))}")
    return found[name]
