"""``attnscope generate``: a decoder-only language model generates from prompts while its
attention is captured; one causal (token x token) map per layer and head, figures, a
store, head scores and the offline page per prompt."""

from __future__ import annotations

from pathlib import Path

import typer

from attnscope.cli import options


def generate(
    model: str = typer.Option(..., "--model", "-m",
                              help="a Hugging Face causal-LM directory, or pkg.module:factory "
                                   "returning a model with step(ids, cache)"),
    out: Path = typer.Option(..., "--out", "-o", help="output directory"),
    text: list[str] | None = typer.Option(None, "--input", "-i", help="a prompt (repeatable)"),
    file: Path | None = typer.Option(None, "--file", "-f", help="prompts, one per line"),
    max_new_tokens: int = typer.Option(20, "--max-new-tokens", "-n", min=0,
                                       help="most tokens to generate per prompt"),
    sample: bool = typer.Option(False, "--sample", help="sample instead of greedy decoding"),
    seed: int = typer.Option(0, "--seed", help="sampling seed (same seed, same tokens)"),
    temperature: float = typer.Option(1.0, "--temperature", min=1e-6, help="sampling temperature"),
    top_k: int | None = typer.Option(None, "--top-k", min=1, help="sample from the k best"),
    top_p: float | None = typer.Option(None, "--top-p", min=1e-6, max=1.0,
                                       help="nucleus sampling mass"),
    layer: int = typer.Option(-1, "--layer", "-l",
                              help="layer to draw; negative counts from the end"),
    tokenizer: Path | None = options.TOKENIZER,
    checkpoint: Path | None = options.CHECKPOINT,
    trust_checkpoint: bool = options.TRUST,
    include: list[str] | None = options.INCLUDE,
    exclude: list[str] | None = options.EXCLUDE,
    dpi: int = options.DPI,
    form: str = typer.Option("probs", "--form",
                             help="store form: probs | qk (queries and keys per layer, "
                                  "O(L*dim), exact) | qk16 (the same in float16)"),
) -> None:
    """Generate text while capturing attention: the prompt and every generated token in one
    causal map per layer, previous-token / induction / sink heads, view.html and a store
    (`attnscope stats OUT/prompt_000/store`)."""
    from attnscope.cli._console import console, fail
    from attnscope.cli.loading import load_model, load_tokenizer
    from attnscope.errors import AttnscopeError
    from attnscope.generation import generate as run
    from attnscope.text.inputs import read_lines

    if not (text or file):
        raise fail("give prompts with --input or --file")
    try:
        net = load_model(model, checkpoint, trust=trust_checkpoint, causal=True)
        tok = None
        if tokenizer is not None or (Path(model).is_dir()
                                     and _has_tokenizer(Path(model))):
            tok = load_tokenizer(tokenizer or model)
        prompts = list(text or []) + (read_lines(file) if file is not None else [])
        run(net, prompts, tokenizer=tok, max_new_tokens=max_new_tokens, sample=sample,
            seed=seed, temperature=temperature, top_k=top_k, top_p=top_p, layer=layer,
            out=out, include=include or None, exclude=exclude or None, dpi=dpi, form=form,
            echo=lambda line: console.print(line, markup=False, highlight=False,
                                            soft_wrap=True))
    except AttnscopeError as err:
        raise fail(str(err), err) from None
    console.print(f"wrote {out}/summary.json", markup=False, highlight=False)


def _has_tokenizer(folder: Path) -> bool:
    names = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
    return any((folder / n).is_file() for n in names)
