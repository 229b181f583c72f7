"""``rnnkit export RUN --format onnx OUT`` for each kind of run rnnkit makes: the file's graph
equals the run's model as rnnkit loads it, and bad input is one line with exit status 2."""
import numpy as np
import onnxruntime as ort
import pytest
import torch

from rnnkit.cli.main import main
from rnnkit.export import read_metadata
from tests.tiny_runs import STREAM, corpus_text


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A streaming char run, an n-gram word run and a seq2seq run, each trained for seconds."""
    root = tmp_path_factory.mktemp("runs")
    corpus = root / "corpus.txt"
    corpus.write_text(corpus_text())
    assert main(["lm", "train", "--corpus", str(corpus), "--out", str(root / "char"), "--steps", "10", *STREAM]) == 0
    assert main(["train", "--level", "word", "--corpus", str(corpus), "--out", str(root / "word"), "--epochs", "1",
                 "--hidden", "8", "--embedding", "8", "--quiet"]) == 0
    assert main(["seq2seq", "train", "--task", "dates", "--out", str(root / "dates"), "--train-size", "256",
                 "--epochs", "1", "--n-a", "8", "--n-s", "16", "--no-progress"]) == 0
    return root


def test_streaming_run_exports_its_one_step_graph(runs, tmp_path, capsys):
    from rnnkit.lm.stream import StreamLM

    out = tmp_path / "char.onnx"
    assert main(["export", str(runs / "char"), "--format", "onnx", str(out), "--checkpoint", "last"]) == 0
    assert "lm-step graph" in capsys.readouterr().err
    lm = StreamLM.load(runs / "char", "last")
    meta = read_metadata(out)
    assert meta["vocab"] == lm.vocab.to_dict() and meta["step"] == lm.step == 10
    assert meta["checkpoint"] == "last.safetensors"
    session = ort.InferenceSession(str(out))
    state, onnx_state = lm.model.initial_state(3), np.zeros((3, *meta["state_shape"]), np.float32)
    for ch in "ROMEO: the":
        token = np.array([lm.vocab.index[ch]] * 3)
        logits, state = lm.model.step(torch.from_numpy(token), state)
        onnx_logits, onnx_state = session.run(None, {"token": token, "state": onnx_state})
        np.testing.assert_allclose(onnx_logits, logits.numpy(), atol=1e-5, rtol=0)


def test_ngram_word_run_exports_its_next_word_model(runs, tmp_path):
    from rnnkit.lm.word import WordRun, encode_prime

    out = tmp_path / "word.onnx"
    assert main(["export", str(runs / "word"), "--format", "onnx", str(out)]) == 0
    word = WordRun.load(runs / "word")
    meta = read_metadata(out)
    assert meta["kind"] == "ngram-word" and meta["window"] == word.window
    assert meta["words"][1:] == [word.tokenizer.index_word[i] for i in range(1, len(meta["words"]))]
    session = ort.InferenceSession(str(out))
    assert session.get_inputs()[0].shape == ["batch", word.window]
    windows = np.stack([encode_prime(word.tokenizer, p, word.window)[0] for p in ("the king", "my lord said to",
                                                                                  "fair")]).astype(np.int64)
    probs = session.run(None, {"window": windows})[0]
    np.testing.assert_allclose(probs, word.model.predict(windows, verbose=0), atol=1e-5, rtol=0)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)


def test_seq2seq_run_exports_its_greedy_translation(runs, tmp_path):
    from rnnkit.seq2seq.translate import Translator

    out = tmp_path / "dates.onnx"
    assert main(["export", str(runs / "dates"), "--format", "onnx", str(out)]) == 0
    translator = Translator.load(runs / "dates")
    texts = ["3 May 1979", "tuesday, june 19, 2001", "10/11/12"]
    x = translator.encode(texts).numpy()
    ids = ort.InferenceSession(str(out)).run(None, {"x": x})[0]
    meta = read_metadata(out)
    symbols = meta["output_vocab"]["symbols"]
    decoded = ["".join(symbols[i] for i in row).split("<pad>")[0] for row in ids]
    assert decoded == translator.translate_texts(texts)


@pytest.mark.parametrize("argv, message", [
    (["export", "{tmp}", "--format", "onnx", "{tmp}/x.onnx"], "is not an rnnkit run folder"),
    (["export", "{runs}/dates", "--format", "onnx", "{tmp}/x.onnx", "--checkpoint", "last"],
     "is a seq2seq run, with one model"),
    (["export", "{runs}/char", "--format", "onnx", "{tmp}", ], "is a folder; expected a file path"),
])
def test_bad_input_is_one_line_and_exit_2(runs, tmp_path, capsys, argv, message):
    argv = [a.format(tmp=tmp_path, runs=runs) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "x.onnx").exists()


def test_format_is_required(runs, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["export", str(runs / "char"), str(tmp_path / "x.onnx")])
    assert exc.value.code == 2
    assert "--format" in capsys.readouterr().err
