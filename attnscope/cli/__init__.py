"""The ``attnscope`` command line: each command is a small typed function over the API."""

from __future__ import annotations

import sys

import typer

from attnscope.cli.commands import app


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (2 on bad input) instead of exiting."""
    try:
        # without standalone mode, click returns the code of a typer.Exit instead of raising
        code = app(args=argv if argv is not None else sys.argv[1:], standalone_mode=False)
    except typer.Exit as stop:
        return stop.exit_code
    except typer.Abort:
        return 1
    except typer.TyperException as err:  # usage errors: one line, exit code 2
        show = getattr(err, "show", None)
        if callable(show):
            show()
        else:
            print(f"error: {err}", file=sys.stderr)
        return 2
    return code if isinstance(code, int) else 0


__all__ = ["app", "main"]
