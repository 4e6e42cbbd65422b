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

from attnscope.errors import OptionError

if TYPE_CHECKING:
    from attnscope.capturing.session import CaptureSession

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


def register_strategy(cls: type[Strategy] | None = None, *, replace: bool = False) -> Any:
    """Class decorator: make ``cls`` available under ``cls.name``.

    A name already taken by a built-in strategy is refused unless ``replace=True``
    (``@register_strategy(replace=True)``), so a plugin cannot silently change how
    attnscope captures; re-registering a name of your own replaces it.
    """
    def add(strategy: type[Strategy]) -> type[Strategy]:
        if not strategy.name:
            raise ValueError(f"{strategy.__name__} needs a name")
        taken = _REGISTRY.get(strategy.name)
        if taken is not None and taken is not strategy and is_builtin(taken) and not replace:
            raise OptionError(f"strategy name {strategy.name!r} is taken by the built-in "
                              f"{taken.__name__}; pick another name, or pass "
                              "register_strategy(replace=True) to replace it")
        _REGISTRY[strategy.name] = strategy
        return strategy

    return add if cls is None else add(cls)


def is_builtin(strategy: type[Strategy] | Strategy) -> bool:
    """A strategy shipped with attnscope (not a user's or a plugin's)."""
    cls = strategy if isinstance(strategy, type) else type(strategy)
    return cls.__module__.startswith(f"{__package__}.strategies.")


def strategy_classes() -> dict[str, type[Strategy]]:
    import attnscope.capturing.strategies  # noqa: F401  (registers the built-in ones)

    return dict(_REGISTRY)


def list_strategies() -> dict[str, str]:
    """Names of the capture strategies and what each captures."""
    return {name: cls.description for name, cls in strategy_classes().items()}
