"""``attnscope demo``: a reference model trained on a task whose attention is known,
captured into a store, drawn, and checked against the known pattern. The demos
(:mod:`attnscope.demos`) are imported only when this command runs."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import typer
from rich.table import Table

from attnscope.cli._console import console, fail
from attnscope.errors import AttnscopeError

DEFAULT_DEMO = "lstm"


def demo(
    name: str = typer.Argument(DEFAULT_DEMO, help="which family (see --list)"),
    out: Path = typer.Option(None, "--out", "-o",
                             help="folder for the store, figures and summary (written into "
                                  "directly) [default: attnscope-demo/NAME]"),
    quick: bool = typer.Option(False, "--quick", help="shorter training (for smoke tests)"),
    seed: int = typer.Option(0, "--seed"),
    list_: bool = typer.Option(False, "--list", help="list the demos and exit"),
) -> None:
    """Train a small reference model, capture its attention while it trains, draw it, and
    check it against the pattern the task was built to produce."""
    from attnscope.demos import get_family, list_families

    if list_:
        table = Table("demo", "model", "expected attention")
        for family in list_families().values():
            table.add_row(family.name, family.description, family.expected)
        console.print(table)
        return
    try:
        family = get_family(name)
    except AttnscopeError as err:
        raise fail(str(err)) from None
    target = out if out is not None else Path("attnscope-demo") / family.name
    if target.exists() and not target.is_dir():
        raise fail(f"--out {str(target)!r} is a file; give a folder")
    console.print(f"[bold]{family.name}[/]: {family.description}")
    console.print(f"expected: {family.expected}")
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # framework deprecation chatter, not the user's
        try:
            result = _run_with_progress(family, target, seed, quick)
        except AttnscopeError as err:
            raise fail(str(err), err) from None
    total = time.perf_counter() - start
    verdict = "[green]shown[/]" if result.passed else "[red]NOT shown[/]"
    how = (f"trained in {result.train_seconds:.1f} s" if family.trains
           else "pretrained weights, no training")
    console.print(f"{result.metric_name}: {result.metric:.3f} (threshold "
                  f"{result.threshold:.3f}) -> pattern {verdict}; {how}; "
                  f"{total:.1f} s in all")
    figures = [f for f in result.files if Path(f).suffix in (".png", ".pdf", ".svg")]
    extra = [Path(f).name for f in result.files if Path(f).suffix == ".html"]
    console.print(f"wrote {target}/ (store/, summary.md, {', '.join(extra) + ', ' if extra else ''}"
                  f"{len(figures)} figure{'s' if len(figures) != 1 else ''})", highlight=False)


def _run_with_progress(family: object, target: Path, seed: int, quick: bool) -> object:
    """``family.run`` with what it is doing on screen: a bar over the epochs, and one
    line per stage and finished epoch (also when stdout is not a terminal)."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from attnscope.demos.progress import Event, reporting

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("starting", total=None)

        def show(event: Event) -> None:
            bar.update(task, description=event.text[:70],
                       **({"completed": event.done, "total": event.total}
                          if event.done is not None else {}))
            if event.log:
                bar.console.print(f"  {event.text}", markup=False, highlight=False)

        with reporting(show):
            return family.run(target, seed=seed, quick=quick)  # type: ignore[attr-defined]
