"""``attnscope demo``: a reference model trained on a task whose attention is known,
captured into a store, drawn, and checked against the known pattern. The demos
(:mod:`attnscope.demos`) are imported only when this command runs."""

from __future__ import annotations

import warnings
from pathlib import Path

import typer
from rich.table import Table

from attnscope.cli._console import console, fail
from attnscope.errors import AttnscopeError

DEFAULT_DEMO = "lstm"


def demo(
    name: str = typer.Argument(DEFAULT_DEMO, help="which family (see --list)"),
    out: Path = typer.Option(Path("attnscope-demo"), "--out", "-o",
                             help="folder for the store, figures and summary"),
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
    target = out / family.name
    console.print(f"[bold]{family.name}[/]: {family.description}")
    console.print(f"expected: {family.expected}")
    with console.status("training, capturing and drawing ..."), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # framework deprecation chatter, not the user's
        try:
            result = family.run(target, seed=seed, quick=quick)
        except AttnscopeError as err:
            raise fail(str(err), err) from None
    verdict = "[green]shown[/]" if result.passed else "[red]NOT shown[/]"
    console.print(f"{result.metric_name}: {result.metric:.3f} (threshold "
                  f"{result.threshold:.3f}) -> pattern {verdict}; trained in "
                  f"{result.train_seconds:.1f} s")
    console.print(f"wrote {target}/ (store/, summary.md, {len(result.files)} figures)")
