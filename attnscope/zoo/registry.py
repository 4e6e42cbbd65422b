"""Reference families: small models on synthetic tasks whose correct attention is known
in advance, so a demo (and a test) can check the whole pipeline end to end.

A family is one module in ``attnscope.zoo`` that registers itself::

    @register_family("lstm", "LSTM regressor with additive attention",
                     expected="attention peaks on the marked time step")
    def run(out: Path, *, seed: int = 0, quick: bool = False,
            trained: bool = True) -> DemoResult: ...

``run`` trains (unless ``trained=False``: the same model untrained, for the control
check), captures into ``out / "store"``, draws figures into ``out``, and returns the
pattern metric with its threshold.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from attnscope.errors import AttnscopeError


@dataclass
class DemoResult:
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


@dataclass(frozen=True)
class Family:
    name: str
    description: str
    expected: str
    run: Callable[..., DemoResult]


_FAMILIES: dict[str, Family] = {}
_MODULES = ("lstm", "translation", "sleep", "convtran", "graph", "text")


def register_family(name: str, description: str, *, expected: str):
    def decorate(run: Callable[..., DemoResult]) -> Callable[..., DemoResult]:
        _FAMILIES[name] = Family(name, description, expected, run)
        return run

    return decorate


def families() -> dict[str, Family]:
    """Every family whose module imports (optional dependencies missing: left out)."""
    for module in _MODULES:
        try:
            importlib.import_module(f"attnscope.zoo.{module}")
        except ModuleNotFoundError as err:
            if err.name and err.name.startswith("attnscope.zoo"):
                continue  # not written yet
            raise
    return dict(_FAMILIES)


def get_family(name: str) -> Family:
    found = families()
    if name not in found:
        raise AttnscopeError(f"no demo {name!r}; available: {', '.join(sorted(found))}")
    return found[name]
