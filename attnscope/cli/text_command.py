"""``attnscope translate`` (alias ``text``): sentences through a user's encoder-decoder or
encoder-only model, token-labelled attention figures and diagnostics per example."""

from __future__ import annotations

from pathlib import Path

import typer

from attnscope.cli import options


def translate(
    model: str = typer.Option(..., "--model", "-m",
                              help="pkg.module:factory, or a Hugging Face model directory"),
    out: Path = typer.Option(..., "--out", "-o", help="output directory"),
    text: list[str] | None = typer.Option(None, "--input", "-i",
                                          help="a sentence (repeatable)"),
    file: Path | None = typer.Option(None, "--file", "-f", help="sentences, one per line"),
    data: str | None = typer.Option(None, "--data", "-d",
                                    help="pkg.module:factory giving examples to decode"),
    num_examples: int = typer.Option(3, "--num-examples", "-n", min=1,
                                     help="how many --data examples"),
    layer: int = typer.Option(-1, "--layer", "-l",
                              help="layer to draw; negative counts from the end"),
    beam: int = typer.Option(1, "--beam", min=1, help="beam width (1: greedy)"),
    max_length: int | None = typer.Option(None, "--max-length", min=1,
                                          help="most generated tokens [default: 2 x source + 10]"),
    tokenizer: Path | None = options.TOKENIZER,
    checkpoint: Path | None = options.CHECKPOINT,
    trust_checkpoint: bool = options.TRUST,
    include: list[str] | None = options.INCLUDE,
    exclude: list[str] | None = options.EXCLUDE,
    show: bool = typer.Option(False, "--show", help="open the figures when done"),
    dpi: int = options.DPI,
) -> None:
    """Decode sentences while capturing attention: cross / causal self / encoder maps per
    layer with token labels, every head, and warnings (diffuse, copying, positional)."""
    from attnscope.cli._console import console, err_console, fail
    from attnscope.cli.loading import load_data, load_model, load_tokenizer
    from attnscope.errors import AttnscopeError
    from attnscope.text import translate as run
    from attnscope.text.inputs import dataset_inputs, read_lines

    if not (text or file or data):
        raise fail("give sentences with --input, --file or --data")
    try:
        net = load_model(model, checkpoint, trust=trust_checkpoint, generate=True)
        tok = None
        if tokenizer is not None or Path(model).is_dir():
            tok = load_tokenizer(tokenizer or model)
        inputs: list = list(text or [])
        if file is not None:
            inputs += read_lines(file)
        if data is not None:
            pad = getattr(net, "pad_id", getattr(tok, "pad_token_id", None))
            found = dataset_inputs(load_data(data), num_examples, pad)
            if len(found) < num_examples:
                err_console.print(f"note: --num-examples {num_examples}, but the data set has "
                                  f"{len(found)}: translating {len(found)}", markup=False,
                                  highlight=False, soft_wrap=True)
            inputs += found
        run(net, inputs, out, tokenizer=tok, layer=layer, beam=beam, max_length=max_length,
            include=include or None, exclude=exclude or None, dpi=dpi, show=show,
            echo=lambda line: console.print(line, markup=False, highlight=False,
                                            soft_wrap=True))
    except AttnscopeError as err:
        raise fail(str(err), err) from None
    console.print(f"wrote {out}/summary.json", markup=False, highlight=False)
