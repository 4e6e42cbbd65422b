from __future__ import annotations

from attnscope.cli import main


def test_demo_lists_every_map_of_the_builtin_model(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "6 attention maps" in out and "cross" in out and "mha" in out


def test_strategies_lists_the_registry(capsys):
    assert main(["strategies"]) == 0
    assert "sdpa" in capsys.readouterr().out


def test_unknown_command_is_exit_code_2_without_traceback(capsys):
    assert main(["no-such-command"]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out


def test_store_errors_are_one_line_and_exit_code_2(tmp_path, capsys):
    assert main(["store", "info", str(tmp_path / "missing")]) == 2
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "data.txt").write_text("x")
    assert main(["store", "info", str(tmp_path / "foreign")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error:") for line in err)
