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
    """A file stem; module names stay unique and stable (see ``safe_filename``)."""
    from attnscope._files import safe_filename

    return "_".join(safe_filename(str(p)) for p in parts if p != "")


NORMS, REDUCTIONS = ("linear", "sqrt", "log"), ("mean", "max")
# which colour options each matrix figure takes (others draw no matrix, or scale their own)
SCALES = {"heatmap": ("norm", "vmin", "vmax", "reduce"), "grid": ("norm", "reduce"),
          "graph": ("norm", "vmax")}


def colour_scale(kind: str, head: int | str, norm: str | None, vmin: str | None,
                 vmax: float | None, reduce: str | None) -> dict[str, Any]:
    """``--norm/--vmin/--vmax/--reduce`` checked (one-line errors) as plot keywords."""
    given = {k: v for k, v in (("norm", norm), ("vmin", vmin), ("vmax", vmax),
                               ("reduce", reduce)) if v is not None}
    if norm is not None and norm not in NORMS:
        raise fail(f"--norm must be one of {', '.join(NORMS)}, not {norm!r}")
    if reduce is not None and reduce not in REDUCTIONS:
        raise fail(f"--reduce must be mean or max, not {reduce!r}")
    if vmin is not None and vmin != "data":
        try:
            given["vmin"] = float(vmin)
        except ValueError:
            raise fail(f"--vmin must be a number or 'data', not {vmin!r}") from None
    if isinstance(given.get("vmin"), float) and vmax is not None and given["vmin"] >= vmax:
        raise fail(f"--vmin {given['vmin']:g} must be below --vmax {vmax:g}")
    use = "grid" if kind == "heatmap" and head == "all" else kind
    extra = [f"--{k}" for k in given if k not in SCALES.get(use, ())]
    if extra:
        takes = ", ".join(f"--{k}" for k in SCALES.get(use, ())) or "none of them"
        raise fail(f"{' and '.join(extra)} {'does' if len(extra) == 1 else 'do'} not apply "
                   f"to --kind {kind}"
                   f"{' --head all' if use != kind else ''} (it takes {takes})")
    return given


def _figures(store: Any, kind: str, module: str | None, step: str | None, sample: int,
             head: int | str, cmap: str, dpi: int, graph: dict[str, Any] | None = None,
             scale: dict[str, Any] | None = None) -> list[tuple[str, Any]]:
    """(file stem, figure) pairs for one ``--kind`` (``graph``: node/time-step/top-k;
    ``scale``: colour options from :func:`colour_scale`)."""
    from attnscope import plot, sources

    opts = {"cmap": cmap, "dpi": dpi, **(scale or {})}
    if kind == "overview":
        return [(_slug("overview", step, f"s{sample}"),
                 plot.plot_overview(store, step=step, sample=sample, **opts))]
    if kind == "dashboard":  # every level, assembled from the store's entries
        from attnscope.hierarchy import plot_stored_dashboard

        step = step or _only_step(store, None)
        fig, _ = plot_stored_dashboard(store, step, sample, globs={"epoch": module}, **opts)
        return [(_slug("dashboard", step, f"s{sample}"), fig)]
    name = sources.pick_name(list(store.modules), module)
    if kind == "evolution":
        stat = plot.plot_head_stats(store, name, samples=[sample])
        return [(_slug(name, "evolution", f"h{head}"),
                 plot.plot_evolution(store, name, sample=sample,
                                     head="mean" if head == "all" else head, cmap=cmap,
                                     dpi=dpi)),
                (_slug(name, "head-stats"), stat)]
    step = step or _only_step(store, name)
    sel = {"module": name, "step": step, "sample": sample}
    stem = _slug(name, step, f"s{sample}")
    if head == "all" and kind in ("graph", "bars"):
        head = "mean"
    if kind == "graph" or (graph and any(v is not None for v in graph.values()
                                         if not isinstance(v, str))):
        from attnscope.cli._graph_plots import graph_figures

        if kind != "graph":
            raise fail("--node, --time-step, --axis and --top-k apply to --kind graph")
        if not store.module_info(name).get("graph"):
            raise fail(f"{name!r} holds dense maps; --kind graph is for edge maps")
        g = graph or {}
        return graph_figures(store, name, step, sample, head, g.get("node"),
                             g.get("time_step"), g.get("top_k"), g.get("axis", "auto"), opts,
                             stem, g.get("picks"))
    if kind in ("grid", "heatmap") and _one_query(store, name, step, sample):
        # 1-D attention (one weight per key) is a bar chart, never a one-row matrix
        return [(stem + f"_h{head}_bars", plot.plot_bars(
            store, **sel, head="mean" if head == "all" else head, dpi=dpi,
            labels=_key_labels(store, step, sample, name)))]
    if kind == "grid" or (kind == "heatmap" and head == "all"):
        return [(stem + "_heads", plot.plot_heads(store, **sel, **opts))]
    if kind == "heatmap":
        return [(stem + f"_h{head}", plot.plot_heatmap(store, **sel, head=head, **opts))]
    if kind == "bars":
        return [(stem + f"_h{head}_bars",
                 plot.plot_bars(store, **sel, head=head, dpi=dpi))]
    raise fail(f"unknown --kind {kind!r}; choose one of: {', '.join(KINDS)}")


def _one_query(store: Any, module: str, step: str, sample: int) -> bool:
    lengths = store.lengths(module, step)
    return bool(len(lengths)) and -len(lengths) <= sample < len(lengths) and \
        int(lengths[sample][0]) == 1


def _key_labels(store: Any, step: str, sample: int, module: str) -> list[str] | None:
    """Stored labels that fit the key axis (time steps, tokens, channels)."""
    from attnscope.sources import read_dense

    return read_dense(store, module, step, sample, [0]).axis_labels().key


def _only_step(store: Any, module: str | None) -> str:
    """The one step ``module`` (or, with None, the store) has data for."""
    from attnscope.errors import SelectionError

    names = [module] if module is not None else list(store.modules)
    have = [s for s in store.steps if any(store.segments(m, s) for m in names)]
    if len(have) == 1:
        return have[0]
    what = repr(module) if module is not None else "the store"
    raise SelectionError(f"{what} is stored for several steps, pick one with --step: "
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
    node: int = typer.Option(None, "--node", help="graph: node (destination row, or the "
                             "node dim of a temporal graph)"),
    time_step: int = typer.Option(None, "--time-step", help="graph: time step (time dim of "
                                  "a spatial graph, or destination row of a temporal one)"),
    top_k: int = typer.Option(None, "--top-k", min=1, help="graph: strongest edges shown"),
    graph_axis: str = typer.Option("auto", "--graph-axis", help="graph: what the nodes are: "
                                   "auto | node | time"),
    axis: list[str] = typer.Option(None, "--axis", help="graph: NAME=INDEX for another dim "
                                   "between sample and edge (channel=2, dim3=0; repeatable)"),
    norm: str = typer.Option(None, "--norm", help="colour scale: linear | sqrt | log "
                             "(sqrt/log show weak weights beside strong ones)"),
    vmin: str = typer.Option(None, "--vmin", help="colour scale start: a number, or 'data' "
                             "for the smallest weight drawn (near-uniform long heads)"),
    vmax: float = typer.Option(None, "--vmax", help="colour scale end (default: the largest "
                               "weight drawn)"),
    reduce: str = typer.Option(None, "--reduce", help="maps larger than the figure's pixels: "
                               "mean (default) or max of each block"),
) -> None:
    """Draw attention figures from a store: heatmap, head grid, model overview, 1-D bars,
    graph views, EEG dashboard or evolution across training steps."""
    import matplotlib

    from attnscope.errors import AttnscopeError
    from attnscope.plot import DPI_RANGE, save_figure, show_figures
    from attnscope.store import open_store

    if kind not in KINDS:
        raise fail(f"unknown --kind {kind!r}; choose one of: {', '.join(KINDS)}")
    if fmt not in ("png", "pdf", "svg"):
        raise fail(f"unknown --format {fmt!r}; choose png, pdf or svg")
    low, high = DPI_RANGE
    if not low <= dpi <= high:
        raise fail(f"--dpi {dpi} is out of range; use {low}..{high} (150 is typical)")
    if cmap not in matplotlib.colormaps:
        raise fail(f"unknown --cmap {cmap!r}; try viridis, magma, cividis, inferno")
    try:
        from attnscope.cli._graph_plots import parse_axes

        opened = open_store(store)
        scale = colour_scale(kind, _head(head), norm, vmin, vmax, reduce)
        figures = _figures(opened, kind, module, step, sample, _head(head), cmap, dpi,
                           {"node": node, "time_step": time_step, "top_k": top_k,
                            "axis": graph_axis, "picks": parse_axes(axis) or None}, scale)
    except (AttnscopeError, KeyError) as e:
        raise fail(str(e.args[0] if e.args else e), e) from None
    except ValueError as e:
        raise fail(str(e), e) from None
    try:
        for stem, fig in figures:
            path = out / f"{stem}.{fmt}"
            save_figure(fig, path, dpi)
            typer.echo(str(path))
    except AttnscopeError as e:
        raise fail(str(e), e) from None
    if show and not show_figures([f for _, f in figures]):
        typer.echo("no interactive display available; figures were saved only", err=True)
