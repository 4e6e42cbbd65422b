"""``attnscope evaluate``: load a model, its checkpoint and its test set, then call
:func:`attnscope.evaluate.evaluate`. Bad input prints one line and exits with code 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from attnscope.cli import options

TASKS = ("regression", "classification")


def evaluate(
    model: str = typer.Option(..., "--model", "-m",
                              help="pkg.module:factory, or a Hugging Face model directory"),
    data: str = typer.Option(..., "--data", "-d",
                             help="pkg.module:factory returning the test Dataset or DataLoader"),
    out: Path = typer.Option(..., "--out", "-o", help="output directory"),
    checkpoint: Path | None = options.CHECKPOINT,
    output: Path | None = typer.Option(None, "--output",
                                       help="metrics JSON [default: <out>/results.json]"),
    task: str | None = typer.Option(None, "--task",
                                    help="regression | classification [default: from outputs]"),
    batch_size: int = typer.Option(32, "--batch-size", min=1,
                                   help="batch size when --data gives a Dataset"),
    include: list[str] | None = options.INCLUDE,
    attention_module: str | None = typer.Option(
        None, "--attention-module", help="captured module to export [default: the last]"),
    attention_sample: int | None = typer.Option(
        None, "--attention-sample",
        help="draw only this test sample [default: the first 4 samples and the test-set mean]"),
    dtype: str = typer.Option("float16", "--dtype",
                              help="float16 | float32: attention as captured and in the .npy"),
    attention: bool = typer.Option(True, "--attention/--no-attention",
                                   help="capture attention at all"),
    attention_plot: bool = typer.Option(True, "--attention-plot/--no-attention-plot",
                                        help="draw attention_test.png"),
    save_predictions: bool = typer.Option(True, "--save-predictions/--no-save-predictions",
                                          help="write predictions.csv"),
    trust_checkpoint: bool = options.TRUST,
    dpi: int = options.DPI,
    prefix: str | None = typer.Option(
        None, "--prefix", help="name files <PREFIX>_scatter.png, <PREFIX>_attention_heatmap"
        ".png, <PREFIX>_attention_weights.npy ... (several models in one folder)"),
) -> None:
    """Evaluate a model on its test set: predictions CSV, metrics JSON, figures, attention."""
    from attnscope.cli._console import console, err_console, fail
    from attnscope.cli.loading import load_data, load_model
    from attnscope.errors import AttnscopeError
    from attnscope.evaluate import evaluate as run_evaluation

    if task is not None and task not in TASKS:
        raise fail(f"--task {task!r} is unknown; use regression or classification")
    try:
        net = load_model(model, checkpoint, trust=trust_checkpoint)
        test_data = load_data(data)
        with _progress(err_console) as advance:
            result = run_evaluation(
                net, test_data, out, task=task, batch_size=batch_size, output=output,
                save_predictions=save_predictions, attention=attention,
                attention_plot=attention_plot, include=include or None,
                attention_module=attention_module, attention_sample=attention_sample,
                dpi=dpi, progress=advance, prefix=prefix, dtype=dtype,
                info={"model": str(model), "checkpoint": str(checkpoint) if checkpoint
                      else None, "data": data})
    except AttnscopeError as err:
        raise fail(str(err), err) from None
    for note in result.notes:
        err_console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    console.print(f"{result.task} on {result.n_samples} test samples: "
                  f"{_summary(result.metrics)}", highlight=False)
    for path in result.files.values():
        console.print(f"  {path}", markup=False, highlight=False, soft_wrap=True)


def _summary(metrics: dict[str, Any]) -> str:
    shown = [("mae", "MAE"), ("rmse", "RMSE"), ("r2", "R2"), ("accuracy", "accuracy"),
             ("macro_f1", "macro-F1")]
    return "  ".join(f"{name} {metrics[key]:.4g}" if metrics.get(key) is not None
                     else f"{name} n/a" for key, name in shown if key in metrics)


class _progress:
    """A transient progress bar on stderr when it is a terminal; yields the
    ``progress(done, total)`` callback (None when there is no terminal to draw on)."""

    def __init__(self, console: Any) -> None:
        from rich.progress import Progress

        self.bar = Progress(console=console, transient=True) if console.is_terminal else None
        self.task: Any = None

    def __enter__(self) -> Any:
        if self.bar is None:
            return None
        self.bar.start()
        self.task = self.bar.add_task("evaluating", total=None)
        return self.advance

    def advance(self, done: int, total: int | None) -> None:
        assert self.bar is not None
        self.bar.update(self.task, completed=done, total=total)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()
