"""``attnscope view``: one offline HTML viewer page from a store.

Selection options narrow what is embedded; the estimated size is printed first, and a
page over ``--max-mb`` is refused with the selections that would fit (exit code 2).
"""

from __future__ import annotations

import re
from pathlib import Path

import typer

from attnscope.cli._console import fail


def _ints(text: str | None, what: str) -> list[int] | None:
    if text is None or text in ("all", "mean"):
        return None
    if not re.fullmatch(r"-?\d+(,-?\d+)*", text):
        raise fail(f"{what} must be comma-separated integers or 'all', not {text!r}")
    return [int(t) for t in text.split(",")]


# the library names selections as Python keywords; a shell user types these options
_WORDS = ((r"modules=\['([^']*)'\]", r"--module \1"), (r"steps=\['([^']*)'\]", r"--step \1"),
          (r"samples=\[([-\d, ]+)\]", lambda m: "--samples " + m.group(1).replace(" ", "")),
          (r"heads=\[([-\d, ]+)\]", lambda m: "--heads " + m.group(1).replace(" ", "")),
          (r"\bmax_mb\b", "--max-mb"))


def cli_words(message: str) -> str:
    """A library message with its Python selection syntax (``heads=[0]``) written as
    this command's options (``--heads 0``)."""
    for pattern, repl in _WORDS:
        message = re.sub(pattern, repl, message)
    return message


def view(
    store: Path = typer.Argument(..., help="store directory written by capture(store=...)"),
    out: Path = typer.Option(Path("view.html"), "--out", "-o", help="HTML file to write"),
    modules: list[str] = typer.Option(None, "--module", "-m",
                                      help="module name, position or glob (repeatable)"),
    steps: list[str] = typer.Option(None, "--step", "-s",
                                    help="step to embed (repeatable; 'last'); default: all"),
    samples: str = typer.Option("0", "--samples", help="sample positions, e.g. 0,1,2"),
    heads: str = typer.Option("all", "--heads", help="head positions, e.g. 0,3 or 'all'"),
    tokens: Path = typer.Option(None, "--tokens",
                                help="text file with one token per line (both axes)"),
    source_tokens: Path = typer.Option(
        None, "--source-tokens", help="encoder tokens, one per line: encoder self-attention "
        "and cross-attention columns"),
    target_tokens: Path = typer.Option(
        None, "--target-tokens", help="decoder tokens, one per line: decoder self-attention "
        "and cross-attention rows"),
    max_mb: float = typer.Option(256.0, "--max-mb", help="refuse pages larger than this"),
    title: str = typer.Option(None, "--title", help="page title"),
) -> None:
    """Write an interactive, offline HTML page: layer x head overview, zoomable matrix
    with hover values and token labels, head view, step slider and step differences."""
    from attnscope.errors import AttnscopeError
    from attnscope.store import open_store
    from attnscope.viewer import estimate_page, render_html

    sample_list = _ints(samples, "--samples") or [0]
    head_list = _ints(heads, "--heads")
    given = {}
    for flag, path in (("tokens", tokens), ("source_tokens", source_tokens),
                       ("target_tokens", target_tokens)):
        if path is not None:
            if not path.is_file():
                raise fail(f"--{flag.replace('_', '-')} file '{path}' does not exist")
            given[flag] = path.read_text(encoding="utf-8").splitlines()
    try:
        opened = open_store(store)
        chosen = (modules[0] if len(modules) == 1 else modules) if modules else None
        chosen_steps = ("last" if steps == ["last"] else steps) or None
        count, estimate = estimate_page(opened, chosen, chosen_steps, sample_list, head_list)
        page = render_html(opened, modules=chosen, steps=chosen_steps, samples=sample_list,
                           heads=head_list, max_mb=max_mb, title=title, **given)
    except (AttnscopeError, KeyError) as e:
        raise fail(cli_words(str(e.args[0] if e.args else e)), e) from None
    except ValueError as e:
        raise fail(cli_words(str(e)), e) from None
    typer.echo(f"embedding {count} maps: at most ~{estimate / 1e6:.3g} MB before "
               "compression", err=True)
    path = page.save(out)
    typer.echo(f"{path} ({path.stat().st_size / 1e6:.1f} MB)")
