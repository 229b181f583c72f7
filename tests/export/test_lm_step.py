"""The streaming LM's one-step graph run by onnxruntime equals `CharLM.step`, state carried
over several steps, at batch sizes it was not traced with."""
import numpy as np
import onnxruntime as ort
import pytest
import torch

from rnnkit.export import export_lm_step, read_metadata
from rnnkit.lm.charlm import CharLM, CharLMConfig

VOCAB = {"level": "char", "tokens": list("abcdefghijklm")}


@pytest.mark.parametrize("config", [
    dict(cell="lstm", layers=2),
    dict(cell="gru", layers=2),
    dict(cell="rnn"),
    dict(cell="mingru", layers=2, residual=True, embedding=24, feed_forward=2),
    dict(cell="lstm", layers=2, residual=True, embedding=24, tie_weights=True),
], ids=["lstm2", "gru2", "rnn", "mingru-residual-ff", "lstm-residual-tied"])
def test_steps_with_carried_state_match_charlm(tmp_path, config):
    torch.manual_seed(0)
    model = CharLM(CharLMConfig(vocab_size=13, hidden=24, **{"embedding": 16, **config})).eval()
    path = tmp_path / "lm.onnx"
    export_lm_step(model, VOCAB, path)
    session = ort.InferenceSession(str(path))
    s = len(model.rnns) * (2 if config["cell"] == "lstm" else 1)
    assert [i.name for i in session.get_inputs()] == ["token", "state"]
    assert session.get_inputs()[1].shape == ["batch", s, 24]
    rng = np.random.default_rng(0)
    for batch in (1, 5):  # traced at 2: the batch axis is dynamic
        state, onnx_state = model.initial_state(batch), np.zeros((batch, s, 24), np.float32)
        for _ in range(8):
            token = rng.integers(0, 13, batch)
            logits, state = model.step(torch.from_numpy(token), state)
            onnx_logits, onnx_state = session.run(None, {"token": token, "state": onnx_state})
            np.testing.assert_allclose(onnx_logits, logits.numpy(), atol=1e-5, rtol=0)
            packed = torch.stack([t for layer in state for t in layer], 1).numpy()
            np.testing.assert_allclose(onnx_state, packed, atol=1e-5, rtol=0)


def test_a_prime_read_step_by_step_gives_the_fused_prime_logits(tmp_path):
    torch.manual_seed(1)
    model = CharLM(CharLMConfig(vocab_size=13, hidden=32, embedding=8, layers=2)).eval()
    export_lm_step(model, VOCAB, tmp_path / "lm.onnx")
    session = ort.InferenceSession(str(tmp_path / "lm.onnx"))
    prime = [3, 1, 4, 1, 5, 9, 2, 6]
    expected, _ = model.prime(prime)
    state = np.zeros((1, 4, 32), np.float32)
    for token in prime:
        logits, state = session.run(None, {"token": np.array([token]), "state": state})
    np.testing.assert_allclose(logits[0], expected.numpy(), atol=1e-5, rtol=0)


def test_metadata_carries_the_vocabulary_and_state_shape(tmp_path):
    model = CharLM(CharLMConfig(vocab_size=13, hidden=16, embedding=8, cell="gru", layers=3))
    export_lm_step(model, VOCAB, tmp_path / "lm.onnx", extra={"step": 7})
    meta = read_metadata(tmp_path / "lm.onnx")
    assert meta["format"] == "rnnkit-onnx/1" and meta["kind"] == "lm-step"
    assert meta["vocab"] == VOCAB and meta["state_shape"] == [3, 16] and meta["step"] == 7
    assert CharLMConfig.from_dict(meta["model"]) == model.config
