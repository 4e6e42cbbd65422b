"""``attnscope store info`` and ``attnscope export``: thin typed wrappers over
:mod:`attnscope.store`. Bad input prints one line on stderr and exits with code 2."""

from __future__ import annotations

from pathlib import Path

import typer

from attnscope.cli._console import fail

store_app = typer.Typer(help="Inspect attention stores.", no_args_is_help=True)


@store_app.command()
def info(path: Path = typer.Argument(..., help="store directory")) -> None:
    """Show modules, steps, shapes and sizes of a store."""
    from rich.console import Console
    from rich.table import Table

    from attnscope.errors import AttnscopeError
    from attnscope.sources import rows_per_sample, step_samples
    from attnscope.store import open_store
    from attnscope.store.estimate import human

    try:
        store = open_store(path)
        table = Table(title=f"{path}  (model: {store.model or '?'})")
        for col in ("module", "kind", "step", "samples", "shape per sample", "on disk"):
            table.add_column(col)
        fewest = step_samples(store)
        for module in store.modules:
            info = store.module_info(module)
            axes = "(edge, head)" if info["graph"] else "(head, query, key)"
            for step in store.steps:
                segs = store.segments(module, step)
                if not segs:
                    continue
                shapes = sorted({tuple(s.shape[1:]) for s in segs})
                shape = " | ".join("x".join(map(str, s)) for s in shapes[:3])
                rows, n = store.num_samples(module, step), fewest[step]
                k = rows_per_sample(store, module, step, fewest)
                count = f"{rows} rows ({n} x {k} folded)" if k > 1 else str(rows)
                named = [ax.name for ax in store.axes(module, step)]  # graph: time, node ...
                where = f"({', '.join([*named, 'edge', 'head'])})" if named else axes
                table.add_row(module, info["kind"], step, count,
                              shape + (" ..." if len(shapes) > 3 else "") + f" {where}",
                              human(store.nbytes(module, step)))
        notes = [(step, n) for step in store.steps for n in store.notes(step)]
    except AttnscopeError as e:
        raise fail(str(e), e) from None
    out = Console()
    out.print(table)
    for step, note in notes:  # what each step's capture did not record, and why
        out.print(f"note ({step}): {note}", markup=False, highlight=False, soft_wrap=True)


def export(
    path: Path = typer.Argument(..., help="store directory"),
    format: str = typer.Option("npz", "--format", "-f", help="npy | npz | csv"),
    out: Path = typer.Option(..., "--out", "-o", help="output directory"),
    module: list[str] = typer.Option(None, "--module", "-m", help="module (repeatable)"),
    step: list[str] = typer.Option(None, "--step", "-s", help="step (repeatable)"),
    samples: str = typer.Option(None, "--samples", help="e.g. 0:10 or 3,5,8"),
    heads: str = typer.Option(None, "--heads", help="e.g. 0 or 0,2"),
    max_rows: int = typer.Option(5_000_000, "--max-rows", help="CSV size guard"),
    squeeze: bool = typer.Option(True, help="1-D attention as (sample, key)"),
    axis: list[str] = typer.Option(None, "--axis", help="graph entries: NAME=I or NAME=I,J "
                                   "for a named dim (node=3, time=0,1; repeatable)"),
) -> None:
    """Export a store to .npy per step, one .npz of all steps, or a long-form CSV."""
    from attnscope.errors import AttnscopeError
    from attnscope.store import export as run_export
    from attnscope.store import open_store

    try:
        from attnscope.cli._graph_plots import parse_axes

        store = open_store(path)
        files = run_export(store, out, format, modules=module or None, steps=step or None,
                           samples=_parse(samples, "--samples"), heads=_parse(heads, "--heads"),
                           squeeze=squeeze, max_rows=max_rows, select=parse_axes(axis) or None)
    except AttnscopeError as e:
        raise fail(str(e), e) from None
    for f in files:
        typer.echo(str(f))


def _parse(text: str | None, flag: str) -> slice | list[int] | None:
    """``"0:10"`` -> slice, ``"3,5"`` -> [3, 5]."""
    from attnscope.store import StoreError

    if text is None:
        return None
    try:
        if ":" in text:
            parts = [int(p) if p else None for p in text.split(":")]
            if len(parts) > 3 or (len(parts) == 3 and parts[2] == 0):
                raise ValueError(text)
            return slice(*parts)
        return [int(p) for p in text.split(",")]
    except (TypeError, ValueError):
        raise StoreError(f"{flag} {text!r} is not a slice like 0:10 (step 1 or more) or a "
                         "list like 3,5") from None
