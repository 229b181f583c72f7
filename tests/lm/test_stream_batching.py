"""Streaming data and the streaming model: vocabularies, stream batches, carried state, bits per character."""
import math
from collections import Counter

import numpy as np
import pytest
import torch

from rnnkit.lm.charlm import CharLM, CharLMConfig
from rnnkit.lm.stream_train import evaluate, loss_report
from rnnkit.lm.streams import EOS, UNK, StreamBatcher, Vocab, split_train_val


@pytest.mark.parametrize("n, batch, seq", [(1000, 4, 7), (1001, 5, 10), (97, 3, 32), (66, 1, 5)])
def test_every_token_predicted_once_per_epoch_and_rows_continue(n, batch, seq):
    tokens = np.arange(n, dtype=np.int64)  # token value = its position, so batches reveal what they cover
    b = StreamBatcher(tokens, batch, seq)
    seen, prev_x = Counter(), None
    for step in range(b.steps_per_epoch):
        x, y = b.batch(step * seq)
        assert torch.equal(y, x + 1)  # targets are the next token of the same stream
        assert x.shape[1] == seq or step == b.steps_per_epoch - 1  # only the last batch is shorter
        if prev_x is not None:  # row r continues exactly where row r of the previous batch stopped
            assert torch.equal(x[:, 0], prev_x[:, -1] + 1)
        prev_x = x
        seen.update(y.flatten().tolist())
    assert set(seen.values()) == {1}
    dropped = n - 1 - len(seen)
    assert 0 <= dropped < batch  # only the tail that cannot fill one more position per stream
    assert sorted(seen) == list(range(1, n - dropped))


def test_corpus_shorter_than_one_batch_is_refused_with_what_is_needed():
    with pytest.raises(ValueError, match=r"too short: 100 tokens, need at least 257 .*32 streams x 8 steps"):
        StreamBatcher(np.zeros(100, dtype=np.uint8), 32, 8)


def test_char_vocab_roundtrip_and_unknown_characters():
    v = Vocab.build("hello world\n", "char")
    assert v.tokens == sorted(set("hello world\n"))
    ids, missing = v.encode("hello\n")
    assert ids.dtype == np.uint8 and v.decode(ids) == "hello\n" and not missing
    ids, missing = v.encode("hé€lo")
    assert v.decode(ids) == "hlo" and missing == Counter({"é": 1, "€": 1})
    prime, notes = v.encode_prime("Hé€!o")
    assert v.decode(prime) == "heo" and notes == ["'H' -> 'h'", "'é' -> 'e'", "'€' skipped", "'!' skipped"]
    assert Vocab.from_dict(v.to_dict()).tokens == v.tokens


def test_word_vocab_has_eos_per_line_and_maps_unknown_words():
    v = Vocab.build("the cat sat\nthe dog\n", "word")
    assert v.tokens[:2] == [EOS, UNK] and v.tokens[2] == "the"
    ids, missing = v.encode("the bird sat\n")
    assert [v.tokens[i] for i in ids] == ["the", UNK, "sat", EOS] and missing == Counter({"bird": 1})
    assert v.decode(ids) == "the <unk> sat\n" and v.decode(v.encode("a\nb c")[0]) == "<unk>\n<unk> <unk>\n"
    prime, notes = v.encode_prime("the bird")
    assert [v.tokens[i] for i in prime] == ["the", UNK] and notes == ["'bird' -> <unk>"]


def test_train_val_split_keeps_the_last_fraction():
    train, val = split_train_val(np.arange(100), 0.1)
    assert train.tolist() == list(range(90)) and val.tolist() == list(range(90, 100))
    with pytest.raises(ValueError, match="validation fraction"):
        split_train_val(np.arange(10), 1.5)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "mingru", "minlstm"])
def test_state_carried_across_batches_equals_one_long_sequence(cell):
    model = CharLM(CharLMConfig(vocab_size=11, cell=cell, layers=2, hidden=16, embedding=8)).eval()
    idx = torch.randint(0, 11, (3, 40))
    with torch.no_grad():
        whole, final = model(idx)
        state, parts = None, []
        for chunk in idx.split(7, dim=1):
            out, state = model(chunk, state)
            parts.append(out)
    torch.testing.assert_close(torch.cat(parts, 1), whole, atol=1e-5, rtol=1e-5)
    for a, b in zip(sum(state, []), sum(final, [])):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_evaluate_scores_every_token_once_including_the_tail():
    model = CharLM(CharLMConfig(vocab_size=9, hidden=12, embedding=4)).eval()
    ids = np.random.default_rng(0).integers(0, 9, 203)
    with torch.no_grad():
        logits, _ = model(torch.as_tensor(ids[:-1]).view(1, -1))
        expected = torch.nn.functional.cross_entropy(logits[0], torch.as_tensor(ids[1:])).item()
    # Streams of one batch (tail of 202 % 4 = 2 tokens continues the last stream) vs one long pass:
    # the streams restart from the zero state, so compare against each stream evaluated alone.
    assert evaluate(model, ids, batch_size=1, seq_len=50) == pytest.approx(expected, rel=1e-5)
    n = (len(ids) - 1) // 4
    with torch.no_grad():
        total = 0.0
        for b in range(4):
            end = (b + 1) * n + (len(ids) - 1 - 4 * n if b == 3 else 0)
            seg = torch.as_tensor(ids[b * n:end + 1]).view(1, -1)
            lg, _ = model(seg[:, :-1])
            total += torch.nn.functional.cross_entropy(lg[0], seg[0, 1:], reduction="sum").item()
    assert evaluate(model, ids, batch_size=4, seq_len=16) == pytest.approx(total / (len(ids) - 1), rel=1e-5)


def test_bits_per_character_of_a_uniform_model_is_log2_vocab():
    model = CharLM(CharLMConfig(vocab_size=64, hidden=8, embedding=4))
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    loss = evaluate(model, np.arange(500) % 64, batch_size=4, seq_len=32)
    report = loss_report(loss, "char")
    assert report["loss"] == pytest.approx(math.log(64))
    assert report["bpc"] == pytest.approx(6.0)
    assert report["perplexity"] == pytest.approx(64.0)
    assert set(loss_report(loss, "word")) == {"loss", "bits_per_word", "perplexity"}


def test_tied_weights_need_equal_widths():
    with pytest.raises(ValueError, match="tie_weights needs embedding == hidden"):
        CharLMConfig(vocab_size=5, hidden=16, embedding=8, tie_weights=True)
    model = CharLM(CharLMConfig(vocab_size=5, hidden=8, embedding=8, tie_weights=True))
    assert model.head.weight is model.embed.weight


@pytest.mark.parametrize("feed_forward", [1.5, True, -1])
def test_feed_forward_is_a_whole_multiple(feed_forward):
    with pytest.raises(ValueError, match="feed_forward must be 0 or a positive integer"):
        CharLMConfig(vocab_size=5, residual=True, feed_forward=feed_forward)


def test_residual_layers_are_those_whose_input_is_hidden_wide():
    narrow = CharLM(CharLMConfig(vocab_size=5, hidden=8, embedding=4, layers=3, residual=True))
    wide = CharLM(CharLMConfig(vocab_size=5, hidden=8, embedding=8, layers=3, residual=True))
    assert [narrow.is_residual(i) for i in range(3)] == [False, True, True]
    assert [wide.is_residual(i) for i in range(3)] == [True, True, True]
    # the stream's dropout is on branches only: in eval the residual stream is a plain sum
    with torch.no_grad():
        for layer in wide.rnns:
            for p in layer.parameters():
                p.zero_()
    ids = torch.randint(0, 5, (2, 7))
    logits, _ = wide.eval()(ids)
    # with zero weights each LSTM branch adds h = sigmoid(0) * tanh(0) = 0: the head sees LayerNorm(embedding)
    want = wide.head(wide.final_norm(wide.embed.weight[ids]))
    torch.testing.assert_close(logits, want)
