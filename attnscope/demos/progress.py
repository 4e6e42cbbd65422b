"""Progress of a demo run, for whoever shows it (the CLI's rich progress bar).

A run reports stages ("training", "drawing figures") and epochs through :func:`report`;
nothing is shown unless :func:`reporting` installed a receiver around the run, so the
families need no argument threaded through them and tests stay silent.
Left out on purpose: time estimates (epochs differ too much in cost to extrapolate).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class Event:
    """One progress event: ``text`` says what is happening; ``done``/``total`` count
    epochs (or items) when there is something to count."""

    text: str
    done: int | None = None
    total: int | None = None
    log: bool = True  # worth a line of its own (False: only the bar changes)


Receiver = Callable[[Event], None]
_receiver: ContextVar[Receiver | None] = ContextVar("attnscope_demo_progress", default=None)


def report(text: str, done: int | None = None, total: int | None = None,
           log: bool = True) -> None:
    """Tell the receiver (if any) what the demo is doing now."""
    receiver = _receiver.get()
    if receiver is not None:
        receiver(Event(text, done, total, log))


@contextlib.contextmanager
def reporting(receiver: Receiver | None) -> Iterator[None]:
    """Send the events of the runs inside this block to ``receiver``."""
    token = _receiver.set(receiver)
    try:
        yield
    finally:
        _receiver.reset(token)


def epoch_callback(epochs: int, trained: bool) -> object:
    """A Lightning callback reporting each training epoch (with its losses) and what is
    being captured; imported lazily with Lightning."""
    from lightning.pytorch.callbacks import Callback

    class EpochProgress(Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            report(f"training epoch {trainer.current_epoch + 1}/{epochs}",
                   trainer.current_epoch, epochs, log=False)

        def on_validation_epoch_start(self, trainer, pl_module) -> None:
            if trainer.sanity_checking:
                return
            what = f"epoch {trainer.current_epoch + 1}/{epochs}" if trained else "untrained"
            report(f"{what}: validation, capturing its attention into the store",
                   trainer.current_epoch if trained else None, epochs if trained else None,
                   log=not trained or trainer.current_epoch == 0)

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            losses = {k: float(v) for k, v in trainer.callback_metrics.items()
                      if k.endswith("loss")}
            shown = ", ".join(f"{k} {v:.3g}" for k, v in sorted(losses.items()))
            report(f"epoch {trainer.current_epoch + 1}/{epochs} done" +
                   (f" ({shown})" if shown else ""), trainer.current_epoch + 1, epochs)

        def on_test_epoch_start(self, trainer, pl_module) -> None:
            report("test set: capturing its attention into the store", epochs, epochs)

    return EpochProgress()
