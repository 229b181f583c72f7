"""Argument errors are one line naming what was wrong; --device names a device torch knows."""
import pytest

from rnnkit.cli.main import main


@pytest.mark.parametrize("argv, message", [
    (["lm", "train", "--out", "x", "--cell", "nope"],
     "rnnkit lm train: error: argument --cell: invalid choice: 'nope'"),
    (["lm", "train", "--out", "x", "--device", "bogus"],
     "rnnkit lm train: error: argument --device: expected auto, cpu, cuda, cuda:N or mps, got 'bogus'"),
    (["bench", "--device", "cuda:x"],
     "rnnkit bench: error: argument --device: expected auto, cpu, cuda, cuda:N or mps, got 'cuda:x'"),
    (["nope"], "rnnkit: error: argument COMMAND: invalid choice: 'nope'"),
])
def test_argument_errors_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.count("\n") == 1 and err.startswith(message) and err.rstrip().endswith("--help)")


@pytest.mark.parametrize("argv, message", [
    (["train", "--level", "word", "--out", "x", "--minutes", "1"],
     "unrecognized arguments: --minutes 1 (options: rnnkit train --level word --help)"),
    (["train", "--level", "char", "--out", "x", "--bidirectional"],
     "unrecognized arguments: --bidirectional (options: rnnkit train --level char --help)"),
    (["seq2seq", "translate", "run", "abc", "--nope"],
     "unrecognized arguments: --nope (options: rnnkit seq2seq translate --help)"),
])
def test_options_of_another_command_or_level_say_where_the_options_are(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"rnnkit: error: {message}\n"


def test_generate_on_a_seq2seq_run_says_what_it_is(tmp_path, capsys):
    run = tmp_path / "s2s"
    run.mkdir()
    (run / "config.json").write_text('{"format": "rnnkit-seq2seq/1"}')
    assert main(["generate", str(run), "--length", "3"]) == 2
    assert f"{run} is a seq2seq run: translate with it (rnnkit seq2seq translate {run} TEXT)" in capsys.readouterr().err
