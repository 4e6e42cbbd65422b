"""Options several commands share, defined once so their flags and help read the same."""

from __future__ import annotations

import typer

TOKENIZER = typer.Option(None, "--tokenizer",
                         help="Hugging Face tokenizer directory [default: the model's]")
CHECKPOINT = typer.Option(None, "--checkpoint", "-c",
                          help="state_dict / Lightning / model_state_dict file")
TRUST = typer.Option(False, "--trust-checkpoint",
                     help="allow pickled code in the checkpoint (weights_only=False); only "
                          "for files you trust")
INCLUDE = typer.Option(None, "--include", help="module glob to capture (repeatable)")
EXCLUDE = typer.Option(None, "--exclude", help="module glob never captured (repeatable)")
DPI = typer.Option(150, "--dpi", min=20, max=1200, help="resolution of the PNGs")
