"""One --out folder, several engines: --overwrite replaces a run of any kind whole (no files of
the old run left for later commands to pick up), folders rnnkit did not write are never touched,
and a run of the wrong kind is named as such."""
import random

import pytest

from rnnkit.cli.main import main

CHAR = ["--steps", "3", "--hidden", "8", "--embedding", "4", "--batch-size", "2", "--seq-len", "8", "--quiet"]
WORD = ["--epochs", "1", "--hidden", "8", "--embedding", "8", "--quiet"]


@pytest.fixture
def texts(tmp_path):
    rng = random.Random(0)
    corpus = tmp_path / "c.txt"
    corpus.write_text("the king and the queen said to thee my lord\n" * 300)
    pairs = tmp_path / "pairs.tsv"
    words = ["".join(rng.choice("abcdefg") for _ in range(rng.randint(2, 6))) for _ in range(100)]
    pairs.write_text("".join(f"{w}\t{w.upper()[::-1]}\n" for w in words))
    return corpus, pairs


def test_overwrite_replaces_a_run_of_another_engine_whole(texts, tmp_path, capsys):
    corpus, pairs = texts
    run = tmp_path / "run"
    s2s = ["seq2seq", "train", "--pairs", str(pairs), "--out", str(run), "--epochs", "1", "--no-progress",
           "--n-a", "8", "--n-s", "8"]
    assert main(["train", "--level", "char", "--corpus", str(corpus), "--out", str(run), *CHAR]) == 0
    assert main(["train", "--level", "word", "--corpus", str(corpus), "--out", str(run), *WORD]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "--level", "word", "--corpus", str(corpus), "--out", str(run), *WORD, "--overwrite"]) == 0
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "metrics.json", "model.safetensors",
                                                     "rng.safetensors", "tokenizer.json"]
    assert main(s2s) == 2
    assert "holds a word-level n-gram run; pass --overwrite to replace it" in capsys.readouterr().err
    assert main([*s2s, "--overwrite"]) == 0
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "heldout.tsv", "model.safetensors",
                                                     "trainer.safetensors"]
    assert main(["train", "--level", "char", "--corpus", str(corpus), "--out", str(run), *CHAR, "--resume"]) == 2
    assert "holds a seq2seq run, which this engine does not resume" in capsys.readouterr().err
    assert main([*s2s[:-4], "--resume"]) == 0  # seq2seq resumes its own run


def test_files_and_foreign_folders_are_refused_by_seq2seq(texts, tmp_path, capsys):
    _, pairs = texts
    afile = tmp_path / "afile"
    afile.write_text("mine")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "config.json").write_text("{}")
    for out, message in ((afile, "is a file; expected a folder"),
                         (theirs, "holds a config.json that rnnkit did not write")):
        assert main(["seq2seq", "train", "--pairs", str(pairs), "--out", str(out), "--epochs", "1",
                     "--overwrite"]) == 2
        assert message in capsys.readouterr().err
    assert afile.read_text() == "mine" and (theirs / "config.json").read_text() == "{}"
    assert main(["seq2seq", "translate", str(afile), "abc"]) == 2
    assert "is a file; expected a run directory" in capsys.readouterr().err


def test_runs_started_with_relative_paths_resume_from_anywhere(texts, tmp_path, monkeypatch, capsys):
    corpus, pairs = texts
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--level", "char", "--corpus", corpus.name, "--out", "lm", *CHAR]) == 0
    assert main(["seq2seq", "train", "--pairs", pairs.name, "--out", "s2s", "--epochs", "1", "--no-progress",
                 "--n-a", "8", "--n-s", "8"]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["train", "--level", "char", "--out", str(tmp_path / "lm"), "--resume", "--steps", "5",
                 "--quiet"]) == 0
    assert main(["evaluate", str(tmp_path / "lm")]) == 0
    assert main(["seq2seq", "train", "--out", str(tmp_path / "s2s"), "--resume", "--epochs", "2",
                 "--no-progress"]) == 0
    monkeypatch.chdir(tmp_path)  # the relative name given again is the same corpus
    assert main(["train", "--level", "char", "--corpus", corpus.name, "--out", "lm", "--resume", "--steps", "6",
                 "--quiet"]) == 0
