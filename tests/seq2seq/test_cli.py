"""The train -> evaluate -> translate loop through the CLI, on a small budget, and its bad inputs."""
import collections
import io
import json
import sys

import pytest

from rnnkit.cli.main import main

# A small, fixed amount of work (not a time budget) so the scores below do not depend on machine load.
SMALL = ["--train-size", "6000", "--epochs", "2", "--batch-size", "32", "--lr", "0.01", "--no-progress"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("s2s") / "dates"
    assert main(["seq2seq", "train", "--task", "dates", "--out", str(out), *SMALL]) == 0
    return out


def test_train_writes_a_complete_run(run_dir):
    assert {p.name for p in run_dir.iterdir()} == {"model.safetensors", "trainer.safetensors", "config.json",
                                                   "heldout.tsv"}
    config = json.loads((run_dir / "config.json").read_text())
    assert config["training"]["epochs"] == 2 and config["training"]["samples"] == 12_000
    assert len((run_dir / "heldout.tsv").read_text().splitlines()) == 1000


def test_evaluate_is_clearly_better_than_chance(run_dir, tmp_path, capsys):
    scores_path = tmp_path / "scores.json"
    assert main(["seq2seq", "evaluate", str(run_dir), "--json", str(scores_path)]) == 0
    assert "held-out pairs" in capsys.readouterr().out
    scores = json.loads(scores_path.read_text())
    assert set(scores) >= {"exact_match", "char_accuracy"}
    assert 0 <= scores["exact_match"] <= 1 and 0 <= scores["char_accuracy"] <= 1
    # Chance: the most common symbol at each position of these very targets (about half the
    # characters, and almost no whole date).
    targets = [line.split("\t")[1] for line in (run_dir / "heldout.tsv").read_text().splitlines()]
    guess = "".join(collections.Counter(t[i] for t in targets).most_common(1)[0][0] for i in range(10))
    chance = sum(a == b for t in targets for a, b in zip(t, guess)) / (10 * len(targets))
    assert chance < 0.6 and sum(t == guess for t in targets) < 5
    assert scores["char_accuracy"] > chance + 0.3 and scores["exact_match"] > 0.3


def test_translate_text_and_plot(run_dir, tmp_path, capsys):
    png = tmp_path / "attention.png"
    assert main(["seq2seq", "translate", str(run_dir), "3 May 1979", "--plot", str(png)]) == 0
    out = capsys.readouterr().out.strip()
    assert len(out) == 10 and out[4] == "-" and out[7] == "-"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_translate_stdin_keeps_line_order_and_blank_lines(run_dir, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("3 May 1979\n\n12/31/1999\n2001-02-03\n"))
    assert main(["seq2seq", "translate", str(run_dir)]) == 0
    lines = capsys.readouterr().out.split("\n")
    assert len(lines) == 5 and lines[1] == "" and lines[4] == ""
    assert all(len(line) == 10 for i, line in enumerate(lines[:4]) if i != 1)


def test_unknown_characters_warn_but_translate(run_dir, capsys):
    assert main(["seq2seq", "translate", str(run_dir), "3 May 1979 €"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.strip()) == 10 and "<unk>" in captured.err and "€" in captured.err


@pytest.mark.parametrize("argv, message", [
    (["{run}", "1" * 31], "has 31 characters; this model reads at most Tx=30"),
    (["{run}", "   "], "empty input"),
    (["{run}", "--plot", "a.png"], "--plot draws one translation"),
    (["{run}", "3 May 1979", "--plot", "{tmp}/a.jpg"], "PNG"),
    (["{tmp}/no-such-run", "3 May 1979"], "does not exist"),
])
def test_translate_bad_inputs(run_dir, tmp_path, capsys, argv, message):
    argv = [a.format(run=run_dir, tmp=tmp_path) for a in argv]
    assert main(["seq2seq", "translate", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error: ") and message in err and err.count("\n") == 1


def test_stdin_error_names_the_line(run_dir, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("3 May 1979\n" + "1" * 40 + "\n"))
    assert main(["seq2seq", "translate", str(run_dir)]) == 2
    captured = capsys.readouterr()
    assert "stdin line 2: " in captured.err and captured.out == ""


def test_train_refuses_to_overwrite_and_reports_bad_pairs(run_dir, tmp_path, capsys):
    assert main(["seq2seq", "train", "--out", str(run_dir), "--epochs", "1"]) == 2
    assert "--overwrite" in capsys.readouterr().err and not (tmp_path / "p").exists()
    bad = tmp_path / "bad.tsv"
    bad.write_text("abc\tcba\n" * 30 + "oops no tab\n", encoding="utf-8")
    assert main(["seq2seq", "train", "--pairs", str(bad), "--out", str(tmp_path / "p"), "--epochs", "1"]) == 2
    assert "line 31: expected 'source<TAB>target'" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_train_on_pairs_and_evaluate(tmp_path, capsys):
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
             "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango"]
    pairs = tmp_path / "reverse.tsv"
    pairs.write_text("".join(f"{w}{i}\t{(w + str(i))[::-1]}\n" for i in range(3) for w in words), encoding="utf-8")
    out = tmp_path / "rev"
    assert main(["seq2seq", "train", "--pairs", str(pairs), "--out", str(out), "--epochs", "2", "--no-progress"]) == 0
    assert main(["seq2seq", "evaluate", str(out), "--json", str(tmp_path / "s.json"), "--beam", "2"]) == 0
    scores = json.loads((tmp_path / "s.json").read_text())
    assert 0 <= scores["char_accuracy"] <= 1 and scores["n"] == 6
    assert main(["seq2seq", "translate", str(out), "kilo1", "--beam", "3"]) == 0


WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]


@pytest.fixture()
def reverse_pairs(tmp_path):
    pairs = tmp_path / "reverse.tsv"
    pairs.write_text("".join(f"{w}{i}\t{(w + str(i))[::-1]}\n" for i in range(4) for w in WORDS), encoding="utf-8")
    return pairs


def test_a_killed_run_resumes_exactly(reverse_pairs, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from rnnkit.seq2seq import checkpoint

    argv = ["seq2seq", "train", "--pairs", str(reverse_pairs), "--epochs", "3", "--batch-size", "8", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "straight")]) == 0
    real_save, saves = checkpoint.save, []

    def save_then_die(*args, **kwargs):  # killed right after the first epoch's checkpoint
        real_save(*args, **kwargs)
        saves.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save", save_then_die)
    assert main([*argv, "--out", str(tmp_path / "split")]) != 0
    monkeypatch.setattr(checkpoint, "save", real_save)
    assert json.loads((tmp_path / "split" / "config.json").read_text())["training"]["epochs"] == 1
    assert main([*argv, "--out", str(tmp_path / "split"), "--resume"]) == 0
    straight, split = (json.loads((tmp_path / d / "config.json").read_text())["training"] for d in ("straight", "split"))
    assert split["epochs"] == straight["epochs"] == 3 and split["steps"] == straight["steps"]
    assert [h["loss"] for h in split["history"]] == [h["loss"] for h in straight["history"]]
    a, b = (load_file(tmp_path / d / "model.safetensors") for d in ("straight", "split"))
    for name in a:
        assert (a[name] == b[name]).all(), name
    # A finished run resumed with the same budget has nothing left to do and changes nothing.
    before = (tmp_path / "split" / "model.safetensors").read_bytes()
    assert main([*argv, "--out", str(tmp_path / "split"), "--resume"]) == 0
    assert (tmp_path / "split" / "model.safetensors").read_bytes() == before


@pytest.mark.parametrize("extra, message", [
    (["--n-s", "32"], "model n_s: 64 in the run, 32 now"),
    (["--lr", "0.5"], "training learning_rate: 0.01 in the run, 0.5 now"),
    (["--seed", "3"], "task seed: 0 in the run, 3 now"),
])
def test_resume_refuses_other_settings(reverse_pairs, tmp_path, capsys, extra, message):
    argv = ["seq2seq", "train", "--pairs", str(reverse_pairs), "--out", str(tmp_path / "run"), "--no-progress"]
    assert main([*argv, "--epochs", "1"]) == 0
    before = (tmp_path / "run" / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main([*argv, "--epochs", "2", "--resume", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error: cannot resume") and message in err and err.count("\n") == 1
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == before


def test_resume_takes_the_runs_settings_when_not_given(reverse_pairs, tmp_path, capsys):
    run = tmp_path / "run"
    given = ["--pairs", str(reverse_pairs), "--n-a", "8", "--n-s", "16", "--cell", "lstm", "--batch-size", "8",
             "--lr", "0.02", "--seed", "5", "--lowercase"]
    assert main(["seq2seq", "train", "--out", str(run), "--epochs", "1", "--no-progress", *given]) == 0
    assert main(["seq2seq", "train", "--out", str(run), "--resume", "--epochs", "2", "--no-progress"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["training"]["epochs"] == 2 and config["model"]["n_a"] == 8 and config["task"]["seed"] == 5
    capsys.readouterr()
    assert main(["seq2seq", "train", "--out", str(run), "--resume", "--epochs", "3", "--cell", "gru"]) == 2
    assert "model cell: 'lstm' in the run, 'gru' now" in capsys.readouterr().err


def test_resume_needs_a_run(tmp_path, capsys):
    assert main(["seq2seq", "train", "--task", "dates", "--out", str(tmp_path / "none"), "--resume", "--epochs", "1"]) == 2
    assert "holds no seq2seq run to continue" in capsys.readouterr().err



@pytest.mark.parametrize("extra", [["--train-size", "0"], ["--tx", "0"], ["--threads", "-1"], ["--epochs", "0"]])
def test_train_refuses_nonsense_sizes_before_writing(tmp_path, capsys, extra):
    with pytest.raises(SystemExit) as exit_info:  # argparse refuses the value as it reads it
        main(["seq2seq", "train", "--task", "dates", "--out", str(tmp_path / "r"), *extra])
    assert exit_info.value.code == 2 and "expected" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_outputs_that_cannot_be_written_fail_before_the_work(run_dir, tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert main(["seq2seq", "evaluate", str(run_dir), "--json", str(blocker / "s.json")]) == 2
    assert main(["seq2seq", "translate", str(run_dir), "3 May 1979", "--plot", str(blocker / "a.png")]) == 2
    err = capsys.readouterr()
    assert err.out == "" and err.err.count("is a file, not a folder") == 2


def test_evaluate_reports_pairs_the_model_cannot_take(reverse_pairs, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["seq2seq", "train", "--pairs", str(reverse_pairs), "--out", str(run), "--epochs", "1",
                 "--no-progress"]) == 0
    ty = json.loads((run / "config.json").read_text())["model"]["ty"]
    bad = tmp_path / "bad.tsv"
    bad.write_text("abc\tcba\nabc\t" + "x" * (ty + 1) + "\n")
    capsys.readouterr()
    assert main(["seq2seq", "evaluate", str(run), "--pairs", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad} line 2: the target has {ty + 1} characters, more than the limit {ty}" in err
