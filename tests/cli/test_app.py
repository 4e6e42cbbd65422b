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
    from attnscope.cli._console import fail

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


def test_traceback_flag_shows_the_error_the_model_raised(capsys):
    args = ["capture", "--model", "tests.evaluate.fixtures:make_broken", "--data",
            "tests.evaluate.fixtures:make_regression_data", "--store", "unused"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["--traceback", *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "ValueError: the factory needs a config" in err
    assert "direct cause" in err and err.strip().splitlines()[-1].startswith("error:")
    assert main(args) == 2  # the flag holds for one invocation only
    assert "Traceback" not in capsys.readouterr().err
