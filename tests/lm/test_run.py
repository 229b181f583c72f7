"""Run folders: what training writes, resuming exactly where it stopped, refusing what is not a run."""
import json

import pytest
import torch

from rnnkit.lm.run import RunFolder, RunFolderError
from rnnkit.lm.word import WordConfig, WordRun, train_word_model
from rnnkit.models import Sequential
from rnnkit.training.callbacks import Callback

LINES = [
    "shall i compare thee to a summer's day", "thou art more lovely and more temperate",
    "rough winds do shake the darling buds of may", "and summer's lease hath all too short a date",
] * 3


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "poem.txt"
    path.write_text("\n".join(LINES) + "\n")
    return path


def config(corpus, **kw):
    return WordConfig(**{"corpus": str(corpus), "embedding": 8, "hidden": 12, "dropout": 0.1, "batch_size": 16,
                         "seed": 3, **kw})


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_run_folder_contents(corpus, tmp_path):
    run = train_word_model(tmp_path / "run", config(corpus, epochs=2, validation_split=0.2), verbose=0)
    folder = run.folder
    for name in ("config.json", "tokenizer.json", "model.safetensors", "metrics.json", "rng.safetensors"):
        assert (folder.path / name).is_file(), name
    saved = json.loads(folder.config_path.read_text())
    assert saved["format"] == "rnnkit-run/1" and saved["level"] == "word"
    assert saved["max_len"] == 9 and saved["options"]["hidden"] == 12 and saved["samples"] == 3 * (7 + 6 + 8 + 8)
    metrics = json.loads(folder.metrics_path.read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "seconds"} <= set(metrics["epochs"][0])
    assert [e["iterations"] for e in metrics["epochs"]] == [5, 10]  # 69 training n-grams (80% of 87), batches of 16
    loaded = WordRun.load(folder.path)
    for k, v in weights(run.model).items():
        assert torch.equal(loaded.model.state_dict()[k], v), k
    assert loaded.tokenizer.word_index == run.tokenizer.word_index and loaded.window == 8
    png = folder.plot_metrics()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def assert_same_run(a, b):
    for k, v in weights(a.model).items():
        assert torch.equal(b.model.state_dict()[k], v), k
    drop = ("seconds",)
    assert [{k: v for k, v in e.items() if k not in drop} for e in a.metrics["epochs"]] == [
        {k: v for k, v in e.items() if k not in drop} for e in b.metrics["epochs"]]


@pytest.mark.parametrize("cell", ["lstm", "mingru"])
def test_resume_continues_exactly_as_an_uninterrupted_run(corpus, tmp_path, cell):
    straight = train_word_model(tmp_path / "a", config(corpus, cell=cell, epochs=3, validation_split=0.2), verbose=0)
    torch.manual_seed(123)  # whatever happens in between must not matter
    train_word_model(tmp_path / "b", config(corpus, cell=cell, epochs=1, validation_split=0.2), verbose=0)
    resumed = train_word_model(tmp_path / "b", resume=True, epochs=3, verbose=0)
    assert [e["epoch"] for e in resumed.metrics["epochs"]] == [1, 2, 3]
    assert_same_run(straight, resumed)
    assert json.loads((tmp_path / "b" / "config.json").read_text())["options"]["epochs"] == 3


class StopAt(Callback):
    """Interrupts training (as Ctrl-C would) after batch `step` of epoch `epoch` (both 0-based)."""

    def __init__(self, epoch, step):
        super().__init__()
        self.at, self.epoch = (epoch, step), None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, step, logs=None):
        if (self.epoch, step) == self.at:
            raise KeyboardInterrupt


def test_a_run_interrupted_mid_epoch_resumes_exactly(corpus, tmp_path):
    straight = train_word_model(tmp_path / "a", config(corpus, epochs=3), verbose=0)
    with pytest.raises(KeyboardInterrupt):
        train_word_model(tmp_path / "b", config(corpus, epochs=3), verbose=0, callbacks=[StopAt(1, 2)])
    assert len(RunFolder(tmp_path / "b").read_metrics()["epochs"]) == 1
    assert_same_run(straight, train_word_model(tmp_path / "b", resume=True, verbose=0))


def die_on_call(monkeypatch, owner, name, call):
    """Makes `owner.name` raise KeyboardInterrupt on its `call`-th call (1-based), as a kill would."""
    original, calls = getattr(owner, name), []

    def dying(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, dying)


@pytest.mark.parametrize("owner, name, call", [
    (RunFolder, "write_metrics", 2),  # epoch 2's random state written, not its metrics nor model
    (Sequential, "save", 3),          # epoch 2's random state and metrics written, not its model (1st save: epoch 0)
])
def test_a_run_killed_between_its_writes_resumes_exactly(corpus, tmp_path, monkeypatch, capsys, owner, name, call):
    straight = train_word_model(tmp_path / "a", config(corpus, epochs=3), verbose=0)
    with monkeypatch.context() as patch:
        die_on_call(patch, owner, name, call)
        with pytest.raises(KeyboardInterrupt):
            train_word_model(tmp_path / "b", config(corpus, epochs=3), verbose=0)
    ahead = len(RunFolder(tmp_path / "b").read_metrics()["epochs"])
    resumed = train_word_model(tmp_path / "b", resume=True, verbose=0)
    assert_same_run(straight, resumed)
    assert ("epoch 2 is trained again" in capsys.readouterr().err) == (ahead == 2)


def test_a_preset_trains_for_its_courses_epochs(corpus, tmp_path):
    class OneEpoch(Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    run = train_word_model(tmp_path / "run", WordConfig(corpus=str(corpus), preset="moroney-sonnets-graded"),
                           verbose=0, callbacks=[OneEpoch()])
    assert run.config["options"]["epochs"] == 50 and run.config["options"]["batch_size"] == 32
    assert len(run.metrics["epochs"]) == 1 and run.config["params"] == run.model.count_params()


def test_resume_refuses_a_changed_corpus_and_a_new_config(corpus, tmp_path):
    train_word_model(tmp_path / "run", config(corpus, epochs=1), verbose=0)
    with pytest.raises(ValueError, match="saved config"):
        train_word_model(tmp_path / "run", config(corpus), resume=True, verbose=0)
    corpus.write_text("an entirely different text\nwith other words\n")
    with pytest.raises(RunFolderError, match="has changed"):
        train_word_model(tmp_path / "run", resume=True, epochs=2, verbose=0)


def test_a_new_run_does_not_silently_replace_an_old_one(corpus, tmp_path):
    train_word_model(tmp_path / "run", config(corpus, epochs=1), verbose=0)
    with pytest.raises(RunFolderError, match="already holds a run"):
        train_word_model(tmp_path / "run", config(corpus, epochs=1), verbose=0)
    run = train_word_model(tmp_path / "run", config(corpus, epochs=1), overwrite=True, verbose=0)
    assert len(run.metrics["epochs"]) == 1


def test_folders_that_are_not_runs(tmp_path):
    with pytest.raises(RunFolderError, match="no such run folder"):
        RunFolder.open(tmp_path / "missing")
    with pytest.raises(RunFolderError, match="not an rnnkit run folder"):
        RunFolder.open(tmp_path)
    (tmp_path / "f").write_text("x")
    with pytest.raises(RunFolderError, match="is a file"):
        RunFolder.open(tmp_path / "f")
    (tmp_path / "config.json").write_text('{"format": "something-else"}')
    with pytest.raises(RunFolderError, match="not an rnnkit run config"):
        RunFolder.open(tmp_path).read_config()
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(RunFolderError, match="not valid JSON"):
        RunFolder.open(tmp_path).read_config()


def test_word_runs_need_their_files(corpus, tmp_path):
    run = train_word_model(tmp_path / "run", config(corpus, epochs=1), verbose=0)
    run.folder.model_path.unlink()
    with pytest.raises(RunFolderError, match="model.safetensors is missing"):
        WordRun.load(run.folder.path)
    config_data = json.loads(run.folder.config_path.read_text())
    run.folder.config_path.write_text(json.dumps({**config_data, "level": "char"}))
    with pytest.raises(RunFolderError, match="'char'-level run"):
        WordRun.load(run.folder.path)
