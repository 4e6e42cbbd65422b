"""What every command module shares: the two consoles and the one error helper. Command
modules import this, never :mod:`attnscope.cli.commands` (which imports them)."""

from __future__ import annotations

import traceback

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
err_console = Console(stderr=True)
# set by the top-level ``--traceback`` option for one invocation
options = {"traceback": False}


def fail(message: str, cause: BaseException | None = None) -> typer.Exit:
    """Print one clear ``error:`` line on stderr; the caller raises the returned exit
    (code 2): ``raise fail(str(err), err) from None``. With ``--traceback``, the full
    traceback of ``cause`` (and the error it came from, e.g. the model's own) first."""
    if cause is not None and options["traceback"]:
        err_console.print("".join(traceback.format_exception(cause)), markup=False,
                          highlight=False, soft_wrap=True, end="")
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False,
                      soft_wrap=True)
    return typer.Exit(2)
