"""A seq2seq model's greedy translation run by onnxruntime equals `Seq2Seq.generate` and its
logits, at other batch sizes and input lengths than the traced ones."""
import numpy as np
import onnxruntime as ort
import pytest
import torch

from rnnkit.export import read_metadata
from rnnkit.export.seq2seq import export_seq2seq
from rnnkit.seq2seq.model import Seq2Seq, Seq2SeqConfig


@pytest.mark.parametrize("config", [
    dict(),  # the course's model: one-hot inputs, context decoder, additive attention
    dict(cell="gru", embedding_dim=8, decoder_input="feedback", mask_padding=True, attention="general"),
    dict(mask_padding=True, attention="dot", n_s=32, n_a=16),
], ids=["course", "gru-feedback-masked", "dot-masked"])
def test_greedy_translation_matches_generate(tmp_path, config):
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(input_vocab_size=15, output_vocab_size=9, tx=12, ty=5, **config)).eval()
    path = tmp_path / "s2s.onnx"
    export_seq2seq(model, {"symbols": ["<pad>"] + list("abcdefghijklmn")}, {"symbols": list("012345678")}, path)
    session = ort.InferenceSession(str(path))
    assert [o.name for o in session.get_outputs()] == ["ids", "logits", "attention"]
    rng = np.random.default_rng(0)
    for batch, time in ((3, 12), (6, 7)):
        x = rng.integers(1, 15, (batch, time))
        x[0, 4:] = 0  # right padding, as Vocab.encode pads
        ids, logits, attention = session.run(None, {"x": x})
        with torch.no_grad():
            ref_ids, ref_attention = model.generate(torch.from_numpy(x))
            ref_logits, _ = model(torch.from_numpy(x))
        np.testing.assert_array_equal(ids, ref_ids.numpy())
        np.testing.assert_allclose(logits, ref_logits.numpy(), atol=1e-5, rtol=0)
        np.testing.assert_allclose(attention, ref_attention.numpy(), atol=1e-5, rtol=0)
        assert attention.shape == (batch, 5, time)
    meta = read_metadata(path)
    assert meta["kind"] == "seq2seq" and meta["output_vocab"]["symbols"] == list("012345678")
    assert meta["model"]["ty"] == 5
