"""``attnscope dashboard``: hierarchical (EEG / sleep-staging) attention of a user's model,
one dashboard and one figure per level for each of the first N samples."""

from __future__ import annotations

from pathlib import Path

import typer

from attnscope.cli import options
from attnscope.cli._console import console, err_console, fail


def dashboard(
    model: str = typer.Option(..., "--model", "-m",
                              help="pkg.module:factory, or a local Hugging Face model folder"),
    data: str = typer.Option(..., "--data", "-d",
                             help="pkg.module:factory giving (x, y) with x (epoch, channel, "
                                  "time) and y the class per epoch"),
    out: Path = typer.Option(Path("dashboard"), "--out", "-o", help="output directory"),
    checkpoint: Path = options.CHECKPOINT,
    trust_checkpoint: bool = options.TRUST,
    num_samples: int = typer.Option(4, "--num-samples", "-n", min=1,
                                    help="first N samples of the data"),
    channel_names: list[str] = typer.Option(
        None, "--channel-names", help="names of the channels, in order (EEG1 EEG2 ...)"),
    class_names: list[str] = typer.Option(
        None, "--class-names", help="names of the classes (W N1 N2 N3 REM)"),
    epochs: str = typer.Option(None, "--epochs", help="epochs to detail, e.g. 3,7 "
                               "[default: the misclassified and the most attended]"),
    epoch_module: str = typer.Option(None, "--epoch-module",
                                     help="glob of the module attending across epochs"),
    channel_module: str = typer.Option(None, "--channel-module",
                                       help="glob of the module attending across channels"),
    temporal_module: str = typer.Option(None, "--temporal-module",
                                        help="glob of the module attending over time"),
    epoch_seconds: float = typer.Option(30.0, "--epoch-seconds", help="length of one epoch"),
    temporal_style: str = typer.Option(
        "auto", "--temporal-style", help="heatmap (query x key per epoch and channel) | bars "
        "(what each time step receives) | auto (heatmap when there are several queries)"),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    dpi: int = options.DPI,
) -> None:
    """Dashboards of hierarchical attention: across epochs (true->pred), across channels
    and over time, for each of the first N samples."""
    from attnscope.cli.loading import load_data, load_model
    from attnscope.errors import AttnscopeError
    from attnscope.hierarchy import dashboard as run_dashboard

    if temporal_style not in ("auto", "heatmap", "bars"):
        raise fail(f"--temporal-style {temporal_style!r}: use heatmap, bars or auto")
    names = _split(channel_names)
    try:
        chosen = None if epochs is None else [int(e) for e in epochs.split(",") if e.strip()]
    except ValueError:
        raise fail(f"--epochs {epochs!r}: give comma-separated integers, e.g. 3,7") from None
    try:
        net = load_model(model, checkpoint, trust=trust_checkpoint)
        result = run_dashboard(
            net, load_data(data), out, num_samples=num_samples, channel_names=names,
            class_names=_split(class_names), epochs=chosen, epoch_module=epoch_module,
            channel_module=channel_module, temporal_module=temporal_module,
            epoch_seconds=epoch_seconds, batch_size=batch_size, dpi=dpi,
            temporal_style=temporal_style)
    except AttnscopeError as err:
        raise fail(str(err), err) from None
    for line in result.explain():
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    for note in result.notes:
        err_console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    for s in result.samples:
        console.print(f"sample {s['sample']}: epochs detailed {s['epochs']}"
                      + (f", misclassified {s['misclassified']}" if s["labels"] else ""),
                      markup=False, highlight=False)
    console.print(f"{len(result.files)} files in {out}", markup=False, highlight=False)


def _split(values: list[str] | None) -> list[str] | None:
    """``--channel-names EEG1 EEG2`` (repeated) or ``--channel-names EEG1,EEG2``."""
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]
