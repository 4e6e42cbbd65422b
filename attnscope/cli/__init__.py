"""The ``attnscope`` command line: each command is a small typed function over the API."""

from __future__ import annotations

import sys

import typer

from attnscope.cli.app import app


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (2 on bad input) instead of exiting."""
    try:
        app(args=argv if argv is not None else sys.argv[1:], standalone_mode=False)
    except typer.Exit as stop:
        return stop.exit_code
    except SystemExit as stop:  # click's usage errors
        return int(stop.code or 0)
    except Exception as err:  # click.UsageError and friends
        import click

        if isinstance(err, click.exceptions.ClickException):
            err.show()
            return 2
        if isinstance(err, click.exceptions.Abort):
            return 1
        raise
    return 0


__all__ = ["app", "main"]
