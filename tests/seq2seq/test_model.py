import itertools
import json

import pytest
import torch

from rnnkit.seq2seq import checkpoint
from rnnkit.seq2seq.model import Seq2Seq, Seq2SeqConfig
from rnnkit.seq2seq.tasks import PRESETS, dates_task
from rnnkit.seq2seq.train import build_model
from rnnkit.seq2seq.translate import Translator


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_course_preset_has_the_course_parameter_count():
    """The Keras model of the course (Bi-LSTM(32) over one-hot 37, Dense(10, tanh) and Dense(1, relu)
    on [a; s_prev], LSTM(64) post-attention, Dense(11, softmax)) reports 52,960 parameters
    (checked with Keras 3: tests/seq2seq/course_model_keras.py)."""
    data = dates_task(train_size=10, test_size=5, val_size=5, vocab="course")
    model = build_model(data, **PRESETS["course"]["model"])
    assert (len(data.input_vocab), len(data.output_vocab), data.tx, data.ty) == (37, 11, 30, 10)
    assert _params(model.encoder) == 2 * 4 * 32 * (37 + 32 + 1) == 17_920
    assert _params(model.attention) == (64 + 64) * 10 + 10 + 10 + 1 == 1_301
    assert _params(model.decoder) == 4 * 64 * (64 + 64 + 1) == 33_024
    assert _params(model.output) == 64 * 11 + 11 == 715
    assert model.count_params() == 52_960


def _small(**kw):
    cfg = dict(input_vocab_size=9, output_vocab_size=5, tx=8, ty=4, n_a=6, n_s=10, embedding_dim=5,
               attention_units=7, energy_activation="linear", mask_padding=True, pad_id=0)
    cfg.update(kw)
    torch.manual_seed(0)
    return Seq2Seq(Seq2SeqConfig(**cfg))


def _x():
    return torch.tensor([[3, 4, 5, 6, 7, 8, 1, 2], [5, 6, 7, 0, 0, 0, 0, 0], [2, 0, 0, 0, 0, 0, 0, 0]])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("decoder_input", ["context", "feedback"])
def test_shapes_and_attention_ignores_padding(cell, decoder_input):
    model = _small(cell=cell, decoder_input=decoder_input)
    x = _x()
    logits, w = model(x, torch.zeros(3, 4, dtype=torch.long))
    assert tuple(logits.shape) == (3, 4, 5) and tuple(w.shape) == (3, 4, 8)
    assert torch.allclose(w.sum(-1), torch.ones(3, 4), atol=1e-6)
    assert torch.all(w[1, :, 3:] == 0) and torch.all(w[2, :, 1:] == 0)
    # Cutting the padded tail (as training and translation do) changes nothing.
    cut, w_cut = model(x[:, :6], torch.zeros(3, 4, dtype=torch.long))
    assert torch.allclose(cut[1:], logits[1:], atol=1e-5) and torch.allclose(w_cut[1:], w[1:, :, :6], atol=1e-6)


def test_teacher_forcing_is_causal():
    model = _small(decoder_input="feedback")
    y = torch.tensor([[1, 2, 3, 4]] * 3)
    y2 = y.clone()
    y2[:, 2:] = 0
    a, _ = model(_x(), y)
    b, _ = model(_x(), y2)
    assert torch.allclose(a[:, :3], b[:, :3]) and not torch.allclose(a[:, 3], b[:, 3])


def test_beam_search_finds_the_most_probable_output():
    model = _small(decoder_input="feedback", output_vocab_size=3, ty=3).eval()
    x = _x()
    best, _ = model.generate(x, beam_width=9)  # 9 = every 2-symbol prefix: the search is exhaustive
    greedy, _ = model.generate(x)
    assert torch.equal(model.generate(x, beam_width=1)[0], greedy)
    with torch.no_grad():
        for i in range(3):
            seqs = torch.tensor(list(itertools.product(range(3), repeat=3)))
            logits, _ = model(x[i : i + 1].expand(len(seqs), -1), seqs)
            logp = torch.log_softmax(logits, -1).gather(-1, seqs.unsqueeze(-1)).squeeze(-1).sum(-1)
            assert torch.equal(best[i], seqs[logp.argmax()])


def test_context_mode_beam_is_greedy():
    model = _small().eval()
    assert torch.equal(model.generate(_x(), beam_width=4)[0], model.generate(_x())[0])


def test_config_errors():
    with pytest.raises(ValueError, match="n_s == 2 \\* n_a"):
        Seq2SeqConfig(5, 5, attention="dot", n_a=4, n_s=10)
    with pytest.raises(ValueError, match="decoder_input"):
        Seq2SeqConfig(5, 5, decoder_input="teacher")


def test_checkpoint_round_trip_and_damage_detection(tmp_path):
    data = dates_task(train_size=10, test_size=5, val_size=5)
    model = build_model(data, **PRESETS["dates"]["model"]).eval()
    run = tmp_path / "run"
    checkpoint.save(run, model, data.input_vocab, data.output_vocab, data.spec, {"epochs": 0})
    checkpoint.write_heldout(run, data.test)
    loaded = Translator.load(run)
    texts = [s for s, _ in data.test]
    original = Translator(model, data.input_vocab, data.output_vocab)
    assert loaded.translate_texts(texts) == original.translate_texts(texts)
    assert checkpoint.read_heldout(run) == data.test
    assert json.loads((run / "config.json").read_text())["model"]["n_a"] == model.config.n_a

    weights = run / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(ValueError, match="does not match"):
        Translator.load(run)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Translator.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        Translator.load(tmp_path / "empty")
