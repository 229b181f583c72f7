"""Every command's numeric options are checked while the arguments are read: a value out of
range (NaN, infinities, zero or negative rates, seeds beyond 2**32 - 1, ...) exits 2 with one
line naming the option and what it expects, before anything is created."""
import pytest

from rnnkit.cli.main import main

FINITE_POSITIVE = "expected a finite number > 0"
NON_NEGATIVE = "expected a finite number >= 0"
SEED = "expected an integer from 0 to 4294967295 (a seed)"

# (command words, option, bad value, what the message says was expected)
BAD = [
    (["lm", "train", "--out", "{out}"], "--lr", "inf", FINITE_POSITIVE),
    (["lm", "train", "--out", "{out}"], "--lr", "nan", FINITE_POSITIVE),
    (["lm", "train", "--out", "{out}"], "--lr", "0", FINITE_POSITIVE),
    (["lm", "train", "--out", "{out}"], "--lr", "-1e-3", FINITE_POSITIVE),
    (["lm", "train", "--out", "{out}"], "--clip", "nan", NON_NEGATIVE),
    (["lm", "train", "--out", "{out}"], "--clip", "-1", NON_NEGATIVE),
    (["lm", "train", "--out", "{out}"], "--weight-decay", "inf", NON_NEGATIVE),
    (["lm", "train", "--out", "{out}"], "--seed", "1" * 22, SEED),
    (["lm", "train", "--out", "{out}"], "--seed", "-1", SEED),
    (["lm", "train", "--out", "{out}"], "--dropout", "1", "expected a number in [0, 1)"),
    (["lm", "train", "--out", "{out}"], "--min-lr-ratio", "nan", "expected a number in [0, 1]"),
    (["lm", "train", "--out", "{out}"], "--val-fraction", "1", "expected a number in (0, 1)"),
    (["lm", "train", "--out", "{out}"], "--warmup", "-5", "expected an integer >= 0"),
    (["lm", "train", "--out", "{out}"], "--minutes", "inf", FINITE_POSITIVE),
    (["lm", "train", "--out", "{out}"], "--epochs", "nan", FINITE_POSITIVE),
    (["train", "--level", "word", "--out", "{out}"], "--lr", "inf", FINITE_POSITIVE),
    (["train", "--level", "word", "--out", "{out}"], "--seed", "1" * 22, SEED),
    (["train", "--level", "word", "--out", "{out}"], "--batch-size", "0", "expected an integer >= 1"),
    (["train", "--level", "word", "--out", "{out}"], "--epochs", "-1", "expected an integer >= 1"),
    (["train", "--level", "word", "--out", "{out}"], "--dropout", "nan", "expected a number in [0, 1)"),
    (["train", "--level", "word", "--out", "{out}"], "--validation-split", "1.5", "expected a number in [0, 1)"),
    (["train", "--level", "word", "--out", "{out}"], "--max-len", "1", "expected an integer from 2 to 1000000"),
    (["train", "--level", "word", "--out", "{out}"], "--hidden", "0", "expected an integer >= 1"),
    (["train", "--level", "char", "--out", "{out}"], "--clip", "nan", NON_NEGATIVE),
    (["lm", "generate", "{out}"], "--seed", "1" * 22, SEED),
    (["lm", "generate", "{out}"], "--temperature", "nan", NON_NEGATIVE),
    (["lm", "generate", "{out}"], "--top-p", "0", "expected a number in (0, 1]"),
    (["lm", "generate", "{out}"], "--length", "-1", "expected an integer >= 0"),
    (["lm", "generate", "{out}"], "--temperature", "-1", NON_NEGATIVE),
    (["lm", "generate", "{out}"], "--top-p", "1.5", "expected a number in (0, 1]"),
    (["lm", "train", "--out", "{out}"], "--min-lr-ratio", "-1", "expected a number in [0, 1]"),
    (["lm", "train", "--out", "{out}"], "--val-fraction", "0", "expected a number in (0, 1)"),
    (["lm", "generate", "{out}"], "--num-samples", "0", "expected an integer >= 1"),
    (["lm", "evaluate", "{out}"], "--batch-size", "0", "expected an integer >= 1"),
    (["generate", "{out}"], "--temperature", "-1", NON_NEGATIVE),
    (["generate", "{out}"], "--beam-width", "0", "expected an integer >= 1"),
    (["generate", "{out}"], "--seed", "-3", SEED),
    (["generate", "{out}"], "--words", "-3", "expected an integer >= 0"),
    (["seq2seq", "train", "--out", "{out}"], "--lr", "nan", FINITE_POSITIVE),
    (["seq2seq", "train", "--out", "{out}"], "--seed", "1" * 22, SEED),
    (["seq2seq", "translate", "{out}", "abc"], "--beam", "0", "expected an integer >= 1"),
    (["seq2seq", "evaluate", "{out}"], "--beam", "-2", "expected an integer >= 1"),
    (["bench"], "--steps", "0", "expected an integer >= 1"),
    (["bench"], "--batch-size", "-4", "expected an integer >= 1"),
    (["bench"], "--seed", "1" * 22, SEED),
    (["bench"], "--threads", "-1", "expected an integer >= 0"),
    (["export", "{out}", "{out}.onnx", "--format", "onnx"], "--opset", "99", "expected an integer from 14 to 20"),
    (["export", "{out}", "{out}.onnx", "--format", "onnx"], "--opset", "7", "expected an integer from 14 to 20"),
    (["demo"], "--seed", "-1", SEED),
    (["demo"], "--seconds", "nan", FINITE_POSITIVE),
]


@pytest.mark.parametrize("words, option, value, expected", BAD, ids=[f"{' '.join(w[:2])} {o} {v[:6]}" for w, o, v, _ in BAD])
def test_a_bad_numeric_option_exits_2_with_one_line_and_creates_nothing(words, option, value, expected, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [w.format(out=out) for w in words] + [f"{option}={value}"]  # = : argparse reads -1e-3 as an option
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.count("\n") == 1 and f"error: argument {option}: {expected}, got {value}" in err, err
    assert list(tmp_path.iterdir()) == []
