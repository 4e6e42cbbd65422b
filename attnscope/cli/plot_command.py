"""``attnscope plot``: figures from a store, one file per view, into ``--out``.

Bad selections (a module, step, head or sample that does not exist) print one line on
stderr naming what exists and exit with code 2.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from attnscope.cli._console import fail

KINDS = ("heatmap", "grid", "overview", "bars", "graph", "dashboard", "evolution")


def _head(text: str) -> int | str:
    if text in ("mean", "all"):
        return text
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    raise fail(f"--head must be an index, 'mean' or 'all', not {text!r}")


def _slug(*parts: Any) -> str:
    return "_".join(re.sub(r"[^A-Za-z0-9._\-]+", "-", str(p)).strip("-") for p in parts if p != "")


def _figures(store: Any, kind: str, module: str | None, step: str | None, sample: int,
             head: int | str, cmap: str, dpi: int) -> list[tuple[str, Any]]:
    """(file stem, figure) pairs for one ``--kind``."""
    from attnscope import plot

    opts = {"cmap": cmap, "dpi": dpi}
    if kind == "overview":
        return [(_slug("overview", step, f"s{sample}"),
                 plot.plot_overview(store, step=step, sample=sample, **opts))]
    name = plot.pick_module(list(store.modules), module)
    if kind == "evolution":
        stat = plot.plot_head_stats(store, name, samples=[sample])
        return [(_slug(name, "evolution", f"h{head}"),
                 plot.plot_evolution(store, name, sample=sample,
                                     head="mean" if head == "all" else head, **opts)),
                (_slug(name, "head-stats"), stat)]
    step = step or _only_step(store, name)
    sel = {"module": name, "step": step, "sample": sample}
    stem = _slug(name, step, f"s{sample}")
    if head == "all" and kind in ("graph", "bars"):
        head = "mean"
    if kind == "graph":
        return [(stem + "_top-edges", plot.plot_top_edges(store, **sel, head=head, dpi=dpi)),
                (stem + "_graph", plot.plot_graph(store, **sel, head=head, **opts)),
                (stem + "_matrix", plot.plot_edge_matrix(store, **sel, head=head, **opts))]
    if kind == "grid" or (kind == "heatmap" and head == "all"):
        return [(stem + "_heads", plot.plot_heads(store, **sel, **opts))]
    if kind == "heatmap":
        return [(stem + f"_h{head}", plot.plot_heatmap(store, **sel, head=head, **opts))]
    if kind == "bars":
        return [(stem + f"_h{head}_bars",
                 plot.plot_bars(store, **sel, head=head, dpi=dpi))]
    if kind == "dashboard":  # from a store: the inter-epoch entry, labelled by "classes"
        w = plot.read_dense(store, name, step, sample, "all").weights  # (head, epoch, epoch)
        classes = store.labels(step).get("classes")
        pairs = [str(c).split("->") for c in classes] if isinstance(classes, list) and \
            len(classes) == w.shape[-1] else None
        fig = plot.plot_dashboard(w, true=[p[0] for p in pairs] if pairs else None,
                                  pred=[p[-1] for p in pairs] if pairs else None,
                                  title=f"{name} \u00b7 {step} \u00b7 sample {sample}", **opts)
        return [(stem + "_dashboard", fig)]
    raise fail(f"unknown --kind {kind!r}; choose one of: {', '.join(KINDS)}")


def _only_step(store: Any, module: str) -> str:
    from attnscope.errors import SelectionError

    have = [s for s in store.steps if store.segments(module, s)]
    if len(have) == 1:
        return have[0]
    raise SelectionError(f"{module!r} is stored for several steps, pick one with --step: "
                         + ", ".join(have[:12]))


def plot(
    store: Path = typer.Argument(..., help="store directory written by capture(store=...)"),
    module: str = typer.Option(None, "--module", "-m",
                               help="module name or position (-1: last); default: the only one"),
    step: str = typer.Option(None, "--step", "-s", help="step, e.g. epoch_003 or test"),
    sample: int = typer.Option(0, "--sample", help="sample position within the step"),
    head: str = typer.Option("mean", "--head", help="head index, 'mean' or 'all'"),
    kind: str = typer.Option("heatmap", "--kind", "-k", help=" | ".join(KINDS)),
    out: Path = typer.Option(Path("figures"), "--out", "-o", help="output directory"),
    fmt: str = typer.Option("png", "--format", "-f", help="png | pdf | svg"),
    dpi: int = typer.Option(150, "--dpi", help="resolution of raster output"),
    cmap: str = typer.Option("viridis", "--cmap", help="matplotlib colour map"),
    show: bool = typer.Option(False, "--show", help="also open the figures in a window"),
) -> None:
    """Draw attention figures from a store: heatmap, head grid, model overview, 1-D bars,
    graph views, EEG dashboard or evolution across training steps."""
    import matplotlib

    from attnscope.errors import AttnscopeError
    from attnscope.plot import save_figure, show_figures
    from attnscope.store import open_store

    if kind not in KINDS:
        raise fail(f"unknown --kind {kind!r}; choose one of: {', '.join(KINDS)}")
    if fmt not in ("png", "pdf", "svg"):
        raise fail(f"unknown --format {fmt!r}; choose png, pdf or svg")
    if cmap not in matplotlib.colormaps:
        raise fail(f"unknown --cmap {cmap!r}; try viridis, magma, cividis, inferno")
    try:
        opened = open_store(store)
        figures = _figures(opened, kind, module, step, sample, _head(head), cmap, dpi)
    except (AttnscopeError, KeyError) as e:
        raise fail(str(e.args[0] if e.args else e), e) from None
    except ValueError as e:
        raise fail(str(e), e) from None
    out.mkdir(parents=True, exist_ok=True)
    for stem, fig in figures:
        path = out / f"{stem}.{fmt}"
        save_figure(fig, path, dpi)
        typer.echo(str(path))
    if show and not show_figures([f for _, f in figures]):
        typer.echo("no interactive display available; figures were saved only", err=True)
