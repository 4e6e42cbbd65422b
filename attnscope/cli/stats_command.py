"""``attnscope stats``: per-head metrics of a store as a table, two CSV files and the
diagnostics found, or the difference between two steps (``--diff``)."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

import typer

from attnscope.cli._console import console, err_console, fail
from attnscope.sources.blockwise import BUDGET

TABLE = ("min", "max", "mean", "entropy", "norm_entropy", "peak", "keys90", "distance",
         "first", "prev_token", "nearest_js")


def _modules(store: Any, patterns: list[str] | None) -> list[str] | None:
    if not patterns:
        return None
    names = list(store.modules)
    picked = []
    for p in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, p)] or (
            [names[int(p)]] if p.lstrip("-").isdigit() and -len(names) <= int(p) < len(names)
            else [])
        if not hits:
            listing = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
            raise fail(f"--module {p!r} matches no stored module; stored: {listing}")
        picked += [h for h in hits if h not in picked]
    return picked


def _wide() -> Any:
    """The terminal's console, or a wide one when the output is a file or pipe."""
    from rich.console import Console

    return console if console.is_terminal else Console(width=200)


def stats(
    store: Path = typer.Argument(..., help="store directory"),
    module: list[str] = typer.Option(None, "--module", "-m",
                                     help="module name, glob or position (repeatable)"),
    step: list[str] = typer.Option(None, "--step", "-s", help="step (repeatable)"),
    samples: str = typer.Option(None, "--samples", help="e.g. 0:10 or 3,5,8"),
    by: str = typer.Option("head", "--by", help="table rows: head | module | sample"),
    max_rows: int = typer.Option(200, "--max-rows", help="table rows shown with --by sample"),
    metrics: str = typer.Option(",".join(TABLE), "--metrics",
                                help="table columns (the CSV has every metric)"),
    out: Path = typer.Option(Path("."), "--out", "-o",
                             help="folder for stats_per_sample.csv and stats_per_head.csv"),
    no_csv: bool = typer.Option(False, "--no-csv", help="print only"),
    diagnostics: bool = typer.Option(True, help="print diagnostics with explanations"),
    similarity: bool = typer.Option(True, help="nearest head by JS distance (about half "
                                               "the time on many heads)"),
    diff: str = typer.Option(None, "--diff", help="two steps A,B: what changed per head"),
    workers: int = typer.Option(None, "--workers", help="run on a local dask cluster of N "
                                                        "worker processes"),
    scheduler: str = typer.Option(None, "--scheduler", help="run on an existing dask "
                                                            "scheduler, e.g. tcp://host:8786"),
    budget: int = typer.Option(None, "--budget", help=f"values read at once (default "
                               f"{BUDGET}); head similarity needs one sample's heads together"),
) -> None:
    """Per-head metrics (min/max/mean, entropy, distance, sinks, head types, redundancy)
    of a store, streamed: a table, CSV files and diagnostics."""
    from rich.progress import Progress

    from attnscope.analysis import METRICS, head_stats
    from attnscope.cli.store_commands import _parse
    from attnscope.errors import AttnscopeError
    from attnscope.store import open_store

    if by not in ("head", "module", "sample"):
        raise fail(f"--by must be 'head', 'module' or 'sample', not {by!r}")
    if by == "sample" and no_csv:
        raise fail("--by sample reads the per-sample CSV back: drop --no-csv")
    if workers is not None and scheduler is not None:
        raise fail("--workers starts a local cluster, --scheduler uses one: pick one")
    if workers is not None and workers < 1:
        raise fail(f"--workers must be 1 or more, not {workers}")
    cluster = workers if workers is not None else scheduler
    if budget is not None and budget < 1:
        raise fail(f"--budget must be 1 or more, not {budget}")
    cols = [m.strip() for m in metrics.split(",") if m.strip()]
    bad = [m for m in cols if m not in (*METRICS, "nearest_head", "nearest_js")]
    if bad:
        raise fail(f"unknown --metrics {bad}; available: {', '.join(METRICS)}, nearest_js")
    try:
        opened = open_store(store)
        names = _modules(opened, module)
        picks = _parse(samples, "--samples")
        if diff is not None:
            _diff(opened, names, diff, picks)
            return
        csv_path = None
        if not no_csv:
            out.mkdir(parents=True, exist_ok=True)
            csv_path = out / "stats_per_sample.csv"
        total = sum(opened.num_samples(m, s) for m in (names or opened.modules)
                    for s in (step or opened.steps) if s in opened.steps
                    and opened.segments(m, s))
        with Progress(console=err_console, transient=True) as bar:
            task = bar.add_task("reading", total=total)

            def advance(b: Any) -> None:  # a sample read head by head counts once
                if b.all_heads or b.heads[0] == 0:
                    bar.advance(task, len(b.samples))

            report = head_stats(opened, names, steps=step or None, samples=picks,
                                csv_path=csv_path, similarity=similarity, progress=advance,
                                cluster=cluster,
                                **({} if budget is None else {"budget": budget}))
        from attnscope.sources import rows_per_sample, step_samples

        samples = step_samples(opened)
        folds = {(r["module"], r["step"]): rows_per_sample(opened, r["module"], r["step"],
                                                           samples)
                 for r in report.rows}
        folds = {key: k for key, k in folds.items() if k > 1}
    except AttnscopeError as err:
        raise fail(str(err)) from None
    if by == "sample":
        _print_samples(csv_path, cols, max_rows, folds)
    else:
        _wide().print(report.table(cols, by, f"{store}: attention per {by} (mean over "
                                             "samples; min/max: extremes)"))
    if csv_path is not None:
        summary = report.write_csv(out / "stats_per_head.csv")
        typer.echo(f"wrote {csv_path} and {summary}")
    if folds:  # epochs or channels folded into the batch axis: rows, not samples
        names = sorted({m for m, _ in folds})
        k = max(folds.values())
        console.print(f"note: {', '.join(names[:4])}{' ...' if len(names) > 4 else ''} hold "
                      f"{k} folded rows per sample (epochs or channels in the batch axis); "
                      "their 'sample' column counts rows: row i is sample i // "
                      f"{k}, item i % {k}", highlight=False, markup=False, soft_wrap=True)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
    if diagnostics:
        from attnscope.analysis.report import summarize

        warnings = [f for f in report.findings if f.severity == "warning"]
        notes = [f for f in report.findings if f.severity == "note"]
        if warnings:
            console.print("[bold]diagnostics[/] (thresholds relative to uniform attention "
                          "over the same keys)", highlight=False)
            for line in summarize(warnings):
                console.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
        else:
            console.print("diagnostics: nothing unusual", highlight=False)
        if notes:
            console.print("notes (usual in trained models)", highlight=False)
            for line in summarize(notes):
                console.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)


def _print_samples(path: Path, cols: list[str], limit: int,
                   folds: dict[tuple[str, str], int]) -> None:
    """The first ``limit`` rows of the per-sample CSV as a table (it can be huge)."""
    import csv

    from rich.table import Table

    from attnscope.analysis.report import SHORT
    from attnscope.sources import row_name

    keys = ["module", "step", "sample", "head"]
    what = "sample (or folded row)" if folds else "sample"
    table = Table(title=f"attention per {what} and head (first {limit} rows of {path})")
    for c in (*keys, *cols):
        table.add_column("sample/row" if c == "sample" and folds else SHORT.get(c, c),
                         overflow="fold")
    with open(path, newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if i >= limit:
                break
            k = folds.get((row["module"], row["step"]), 1)
            if k > 1:  # "row 5 (sample 2, item 1)"
                row["sample"] = row_name(int(row["sample"]), k)
            table.add_row(*(row.get(c) or "-" for c in keys),
                          *(_short(row.get(c)) for c in cols))
    _wide().print(table)


def _short(text: str | None) -> str:
    try:
        return f"{float(text):.3g}" if text else "-"
    except ValueError:
        return text or "-"


def _diff(store: Any, names: list[str] | None, spec: str, picks: Any) -> None:
    from rich.table import Table

    from attnscope.analysis import compare_steps
    from attnscope.errors import SelectionError

    parts = [p.strip() for p in spec.split(",")]
    if len(parts) != 2:
        raise SelectionError(f"--diff takes two steps as A,B, not {spec!r}")
    for s in parts:
        if s not in store.steps:
            raise SelectionError(f"no step {s!r}; steps: {', '.join(store.steps[:12])}")
    a, b = parts
    table = Table(title=f"{a} -> {b}: change per head")
    cols = ("module", "head", "mean |dw|", "max |dw|", "JS", "d H/Hmax", "d peak",
            "d distance", "d first")
    for c in cols:
        table.add_column(c, justify="left" if c == "module" else "right")
    for name in names or store.modules:
        if store.module_info(name)["graph"] or not (store.segments(name, a)
                                                    and store.segments(name, b)):
            continue
        d = compare_steps(store, name, a, b, samples=picks)
        for h in range(len(d.js)):
            table.add_row(name, str(h), *(f"{float(x):.3g}" for x in (
                d.mean_abs[h], d.max_abs[h], d.js[h], d.metrics["norm_entropy"][h],
                d.metrics["peak"][h], d.metrics["distance"][h], d.metrics["first"][h])))
    _wide().print(table)
