"""One CLI for both engines: top-level train/generate/evaluate hand streaming runs to ``rnnkit lm``."""
import json

from rnnkit.cli.main import route


def test_char_and_stream_training_go_to_the_streaming_engine():
    assert route(["train", "--level", "char", "--out", "r"]) == ["lm", "train", "--level", "char", "--out", "r"]
    assert route(["train", "--level=char", "--out", "r"])[:2] == ["lm", "train"]
    assert route(["train", "--stream", "--corpus", "ptb", "--out", "r"]) == [
        "lm", "train", "--level", "word", "--corpus", "ptb", "--out", "r"]
    assert route(["train", "--level", "word", "--out", "r"]) == ["train", "--level", "word", "--out", "r"]


def test_generate_dispatches_on_the_run_folder(tmp_path):
    stream, word = tmp_path / "s", tmp_path / "w"
    stream.mkdir(), word.mkdir()
    (stream / "config.json").write_text(json.dumps({"engine": "stream"}))
    (word / "config.json").write_text(json.dumps({"level": "word"}))
    assert route(["generate", str(stream), "--length", "5"])[:2] == ["lm", "generate"]
    assert route(["generate", str(word), "--words", "5"])[0] == "generate"
    assert route(["generate", "--json", "g.json", str(stream)])[:2] == ["lm", "generate"]  # RUN after a value
    assert route(["evaluate", str(stream)]) == ["evaluate", str(stream)]  # a command of its own now
