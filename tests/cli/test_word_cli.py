"""`rnnkit train --level word` and `rnnkit generate` end to end on a slice of the sonnets (every cell, the
course presets), and their errors."""
import json

import pytest

from rnnkit.cli.main import main

TINY = ["--embedding", "8", "--hidden", "16", "--batch-size", "64", "--seed", "1"]
SMALL = [*TINY, "--max-len", "6", "--quiet"]


@pytest.fixture
def sonnet_slice(data_dir, tmp_path):
    path = tmp_path / "sonnets-slice.txt"
    lines = (data_dir / "sonnets.txt").read_text(encoding="utf-8-sig").split("\n")[:150]
    path.write_text("\n".join(lines) + "\n")
    return path


def one_error_line(capsys, code):
    """The one error line (the command's, or argparse's for an option out of range)."""
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(("rnnkit: error: ", "rnnkit train: error: ",
                                                              "rnnkit generate: error: ")), err
    return err[0]


def exit_code(argv):
    """`main`'s exit status, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as exited:
        return exited.code


def test_train_generate_resume_end_to_end(sonnet_slice, tmp_path, capsys, monkeypatch):
    run_dir, report = tmp_path / "run", tmp_path / "train.json"
    code = exit_code(["train", "--level", "word", "--corpus", str(sonnet_slice), "--out", str(run_dir), "--epochs", "2",
                 "--validation-split", "0.1", "--json", str(report), *TINY])
    out = capsys.readouterr().out
    assert code == 0 and "Total params:" in out and "Epoch 2/2" in out
    result = json.loads(report.read_text())
    assert result["epochs_done"] == 2 and {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(result["final"])
    assert result["samples"] > 900 and result["options"]["hidden"] == 16

    def generate(*extra):
        assert main(["generate", str(run_dir), "--prime", "From fairest creatures", "--words", "15", *extra]) == 0
        return capsys.readouterr()

    first = generate("--temperature", "0.8", "--seed", "7").out
    assert first == generate("--temperature", "0.8", "--seed", "7").out
    assert first.startswith("From fairest creatures ") and len(first.split()) == 3 + 15
    assert generate("--temperature", "0", "--seed", "1").out == generate("--temperature", "0", "--seed", "2").out
    gen_json = tmp_path / "gen.json"
    printed = generate("--top-k", "5", "--top-p", "0.9", "--seed", "3", "--json", str(gen_json)).out
    saved = json.loads(gen_json.read_text())
    assert saved["text"] == printed.strip() and saved["seed"] == 3 and len(saved["words"]) == 15
    assert saved["top_k"] == 5 and saved["window"] == result["max_len"] - 1
    assert len(generate("--beam-width", "3").out.split()) == 18

    long_prime = " ".join(["thy beauty's use"] * 20) + " zyzzyva"
    assert main(["generate", str(run_dir), "--prime", long_prime, "--words", "4", "--seed", "0"]) == 0
    captured = capsys.readouterr()
    assert "warning" in captured.err and "zyzzyva" in captured.err and "dropped" in captured.err
    assert len(captured.out.split()) == 61 + 4

    monkeypatch.chdir(sonnet_slice.parent)  # the saved corpus path is absolute: resuming works from anywhere
    assert main(["train", "--level", "word", "--corpus", sonnet_slice.name, "--out", str(run_dir), "--resume",
                 "--epochs", "3", "--quiet", *TINY]) == 0
    assert [e["epoch"] for e in json.loads((run_dir / "metrics.json").read_text())["epochs"]] == [1, 2, 3]
    code = exit_code(["train", "--out", str(run_dir), "--resume", "--hidden", "32"])
    assert "only --epochs can change" in one_error_line(capsys, code)
    code = exit_code(["train", "--corpus", str(sonnet_slice), "--out", str(run_dir), *TINY])
    assert "already holds a run" in one_error_line(capsys, code)


@pytest.mark.parametrize("content, message", [
    ("", "is empty"), ("single\nwords\nonly.\n", "no line of two or more words"),
])
def test_unusable_corpus(tmp_path, capsys, content, message):
    corpus = tmp_path / "c.txt"
    corpus.write_text(content)
    code = exit_code(["train", "--corpus", str(corpus), "--out", str(tmp_path / "run")])
    assert message in one_error_line(capsys, code)
    assert not (tmp_path / "run").exists()


def test_unknown_corpus_lists_the_known_ones(tmp_path, capsys):
    code = exit_code(["train", "--corpus", "sonets", "--out", str(tmp_path / "run")])
    line = one_error_line(capsys, code)
    assert "unknown corpus 'sonets'" in line and "sonnets" in line and "tiny-shakespeare" in line


@pytest.mark.parametrize("argv, message", [
    (["train", "--level", "char", "--corpus", "no-such-corpus", "--out", "x"], "no-such-corpus"),
    (["train", "--out", "x", "--preset", "moroney-sonnets", "--hidden", "10"], "fixes the architecture"),
    (["train", "--out", "x", "--threads", "0"], "--threads"),
    (["generate", "{tmp}", "--prime", "x"], "not an rnnkit run folder"),
    (["generate", "{tmp}/nowhere"], "no such run folder"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    code = exit_code([a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert message in one_error_line(capsys, code)


def test_bad_generation_options(tmp_path, capsys, sonnet_slice):
    run_dir = tmp_path / "run"
    assert main(["train", "--corpus", str(sonnet_slice), "--out", str(run_dir), "--epochs", "1", "--max-len", "4",
                 "--quiet", *TINY]) == 0
    for extra, message in ((["--top-p", "1.5"], "--top-p"), (["--beam-width", "2", "--temperature", "0.5"], "drop --temperature"),
                           (["--temperature=-1"], "--temperature"), (["--words=-3"], "--words")):
        code = exit_code(["generate", str(run_dir), "--prime", "so", *extra])
        assert message in one_error_line(capsys, code), extra


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """One small trained run (2 epochs on 150 sonnet lines), shared by the generation and error tests."""
    import os
    from pathlib import Path

    data = os.environ.get("RNNKIT_DATA_DIR")
    if not data or not Path(data).is_dir():
        pytest.skip("RNNKIT_DATA_DIR is not set to the shared corpora folder (../shared/data)")
    root = tmp_path_factory.mktemp("word-run")
    corpus = root / "slice.txt"
    corpus.write_text("\n".join((Path(data) / "sonnets.txt").read_text(encoding="utf-8-sig").split("\n")[:150]) + "\n")
    assert main(["train", "--corpus", str(corpus), "--out", str(root / "run"), "--epochs", "2", *SMALL]) == 0
    return root / "run"


@pytest.mark.parametrize("prime, unknown", [
    ("", []), ("!!! ... ???", []), ("Zorblax quux", ["zorblax", "quux"]),
    ("Thou art blorptastic, zorblax", ["blorptastic", "zorblax"]),
])
def test_any_prime_generates_and_names_unknown_words(small_run, tmp_path, capsys, prime, unknown):
    report = tmp_path / "gen.json"
    assert main(["generate", str(small_run), "--prime", prime, "--words", "6", "--seed", "2",
                 "--json", str(report)]) == 0
    captured = capsys.readouterr()
    result = json.loads(report.read_text())
    assert result["unknown_words"] == unknown and len(result["words"]) == 6
    assert captured.out.strip() == result["text"] and result["text"].endswith(" ".join(result["words"]))
    if unknown:
        line, = captured.err.strip().splitlines()
        assert line == f"rnnkit: warning: prime word(s) not in the run's vocabulary, dropped: {', '.join(unknown)}"
    else:
        assert captured.err == ""


def test_zero_words_prints_the_prime(small_run, capsys):
    assert main(["generate", str(small_run), "--prime", "Thy beauty", "--words", "0"]) == 0
    assert capsys.readouterr().out == "Thy beauty\n"


def test_train_json_describes_the_run(small_run, tmp_path, capsys):
    report = tmp_path / "r.json"
    assert main(["train", "--out", str(small_run), "--resume", "--json", str(report)]) == 0
    assert "already trained 2 epochs" in capsys.readouterr().out
    result = json.loads(report.read_text())
    assert set(result) >= {"run", "level", "epochs_done", "final", "history", "samples", "vocab_size", "max_len",
                           "params", "options", "seconds"}
    assert result["epochs_done"] == 2 and [e["epoch"] for e in result["history"]] == [1, 2]
    assert result["max_len"] == 6 and result["options"]["max_len"] == 6 and result["final"] == result["history"][-1]


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("argv, message", [
    (["train", "--out", "{run}", "--resume", "--cell", "gru"], "only --epochs can change"),
    (["train", "--out", "{run}", "--resume", "--epochs", "0"], "argument --epochs: expected an integer >= 1, got 0"),
    (["train", "--out", "{run}", "--corpus", "sonnets"], "already holds a run"),
    (["generate", "{run}", "--top-k", "0"], "argument --top-k"),
    (["generate", "{run}", "--beam-width", "0"], "argument --beam-width"),
    (["generate", "{run}", "--beam-width", "3", "--top-k", "2"], "beam search"),
])
def test_refused_commands_leave_the_run_and_json_untouched(small_run, tmp_path, capsys, argv, message):
    before, report = snapshot(small_run), tmp_path / "out.json"
    code = exit_code([a.replace("{run}", str(small_run)) for a in argv] + ["--json", str(report)])
    assert message in one_error_line(capsys, code)
    assert snapshot(small_run) == before and not report.exists()


@pytest.mark.parametrize("setup, argv, message", [
    # a corpus file of its own: the check must not depend on the shared corpora (or the network)
    (lambda d: ((d / "run").write_text("x"), (d / "c.txt").write_text("shall i compare thee\nto a day\n")),
     ["train", "--out", "{d}/run", "--corpus", "{d}/c.txt"], "is a file"),
    (lambda d: None, ["train", "--out", "{d}/run", "--epochs", "0"], "argument --epochs: expected an integer >= 1, got 0"),
    (lambda d: None, ["train", "--out", "{d}/run", "--resume"], "no such run folder"),
    (lambda d: (d / "run").mkdir(), ["train", "--out", "{d}/run", "--resume"], "not an rnnkit run folder"),
    (lambda d: None, ["generate", "{d}/run.txt"], "no such run folder"),
])
def test_bad_output_folders(tmp_path, capsys, setup, argv, message):
    setup(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code = exit_code([a.replace("{d}", str(tmp_path)) for a in argv])
    assert message in one_error_line(capsys, code)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_incomplete_or_foreign_run_folders(small_run, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(small_run, broken)
    (broken / "tokenizer.json").unlink()
    assert "tokenizer.json is missing" in one_error_line(capsys, main(["generate", str(broken)]))
    assert "tokenizer.json is missing" in one_error_line(capsys, main(["train", "--out", str(broken), "--resume"]))
    (broken / "config.json").write_text('{"format": "rnnkit-run/1", "level": "sentence"}')
    assert "'sentence'-level run" in one_error_line(capsys, main(["generate", str(broken)]))


@pytest.mark.parametrize("cell, blocks", [("mingru", 2), ("minlstm", 3)])
def test_parallel_scan_cells_train_resume_and_generate(sonnet_slice, tmp_path, capsys, cell, blocks):
    run_dir, report = tmp_path / "run", tmp_path / "train.json"
    assert main(["train", "--level", "word", "--corpus", str(sonnet_slice), "--out", str(run_dir), "--cell", cell,
                 "--bidirectional", "--layers", "2", "--epochs", "1", *SMALL]) == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["options"]["cell"] == cell and config["options"]["layers"] == 2
    # Embedding, two bidirectional layers of input-only gates, the softmax layer
    vocab = config["vocab_size"]
    assert config["params"] == vocab * 8 + 2 * blocks * 16 * (8 + 1) + 2 * blocks * 16 * (32 + 1) + 33 * vocab
    assert main(["train", "--out", str(run_dir), "--resume", "--epochs", "2", "--json", str(report), "--quiet"]) == 0
    assert json.loads(report.read_text())["epochs_done"] == 2
    capsys.readouterr()

    def generate(*extra):
        assert main(["generate", str(run_dir), "--prime", "From fairest creatures", "--words", "8", *extra]) == 0
        return capsys.readouterr().out

    assert generate("--seed", "4") == generate("--seed", "4")
    assert len(generate("--beam-width", "3").split()) == 3 + 8


def test_graded_preset_from_the_command_line(sonnet_slice, tmp_path, capsys):
    report = tmp_path / "train.json"
    assert main(["train", "--corpus", str(sonnet_slice), "--out", str(tmp_path / "run"), "--max-len", "6",
                 "--preset", "moroney-sonnets-graded", "--epochs", "1", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    result = json.loads(report.read_text())
    vocab = result["vocab_size"]
    assert result["params"] == vocab * 100 + 2 * 4 * 150 * (100 + 150 + 1) + (300 + 1) * vocab
    assert result["options"]["preset"] == "moroney-sonnets-graded" and result["options"]["batch_size"] == 32
    rows = [line.split()[0] for line in out.splitlines() if line.startswith(("embedding", "bidirectional", "dense", "dropout", "lstm"))]
    assert rows == ["embedding", "bidirectional", "dense"] and "(None, 300)" in out


def help_text(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines anywhere


def test_help_lists_cells_for_both_levels_and_the_presets(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping inside hyphenated names
    word = help_text(capsys, ["train", "--help"])
    assert "recurrent cell: lstm, gru, rnn, mingru, minlstm" in word
    assert "--level char: lstm, gru, rnn, mingru, minlstm" in word
    assert "moroney-sonnets: the course lab model" in word and "moroney-sonnets-graded: the course's graded model" in word
    char = help_text(capsys, ["train", "--level", "char", "--help"])
    assert "mingru" in char and "minlstm" in char


def test_a_refused_validation_split_leaves_no_run_folder(sonnet_slice, tmp_path, capsys):
    run = tmp_path / "run"
    code = exit_code(["train", "--level", "word", "--corpus", str(sonnet_slice), "--out", str(run), "--epochs", "1",
                 "--validation-split", "0.9999", *SMALL])
    assert "leaves no training or no validation samples" in one_error_line(capsys, code)
    assert not run.exists()
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    code = exit_code(["train", "--level", "word", "--corpus", str(sonnet_slice), "--out", str(run), "--epochs", "1",
                 "--json", str(blocker / "r.json"), *SMALL])
    assert "is a file, not a folder" in one_error_line(capsys, code)
    assert not run.exists()  # refused before training
