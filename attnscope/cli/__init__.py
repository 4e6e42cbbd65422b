"""The ``attnscope`` command line: each command is a small typed function over the API."""

from __future__ import annotations

import sys

import typer

from attnscope._extras import check_command, missing_extra
from attnscope.cli.commands import app
from attnscope.errors import AttnscopeError

# options that take several values in a row (``--channel-names EEG1 EEG2 EEG3``); click
# options take one value each, so the row is rewritten into repeated options first
MULTI = {"dashboard": ("--channel-names", "--class-names")}


def expand_multi(argv: list[str]) -> list[str]:
    """``dashboard --channel-names A B --out d`` -> ``... --channel-names A
    --channel-names B --out d`` (only for the commands and options in ``MULTI``)."""
    command = next((a for a in argv if not a.startswith("-")), "")  # after --traceback
    flags = MULTI.get(command, ())
    out: list[str] = []
    current = None
    for arg in argv:
        if arg.startswith("-"):
            current = arg if arg in flags else None
            out.append(arg)
        elif current is not None and out[-1] != current:
            out += [current, arg]
        else:
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (2 on bad input) instead of exiting."""
    args = expand_multi(list(argv if argv is not None else sys.argv[1:]))
    command = next((a for a in args if not a.startswith("-")), "")
    if "--help" not in args and "-h" not in args:
        line = check_command(command)  # every extra the command needs, named at once
        if line is not None:
            print(f"error: {line}", file=sys.stderr)
            return 2
    try:
        # without standalone mode, click returns the code of a typer.Exit instead of raising
        code = app(args=args, standalone_mode=False)
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
    except ModuleNotFoundError as err:  # an optional dependency: name the extra to install
        line = missing_extra(err)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        return 2
    except AttnscopeError as err:  # a command that did not catch its own: still one line
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except OSError as err:  # disk full, read-only, permissions outside the library's paths
        where = f" '{err.filename}'" if err.filename else ""
        print(f"error: cannot write or read{where}: {err.strerror or err}", file=sys.stderr)
        return 2
    return code if isinstance(code, int) else 0


__all__ = ["app", "main"]
