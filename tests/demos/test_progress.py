"""What a user sees while a demo runs: a line per stage and finished epoch (also when
stdout is not a terminal), an honest file count, ``--out`` as the folder itself."""

from __future__ import annotations

from attnscope.cli import main
from attnscope.demos import get_family
from attnscope.demos.progress import Event, reporting


def test_cli_shows_progress_and_writes_into_out(tmp_path, capsys):
    out = tmp_path / "my-demo"
    assert main(["demo", "lstm", "--quick", "--out", str(out)]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    for stage in ("building the data and the model", "epoch 1/8 done (train_loss",
                  "epoch 8/8 done", "test set: capturing its attention into the store",
                  "scoring the known pattern", "drawing figures", "writing view.html"):
        assert stage in printed, stage
    assert f"wrote {out}/ (store/, summary.md, view.html, 4 figures)" in printed
    assert (out / "store").is_dir() and (out / "view.html").is_file()  # not out/lstm/
    assert "trained in" in printed and "s in all" in printed


def test_events_reach_the_receiver_in_order(tmp_path):
    events: list[Event] = []
    with reporting(events.append):
        get_family("lstm").run(tmp_path, quick=True, trained=False)
    texts = [e.text for e in events]
    assert texts[0].startswith("building the data")
    assert texts[-1].startswith("writing view.html")
    assert any(t.startswith("drew 4 figures: attention_test_sample0.png") for t in texts)
    assert any("untrained: validation" in t for t in texts)
    assert not [t for t in texts if t.startswith("training epoch")]  # nothing trained
