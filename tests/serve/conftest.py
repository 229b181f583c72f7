"""Tiny runs of every kind rnnkit serves, trained once for all the serve tests (seconds)."""
import pytest

pytest.importorskip("starlette", reason="rnnkit serve needs the serve extra: pip install 'rnnkit[serve]'")
pytest.importorskip("uvicorn", reason="rnnkit serve needs the serve extra: pip install 'rnnkit[serve]'")
pytest.importorskip("httpx", reason="the serve tests' client needs httpx: pip install 'rnnkit[serve]'")

from rnnkit.cli.main import main  # noqa: E402
from tests.tiny_runs import STREAM, corpus_text  # noqa: E402


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """``char`` (LSTM, batched), ``wordlm`` (word-level streaming LSTM), ``gru`` (GRU: the
    one-at-a-time path), ``word`` (n-gram word run), ``dates`` (seq2seq)."""
    root = tmp_path_factory.mktemp("serve-runs")
    corpus = root / "corpus.txt"
    corpus.write_text(corpus_text())
    stream = ["lm", "train", "--corpus", str(corpus), "--steps", "5", *STREAM]
    assert main([*stream, "--out", str(root / "char")]) == 0
    assert main([*stream, "--out", str(root / "wordlm"), "--level", "word", "--no-tie-weights"]) == 0
    assert main([*stream, "--out", str(root / "gru"), "--cell", "gru", "--no-tie-weights"]) == 0
    assert main(["train", "--level", "word", "--corpus", str(corpus), "--out", str(root / "word"), "--epochs", "1",
                 "--hidden", "8", "--embedding", "8", "--quiet"]) == 0
    assert main(["seq2seq", "train", "--task", "dates", "--out", str(root / "dates"), "--train-size", "256",
                 "--epochs", "1", "--n-a", "8", "--n-s", "16", "--no-progress"]) == 0
    return root


@pytest.fixture(scope="session")
def models(runs):
    from rnnkit.serve.registry import load_run

    loaded = {name: load_run(runs / name) for name in ("char", "wordlm", "gru", "word", "dates")}
    yield loaded
    for m in loaded.values():
        m.close()


@pytest.fixture(scope="session")
def client(models):
    from starlette.testclient import TestClient

    from rnnkit.serve.app import create_app

    with TestClient(create_app(list(models.values()), close_models=False), raise_server_exceptions=False) as c:
        yield c
