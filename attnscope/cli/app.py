"""Command definitions. Errors users can fix print one line and exit with code 2."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(help="Capture, store, analyse and show attention weights of PyTorch models.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console()


err_console = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    """Print one clear line on stderr; the caller raises the returned exit (code 2)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False,
                      soft_wrap=True)
    return typer.Exit(2)


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
    from attnscope.cli.plot_command import plot
    from attnscope.cli.store_commands import export, store_app
    from attnscope.cli.text_command import translate

    app.command("demo")(demo)
    app.command("capture")(capture)
    app.command("plot")(plot)
    app.command("evaluate")(evaluate)
    app.command("dashboard")(dashboard)
    app.add_typer(store_app, name="store")
    app.command("export")(export)
    app.command("translate")(translate)
    app.command("text", help="Same as translate; encoder-only models draw their "
                "self-attention.")(translate)


_register_subcommands()
