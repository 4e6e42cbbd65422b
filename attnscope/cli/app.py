"""Command definitions. Errors users can fix print one line and exit with code 2."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from attnscope.errors import AttnscopeError

app = typer.Typer(help="Capture, store, analyse and show attention weights of PyTorch models.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console()


def _register_subcommands() -> None:
    from attnscope.cli.store_commands import export, store_app

    app.add_typer(store_app, name="store")
    app.command("export")(export)

err_console = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    """Print one clear line on stderr; the caller raises the returned exit (code 2)."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


@app.command()
def strategies() -> None:
    """List the capture strategies attnscope knows."""
    from attnscope import list_strategies

    table = Table("strategy", "captures")
    for name, description in list_strategies().items():
        table.add_row(name, description)
    console.print(table)


@app.command()
def demo() -> None:
    """Capture every attention map of a small built-in transformer and summarise them."""
    import torch

    import attnscope
    from attnscope.zoo import build_tiny_translator

    model, batch = build_tiny_translator()
    try:
        with torch.no_grad(), attnscope.capture(model) as rec:
            model(*batch)
    except AttnscopeError as err:
        raise fail(str(err)) from None
    table = Table("module", "kind", "source", "shape (batch, head, query, key)",
                  "row sums", "mean entropy (nats)", title=f"{len(rec)} attention maps "
                  f"of {type(model).__name__}")
    for m in rec:
        w = m.weights.float()
        sums = w.sum(-1)
        entropy = -(w.clamp_min(1e-12).log() * w).sum(-1).mean()
        table.add_row(m.module, m.kind, m.source, " x ".join(map(str, w.shape)),
                      f"{sums.min():.4f}..{sums.max():.4f}", f"{entropy:.3f}")
    console.print(table)


_register_subcommands()
