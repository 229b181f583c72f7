"""`rnnkit train --level word` and `rnnkit generate` end to end on a slice of the sonnets, and their errors."""
import json

import pytest

from rnnkit.cli.main import main

TINY = ["--embedding", "8", "--hidden", "16", "--batch-size", "64", "--seed", "1"]


@pytest.fixture
def sonnet_slice(data_dir, tmp_path):
    path = tmp_path / "sonnets-slice.txt"
    lines = (data_dir / "sonnets.txt").read_text(encoding="utf-8-sig").split("\n")[:150]
    path.write_text("\n".join(lines) + "\n")
    return path


def one_error_line(capsys, code):
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("rnnkit: error: "), err
    return err[0]


def test_train_generate_resume_end_to_end(sonnet_slice, tmp_path, capsys, monkeypatch):
    run_dir, report = tmp_path / "run", tmp_path / "train.json"
    code = main(["train", "--level", "word", "--corpus", str(sonnet_slice), "--out", str(run_dir), "--epochs", "2",
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
    code = main(["train", "--out", str(run_dir), "--resume", "--hidden", "32"])
    assert "only --epochs can change" in one_error_line(capsys, code)
    code = main(["train", "--corpus", str(sonnet_slice), "--out", str(run_dir), *TINY])
    assert "already holds a run" in one_error_line(capsys, code)


@pytest.mark.parametrize("content, message", [
    ("", "is empty"), ("single\nwords\nonly.\n", "no line of two or more words"),
])
def test_unusable_corpus(tmp_path, capsys, content, message):
    corpus = tmp_path / "c.txt"
    corpus.write_text(content)
    code = main(["train", "--corpus", str(corpus), "--out", str(tmp_path / "run")])
    assert message in one_error_line(capsys, code)
    assert not (tmp_path / "run").exists()


def test_unknown_corpus_lists_the_known_ones(tmp_path, capsys):
    code = main(["train", "--corpus", "sonets", "--out", str(tmp_path / "run")])
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
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert message in one_error_line(capsys, code)


def test_bad_generation_options(tmp_path, capsys, sonnet_slice):
    run_dir = tmp_path / "run"
    assert main(["train", "--corpus", str(sonnet_slice), "--out", str(run_dir), "--epochs", "1", "--max-len", "4",
                 "--quiet", *TINY]) == 0
    for extra, message in ((["--top-p", "1.5"], "top_p"), (["--beam-width", "2", "--temperature", "0.5"], "drop --temperature"),
                           (["--temperature", "-1"], "temperature"), (["--words", "-3"], "words")):
        code = main(["generate", str(run_dir), "--prime", "so", *extra])
        assert message in one_error_line(capsys, code), extra
