"""Registry of capture strategies: one small class per kind of attention.

A strategy names the torch functions it wants to see (the interception mode routes
those calls to it) and attaches whatever hooks or patches it needs, returning handles
that the session removes on exit, also when the forward raised.

Adding a kind of attention is one file with one decorated class::

    @register_strategy
    class MyStrategy(Strategy):
        name = "mine"
        description = "what it captures"
        def attach(self, session): ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from attnscope.capture.session import CaptureSession

Handler = Callable[[Callable[..., Any], tuple, dict], Any]


class Removable(Protocol):
    def remove(self) -> None: ...


class Strategy:
    """Base class; subclasses override what they need."""

    name: str = ""
    description: str = ""

    def handlers(self, session: CaptureSession) -> dict[Callable[..., Any], Handler]:
        """Torch functions to intercept, mapped to ``handler(func, args, kwargs)``."""
        return {}

    def attach(self, session: CaptureSession) -> list[Removable]:
        """Install hooks or patches; every one must come back as a removable handle."""
        return []


_REGISTRY: dict[str, type[Strategy]] = {}


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a name")
    _REGISTRY[cls.name] = cls
    return cls


def strategy_classes() -> dict[str, type[Strategy]]:
    import attnscope.capture.strategies  # noqa: F401  (registers the built-in ones)

    return dict(_REGISTRY)


def list_strategies() -> dict[str, str]:
    """Names of the capture strategies and what each captures."""
    return {name: cls.description for name, cls in strategy_classes().items()}
