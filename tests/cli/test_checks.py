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
