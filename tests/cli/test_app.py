from __future__ import annotations

from attnscope.cli import main


def test_demo_list_names_every_family(capsys):
    assert main(["demo", "--list"]) == 0
    out = capsys.readouterr().out
    for family in ("translation", "sleep", "graph"):
        assert family in out


def test_unknown_demo_is_one_line_and_exit_code_2(capsys):
    assert main(["demo", "no-such-demo"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "available" in err[0]


def test_error_messages_with_brackets_are_printed_verbatim(capsys):
    from attnscope.cli.app import fail

    exit_ = fail("bad path [/tmp/x] given")
    assert exit_.exit_code == 2
    assert "[/tmp/x]" in capsys.readouterr().err


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
