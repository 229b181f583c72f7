"""``rnnkit lm train|generate|evaluate`` end to end on a slice of tiny-shakespeare, and bad input."""
import json
import os
from pathlib import Path

import pytest

from rnnkit.cli.main import main

TINY = ["--hidden", "32", "--embedding", "16", "--batch-size", "8", "--seq-len", "32", "--log-every", "5",
        "--progress", "lines"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 30-step run on the first 40,000 characters of tiny-shakespeare (module scope: trained once)."""
    d = os.environ.get("RNNKIT_DATA_DIR")
    if not d or not (Path(d) / "tiny-shakespeare.txt").is_file():
        pytest.skip("RNNKIT_DATA_DIR is not set to the shared corpora folder (../shared/data)")
    root = tmp_path_factory.mktemp("cli")
    corpus = root / "shakespeare-slice.txt"
    corpus.write_text((Path(d) / "tiny-shakespeare.txt").read_text()[:40_000])
    run = root / "run"
    assert main(["lm", "train", "--corpus", str(corpus), "--out", str(run), "--steps", "30",
                 "--eval-every", "15", *TINY]) == 0
    return corpus, run


def test_train_writes_checkpoints_config_and_metrics(trained):
    corpus, run = trained
    assert {p.name for p in run.iterdir()} == {"config.json", "last.safetensors", "best.safetensors", "metrics.jsonl"}
    config = json.loads((run / "config.json").read_text())
    assert config["engine"] == "stream" and config["level"] == "char" and config["model"]["hidden"] == 32
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10, 15, 20, 25, 30]
    assert set(records[2]) == {"step", "elapsed_s", "train_loss", "chars_per_s", "val_loss", "val_bpc"}
    assert set(records[0]) == {"step", "elapsed_s", "train_loss", "chars_per_s"}
    assert records[-1]["val_loss"] < records[0]["train_loss"]


def test_generate_streams_the_same_text_for_the_same_seed(trained, capsys):
    _, run = trained
    args = ["lm", "generate", str(run), "--prime", "ROMEO:", "--length", "80", "--temperature", "0.8", "--seed", "4"]
    assert main(args) == 0
    first = capsys.readouterr()
    assert first.out.startswith("ROMEO:") and len(first.out) == len("ROMEO:") + 80 + 1
    assert "80 tokens at" in first.err
    assert main(args) == 0 and capsys.readouterr().out == first.out
    assert main(args[:-1] + ["5"]) == 0 and capsys.readouterr().out != first.out


def test_generate_maps_unknown_prime_characters_and_beam_search(trained, capsys):
    _, run = trained
    assert main(["lm", "generate", str(run), "--prime", "JULIÉT€", "--length", "20", "--top-k", "5"]) == 0
    captured = capsys.readouterr()
    assert "prime characters not in the model's vocabulary: 'É' -> 'E', '€' skipped" in captured.err
    assert captured.out.startswith("JULIÉT€")
    assert main(["lm", "generate", str(run), "--prime", "the ", "--length", "12", "--beam-width", "3"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out) == len("the ") + 12 + 1 and "beam search (width 3)" in captured.err


def test_evaluate_prints_and_writes_loss_bpc_perplexity(trained, tmp_path, capsys):
    corpus, run = trained
    out = tmp_path / "eval.json"
    assert main(["lm", "evaluate", str(run), "--corpus", str(corpus), "--split", "valid", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert {"loss", "bpc", "perplexity"} <= set(report) and report["tokens"] == 3999
    assert report["bpc"] == pytest.approx(report["loss"] / 0.6931471805599453)
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    best = min(r["val_loss"] for r in metrics if "val_loss" in r)
    assert report["loss"] == pytest.approx(best, abs=1e-6)  # the same text and model as training's validation
    assert "bits/char" in capsys.readouterr().out


def test_resume_continues_and_refuses_another_architecture(trained, capsys):
    corpus, run = trained
    assert main(["lm", "train", "--out", str(run), "--resume", "--hidden", "64", "--steps", "40"]) == 2
    assert "cannot resume: the run was started with a different config (hidden: run has 32, got 64)" in capsys.readouterr().err
    assert main(["lm", "train", "--out", str(run), "--resume", "--steps", "35", "--progress", "none"]) == 0
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 35


@pytest.mark.parametrize("argv, message", [
    (["lm", "train", "--corpus", "{short}", "--out", "{tmp}/r", "--steps", "5"],
     "training text too short: 193 tokens, need at least 4,097 for one batch of 32 streams x 128 steps"),
    (["lm", "train", "--corpus", "no-such-corpus", "--out", "{tmp}/r", "--steps", "5"], "unknown corpus 'no-such-corpus'"),
    (["lm", "train", "--corpus", "{short}", "--out", "{tmp}/r", "--steps", "5", "--tie-weights"],
     "tie_weights needs embedding == hidden"),
    (["lm", "train", "--corpus", "{short}", "--out", "{tmp}/r", "--steps", "5", "--feed-forward", "2"],
     "feed_forward needs residual layers; turn them on (--residual)"),
    (["lm", "generate", "{tmp}"], "no checkpoint (expected best.safetensors"),
    (["lm", "evaluate", "{run}", "--split", "test"], "has no test split"),
    (["lm", "train", "--corpus", "{short}", "--out", "{short}/r", "--steps", "5"], "short.txt, which is a file"),
    (["lm", "evaluate", "{run}", "--json", "{short}/x.json"], "short.txt is a file, not a folder"),
])
# (options out of range are refused while the arguments are read: tests/cli/test_option_ranges.py)
def test_bad_input_is_one_clear_line_and_exit_2(trained, tmp_path, capsys, argv, message):
    _, run = trained
    short = tmp_path / "short.txt"
    short.write_text("To be, or not to be, that is the question.\n" * 5)
    argv = [a.format(short=short, tmp=tmp_path, run=run) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnkit: error: ") and message in err[0], err


def test_word_level_streaming_reports_perplexity(trained, tmp_path, capsys):
    corpus, _ = trained
    run = tmp_path / "words"
    assert main(["lm", "train", "--level", "word", "--corpus", str(corpus), "--out", str(run), "--steps", "10",
                 "--eval-every", "10", "--hidden", "32", "--embedding", "32", "--batch-size", "4", "--seq-len", "20",
                 "--progress", "none"]) == 0
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert set(record) == {"step", "elapsed_s", "train_loss", "tokens_per_s", "val_loss", "val_ppl"}
    out = tmp_path / "eval.json"
    assert main(["lm", "evaluate", str(run), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["perplexity"] == pytest.approx(2.718281828459045 ** record["val_loss"], rel=1e-6)
    assert "perplexity" in capsys.readouterr().out
    assert main(["lm", "generate", str(run), "--prime", "KING zyzzyva", "--length", "15", "--seed", "1"]) == 0
    captured = capsys.readouterr()
    assert "'zyzzyva' -> <unk>" in captured.err and len(captured.out.split()) >= 15


def test_main_job_trains_on_the_builtin_corpus_and_prints_a_sample(tmp_path, capsys):
    from rnnkit.lm.stream_cli import main_job

    assert main_job(minutes=0.02, out=str(tmp_path / "job"), sample_length=40, progress="none") == 0
    out = capsys.readouterr().out
    assert "--- generated (temperature 0.7, prime 'def ') ---" in out
    sample = out.split("---\n", 1)[1]
    assert sample.startswith("def ") and len(sample) == len("def ") + 40 + 1
    config = json.loads((tmp_path / "job" / "config.json").read_text())
    assert config["corpus"] == "python-stdlib" and config["train"]["minutes"] == 0.02


def test_resume_refuses_a_corpus_edited_in_place(trained, tmp_path, capsys):
    corpus, _ = trained
    text = corpus.read_text()[:20_000]
    edited = tmp_path / "edited.txt"
    edited.write_text(text)
    run = tmp_path / "run"
    assert main(["lm", "train", "--corpus", str(edited), "--out", str(run), "--steps", "3", *TINY]) == 0
    edited.write_text(text[::-1])  # same characters, same length, other text
    capsys.readouterr()
    assert main(["lm", "train", "--out", str(run), "--resume", "--steps", "6"]) == 2
    assert "has changed since the run started" in capsys.readouterr().err


@pytest.fixture
def made_up_corpus(tmp_path):
    """A text of ~20,000 characters that needs no shared data (these tests run in CI too)."""
    import random

    rng = random.Random(0)
    words = ["the", "king", "and", "queen", "of", "a", "fair", "land", "said", "to", "thee", "my", "lord"]
    path = tmp_path / "made-up.txt"
    path.write_text("\n".join(" ".join(rng.choice(words) for _ in range(10)) for _ in range(400)))
    return path


def test_top_level_train_char_overwrites_writes_json_and_keeps_quiet(made_up_corpus, tmp_path, capsys):
    run, summary = tmp_path / "run", tmp_path / "out" / "summary.json"
    base = ["train", "--level", "char", "--corpus", str(made_up_corpus), "--out", str(run), *TINY[:-2],
            "--eval-every", "10"]
    assert main(base + ["--steps", "10", "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert main(base + ["--steps", "10"]) == 2
    assert "already holds a run; pass --resume to continue it, --overwrite to replace it" in capsys.readouterr().err
    # Options that fail their checks leave the run alone: only a run that starts replaces it.
    before = (run / "best.safetensors").read_bytes()
    assert main(base + ["--steps", "10", "--overwrite", "--seq-len", "100000"]) == 2
    assert "training text too short" in capsys.readouterr().err
    assert (run / "best.safetensors").read_bytes() == before
    assert main(base + ["--steps", "20", "--overwrite", "--quiet", "--json", str(summary)]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10, 15, 20]  # a new run's metrics, not the old ones continued
    result = json.loads(summary.read_text())
    assert result["step"] == 20 and result["stopped"] == "budget" and result["run"] == str(run)
    assert result["val_bpc"] == pytest.approx(result["val_loss"] / 0.6931471805599453)
    assert result["val_perplexity"] > 1
    assert main(base + ["--steps", "30", "--overwrite", "--resume"]) == 2
    assert "overwrite and resume exclude each other" in capsys.readouterr().err


def test_overwrite_replaces_a_word_level_run(made_up_corpus, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--level", "word", "--corpus", str(made_up_corpus), "--out", str(run), "--epochs", "1",
                 "--hidden", "8", "--embedding", "8", "--quiet"]) == 0
    assert (run / "model.safetensors").is_file()
    assert main(["train", "--level", "char", "--corpus", str(made_up_corpus), "--out", str(run), "--steps", "5",
                 "--overwrite", "--quiet", *TINY[:-2]]) == 0
    assert not (run / "model.safetensors").exists() and not (run / "tokenizer.json").exists()
    assert json.loads((run / "config.json").read_text())["engine"] == "stream"


def test_generate_from_a_char_run_writes_json_and_explains_words(made_up_corpus, tmp_path, capsys):
    run, out = tmp_path / "run", tmp_path / "gen.json"
    assert main(["train", "--level", "char", "--corpus", str(made_up_corpus), "--out", str(run), "--steps", "5",
                 "--quiet", *TINY[:-2]]) == 0
    assert main(["generate", str(run), "--prime", "the ", "--length", "40", "--seed", "3", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert printed == "the " + result["text"] + "\n"
    assert result["tokens"] == 40 and len(result["text"]) == 40 and result["level"] == "char"
    assert result["seed"] == 3 and result["tokens_per_s"] > 0 and result["step"] == 5
    assert main(["generate", str(run), "--words", "5"]) == 2
    assert ("--words counts words, and " + str(run) + " is a char-level run: give --length N"
            in capsys.readouterr().err)
    assert main(["generate", str(run), "--num-samples", "2", "--length", "10", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert len(result["samples"]) == 2 and all(len(t) == 10 for t in result["samples"])


def test_words_is_the_length_of_a_word_level_stream_run(made_up_corpus, tmp_path, capsys):
    run, out = tmp_path / "run", tmp_path / "gen.json"
    assert main(["train", "--stream", "--corpus", str(made_up_corpus), "--out", str(run), "--steps", "3",
                 "--quiet", "--hidden", "16", "--embedding", "16", "--batch-size", "4", "--seq-len", "8"]) == 0
    assert main(["generate", str(run), "--words", "7", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["tokens"] == 7 and result["level"] == "word" and len(result["text"].split()) == 7


def test_generate_finds_the_run_after_valued_options(made_up_corpus, tmp_path, capsys):
    run, out = tmp_path / "run", tmp_path / "g.json"
    assert main(["train", "--level", "char", "--corpus", str(made_up_corpus), "--out", str(run), "--steps", "3",
                 "--quiet", *TINY[:-2]]) == 0
    assert main(["generate", "--json", str(out), "--seed", "4", str(run), "--length", "12"]) == 0
    assert json.loads(out.read_text())["tokens"] == 12
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:  # argparse's own refusal
        main(["generate", str(run), "--length", "5", "--words", "5"])
    assert exited.value.code == 2
    assert "argument --words: not allowed with argument --length" in capsys.readouterr().err


def test_a_folder_of_someone_elses_files_is_never_overwritten(made_up_corpus, tmp_path, capsys):
    theirs = tmp_path / "hf-model"
    theirs.mkdir()
    files = {"config.json": '{"model_type": "bert"}', "tokenizer.json": "{}", "model.safetensors": "x"}
    for name, text in files.items():
        (theirs / name).write_text(text)
    for level in ("char", "word"):
        for extra in ([], ["--overwrite"]):
            budget = ["--steps", "2", *TINY[:-2]] if level == "char" else ["--epochs", "1"]
            assert main(["train", "--level", level, "--corpus", str(made_up_corpus), "--out", str(theirs),
                         "--quiet", *budget, *extra]) == 2
            assert "holds a config.json that rnnkit did not write" in capsys.readouterr().err
    assert {p.name: p.read_text() for p in theirs.iterdir()} == files


def test_undecodable_bytes_fail_with_a_hint_that_works(made_up_corpus, tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(made_up_corpus.read_bytes() + b"\xff tail\n")
    run = tmp_path / "run"
    argv = ["train", "--level", "char", "--corpus", str(bad), "--out", str(run), "--steps", "3", "--quiet", *TINY[:-2]]
    assert main(argv) == 2
    assert "(command line: --decode-errors replace)" in capsys.readouterr().err
    assert not run.exists()
    assert main([*argv, "--decode-errors", "replace"]) == 0
    assert json.loads((run / "config.json").read_text())["train"]["decode_errors"] == "replace"
    assert main(["evaluate", str(run)]) == 0  # the run's own setting
    assert main(["evaluate", str(run), "--decode-errors", "strict"]) == 2


def test_beam_search_refuses_a_temperature_as_the_word_level_does(made_up_corpus, tmp_path, capsys):
    run, out = tmp_path / "run", tmp_path / "b.json"
    assert main(["train", "--level", "char", "--corpus", str(made_up_corpus), "--out", str(run), "--steps", "3",
                 "--quiet", *TINY[:-2]]) == 0
    assert main(["generate", str(run), "--length", "5", "--beam-width", "3", "--temperature", "3"]) == 2
    assert "--beam-width searches deterministically; drop --temperature" in capsys.readouterr().err
    assert main(["generate", str(run), "--length", "5", "--beam-width", "3", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["beam_width"] == 3 and result["temperature"] is None and len(result["text"]) == 5


def test_residual_mingru_run_trains_resumes_and_generates(made_up_corpus, tmp_path, capsys):
    run = tmp_path / "run"
    base = ["train", "--level", "char", "--corpus", str(made_up_corpus), "--out", str(run), *TINY[:-2],
            "--cell", "mingru", "--layers", "3", "--dropout", "0.1", "--eval-every", "10", "--quiet"]
    assert main(base + ["--residual", "--feed-forward", "2", "--steps", "10"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["residual"] is True and config["model"]["feed_forward"] == 2
    assert main(base + ["--steps", "20", "--resume"]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10, 15, 20]
    assert records[-1]["val_loss"] < records[0]["train_loss"]
    # the architecture is part of the run: resuming it as a plain stack is refused
    assert main(base + ["--no-residual", "--steps", "30", "--resume"]) == 2
    assert "cannot resume" in capsys.readouterr().err
    assert main(["generate", str(run), "--prime", "the", "--length", "40", "--seed", "1"]) == 0
    assert len(capsys.readouterr().out.strip()) >= 40
