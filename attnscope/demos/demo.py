"""The one run template every demo family follows: seed, train and capture into
``out/store``, score the known pattern, draw, write ``summary.md``.

A family subclasses :class:`Demo` and fills in three steps::

    @register_family
    class LSTMDemo(Demo):
        name, description, expected = "lstm", "LSTM regressor ...", "attention peaks ..."
        metric_name, threshold = "mean weight on the marked step", 0.5
        @abc.abstractmethod
    def train(self, run: Run) -> float: ...          # seconds spent training
        def score(self, run: Run, store) -> tuple[float, dict[str, float]]: ...
        def figures(self, run: Run, store) -> list[Path]: ...

``trained=False`` runs the same model untrained (the control check). A run changes
nothing in the process beyond its output folder: random states, torch threads and
determinism, framework loggers and environment variables are restored.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attnscope.demos.progress import report
from attnscope.demos.registry import DemoResult
from attnscope.demos.report import write_summary

QUIET_LOGGERS = ("lightning.pytorch", "lightning.fabric", "pytorch_lightning")
# set by Lightning's Trainer and seeding, or by a demo that must stay offline
SCOPED_ENV = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS", "CUBLAS_WORKSPACE_CONFIG", "HF_HUB_OFFLINE")


@dataclass
class Run:
    """One run of a demo: where it writes, its switches, and the seeded generator for
    its synthetic data. ``state`` carries what ``train`` made for ``score``/``figures``."""

    out: Path
    seed: int
    quick: bool
    trained: bool
    gen: torch.Generator
    options: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)


class Demo(abc.ABC):
    """Base of every family; :meth:`run` is the template, the rest is filled in."""

    name: str = ""
    description: str = ""
    expected: str = ""  # one line for ``attnscope demo --list``
    metric_name: str = ""
    threshold: float = 0.0
    requires: tuple[str, ...] = ("lightning",)  # optional packages a run imports
    trains: bool = True  # False: pretrained weights, nothing is trained (text)

    @abc.abstractmethod
    def train(self, run: Run) -> float:
        """Build data and model, train unless ``run.trained`` is false, and capture into
        ``run.out / "store"``; returns the seconds spent training."""

    @abc.abstractmethod
    def score(self, run: Run, store: Any) -> tuple[float, dict[str, float]]:
        """The pattern metric and any details worth reporting."""

    @abc.abstractmethod
    def figures(self, run: Run, store: Any) -> list[Path]:
        """Draw into ``run.out``; returns the files."""

    def task(self, run: Run) -> str:
        """One line for ``summary.md``: what the model learns."""
        return self.description

    def summary_expected(self, run: Run) -> str:
        return self.expected

    def notes(self, run: Run) -> list[str]:
        return []

    def run(self, out: str | os.PathLike, *, seed: int = 0, quick: bool = False,
            trained: bool = True, **options: Any) -> DemoResult:
        """Train (or not), capture, score, draw and summarise into ``out``."""
        from attnscope.store import open_store

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        with process_state():
            run = Run(out, seed, quick, trained, seed_all(seed), dict(options))
            report("building the data and the model" + ("" if trained else " (untrained)"))
            seconds = self.train(run)
            store = open_store(out / "store")
            report("scoring the known pattern on the captured test attention")
            metric, details = self.score(run, store)
            result = DemoResult(self.name, self.metric_name, metric, self.threshold, seconds,
                                details=details)
            report("drawing figures")
            result.files = self.figures(run, store)
            names = [Path(f).name for f in result.files]
            report(f"drew {len(names)} figure{'s' if len(names) != 1 else ''}: "
                   + ", ".join(names[:4]) + (" ..." if len(names) > 4 else ""))
        report("writing view.html (interactive viewer) and summary.md")
        write_summary(out, result, expected=self.summary_expected(run), task=self.task(run),
                      trained=trained, notes=self.notes(run), trains=self.trains)
        result.files.append(out / "summary.md")
        return result


def seed_all(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a generator for the synthetic data."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def process_state() -> Iterator[None]:
    """Inside: framework loggers at WARNING; afterwards everything a demo may change in
    the process is as it was (random states, torch threads and deterministic mode,
    logger levels, :data:`SCOPED_ENV` variables)."""
    env = {k: os.environ.get(k) for k in SCOPED_ENV}
    loggers = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    threads = torch.get_num_threads()
    deterministic = (torch.are_deterministic_algorithms_enabled(),
                     torch.is_deterministic_algorithms_warn_only_enabled())
    cudnn = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    py_state, np_state = random.getstate(), np.random.get_state()
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
        torch.set_num_threads(threads)
        for name, level in loggers.items():
            logging.getLogger(name).setLevel(level)
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
