"""``attnscope capture``: a user's model over a user's data, attention into a store."""

from __future__ import annotations

from pathlib import Path

import typer

from attnscope.cli import options
from attnscope.cli._console import console, err_console, fail


def capture(
    model: str = typer.Option(..., "--model", "-m",
                              help="pkg.module:factory, or a local Hugging Face model folder"),
    data: str = typer.Option(..., "--data", "-d", help="pkg.module:factory giving the data"),
    store: Path = typer.Option(..., "--store", "-o", help="store directory (created)"),
    step: str = typer.Option("capture", "--step", help="step name, e.g. epoch_003, test"),
    checkpoint: Path = options.CHECKPOINT,
    trust_checkpoint: bool = options.TRUST,
    include: list[str] = options.INCLUDE,
    exclude: list[str] = options.EXCLUDE,
    heads: str = typer.Option(None, "--heads", help="comma-separated head indices"),
    mean_heads: bool = typer.Option(False, "--mean-heads", help="average heads into one"),
    limit: int = typer.Option(None, "--limit", min=1, help="stop after this many samples"),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    dtype: str = typer.Option("float16", "--dtype", help="float16 | float32"),
    form: str = typer.Option("probs", "--form", help="probs | qk (sdpa/MHA maps as queries "
                             "and keys, exact, far smaller at long sequences) | qk16"),
) -> None:
    """Capture the attention of a model over a dataset into an attention store."""
    from rich.progress import Progress

    from attnscope.capturing.dataset import capture_dataset
    from attnscope.cli.loading import load_data, load_model
    from attnscope.data import dataset_length, make_loader
    from attnscope.errors import AttnscopeError
    from attnscope.store import open_writer

    try:
        head_list = None if heads is None else [int(h) for h in heads.split(",")]
    except ValueError:
        raise fail(f"--heads {heads!r}: give comma-separated integers, e.g. 0,3") from None
    try:
        net = load_model(model, checkpoint, trust=trust_checkpoint)
        loader = make_loader(load_data(data), batch_size)
        total = limit or dataset_length(loader)
        writer = open_writer(store, step=step, model=net, dtype=dtype, if_exists="overwrite",
                             expected_samples=total, form=form,
                             background=True)  # writing overlaps the next batch
        try:
            with Progress(console=err_console, transient=True) as bar:
                task = bar.add_task("capturing", total=total)
                done = capture_dataset(net, loader, writer, step=step, limit=limit,
                                       progress=lambda n: bar.advance(task, n),
                                       include=include or None, exclude=exclude or None,
                                       heads=head_list, reduce="mean" if mean_heads else None,
                                       dtype=dtype)
        except BaseException:
            writer.abort()
            raise
        writer.close()
    except AttnscopeError as err:
        raise fail(str(err), err) from None
    from attnscope.store import open_store

    for note in open_store(store).notes(step):  # what the capture skipped, and why
        err_console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    console.print(f"captured {done} samples into {store} (step {step!r}); "
                  f"see: attnscope store info {store}")
