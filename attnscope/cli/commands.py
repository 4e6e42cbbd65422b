"""Command definitions. Errors users can fix print one line and exit with code 2."""

from __future__ import annotations

import typer
from rich.table import Table

from attnscope.cli._console import console, err_console, fail, options

app = typer.Typer(help="Capture, store, analyse and show attention weights of PyTorch models.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

__all__ = ["app", "console", "err_console", "fail"]


@app.callback()
def _options(
    traceback: bool = typer.Option(
        False, "--traceback", help="on an error, also print its full traceback, with the "
        "error it came from (e.g. the one your model raised)"),
) -> None:
    options["traceback"] = traceback


@app.command()
def strategies() -> None:
    """List the capture strategies attnscope knows."""
    from attnscope import list_strategies

    table = Table("strategy", "captures")
    for name, description in list_strategies().items():
        table.add_row(name, description)
    console.print(table)


def _register_subcommands() -> None:
    from attnscope.cli.capture_command import capture
    from attnscope.cli.dashboard_command import dashboard
    from attnscope.cli.demo_command import demo
    from attnscope.cli.evaluate_command import evaluate
    from attnscope.cli.generate_command import generate
    from attnscope.cli.plot_command import plot
    from attnscope.cli.stats_command import stats
    from attnscope.cli.store_commands import export, store_app
    from attnscope.cli.text_command import translate
    from attnscope.cli.view_command import view

    app.command("demo")(demo)
    app.command("capture")(capture)
    app.command("plot")(plot)
    app.command("view")(view)
    app.command("evaluate")(evaluate)
    app.command("dashboard")(dashboard)
    app.add_typer(store_app, name="store")
    app.command("export")(export)
    app.command("stats")(stats)
    app.command("translate")(translate)
    app.command("generate")(generate)
    app.command("text", help="Same as translate; encoder-only models draw their "
                "self-attention.")(translate)


_register_subcommands()
