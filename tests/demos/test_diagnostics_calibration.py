"""The diagnostics are calibrated on the trained demos: ``attnscope stats`` warns about
nothing in any trained family's test step (notes such as MiniLM's [CLS]/[SEP] sinks are
allowed), and the translation demo's maps pass ``translate``'s checks on every test
sentence. The other direction (each warning fires on a model built to show it) is in
tests/analysis/test_calibration.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import attnscope
from attnscope.analysis import head_stats
from tests.demos.conftest import NAMES


@pytest.mark.parametrize("name", NAMES)
def test_no_warning_on_a_trained_demo(demo_run, name):
    out, _ = demo_run(name)
    store = attnscope.open_store(out / "store")
    report = head_stats(store, steps=[store.steps[-1]], similarity=False)
    assert [f.line() for f in report.findings if f.severity == "warning"] == []


def test_translate_checks_pass_on_the_trained_translation_demo(demo_run):
    from attnscope.text import diagnostics as dg

    out, _ = demo_run("translation")
    store = attnscope.open_store(out / "store")
    labels = store.labels("test")
    sources, targets = labels["sample_source_tokens"], labels["sample_target_tokens"]
    for layer in (0, 1):
        cross = torch.as_tensor(np.asarray(attnscope.stitch(
            store, f"net.decoder.{layer}.cross_attn", step="test").weights))
        dec = torch.as_tensor(np.asarray(attnscope.stitch(
            store, f"net.decoder.{layer}.self_attn", step="test").weights))
        for i in range(cross.shape[0]):
            found = dg.diagnose(cross[i].nanmean(0).numpy(), dec[i].nanmean(0).numpy(), None,
                                sources[i], ["<s>", *targets[i]], targets[i], layer)
            assert [f.message for f in found if f.flagged] == []
