"""Sequence to sequence with attention: the model of Coursera's Sequence Models, week 3.

    x (batch, Tx) ids -> one-hot or Embedding -> Bidirectional(LSTM(n_a), return_sequences)
                      -> a (batch, Tx, 2 n_a)
    for t in 1..Ty:   context_t = ContextAttention(s_{t-1}, a)            (batch, 2 n_a)
                      s_t = decoder cell(input_t, s_{t-1})           (batch, n_s)
                      y_t = Dense(len(output vocab))(s_t)            logits

The decoder's ``input_t`` is, in the course's mode (``decoder_input="context"``),
the context vector alone; in ``"feedback"`` mode it is the context joined with
an embedding of the previous output symbol (the true one while training —
teacher forcing — and the model's own at inference, greedy or beam search).

The layers are rnnkit's (their weights, initialisers and Keras layout); the
decoder loop is plain PyTorch, stepping the decoder's weights with
``torch.lstm_cell``/``torch.gru_cell``. The course's configuration — one-hot
inputs over 37 symbols, n_a=32, n_s=64, an additive scorer Dense(10, tanh) ->
Dense(1, relu), 11 output symbols — has 52,960 parameters, as in Keras.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import GRU, LSTM, Bidirectional, ContextAttention, Dense, Embedding

CELLS = {"lstm": LSTM, "gru": GRU}
DECODER_INPUTS = ("context", "feedback")


@dataclass
class Seq2SeqConfig:
    """Architecture of a ``Seq2Seq`` model (saved with each checkpoint).

    Attributes:
        input_vocab_size, output_vocab_size: symbols on each side.
        tx, ty: input and output lengths (the course: 30 and 10).
        n_a: units per direction of the bidirectional encoder; n_s: decoder units.
        cell: ``"lstm"`` or ``"gru"`` (encoder and decoder).
        embedding_dim: 0 feeds one-hot vectors (the course); > 0 an ``Embedding`` of that width.
        attention: ``"additive"``, ``"dot"`` or ``"general"``; attention_units: the additive
            scorer's hidden width; energy_activation: on the additive energies (the course: relu).
        decoder_input: ``"context"`` (the course) or ``"feedback"`` (context + previous symbol).
        feedback_dim: width of the previous-symbol embedding in feedback mode.
        mask_padding: the encoder skips ``<pad>`` steps and attention gives them zero
            weight (the course attends over its padding).
        pad_id: the input padding id; end_id: the output symbol that ends a shorter output
            (None when every output has exactly Ty symbols, as ISO dates).
    """

    input_vocab_size: int
    output_vocab_size: int
    tx: int = 30
    ty: int = 10
    n_a: int = 32
    n_s: int = 64
    cell: str = "lstm"
    embedding_dim: int = 0
    attention: str = "additive"
    attention_units: int = 10
    energy_activation: str = "relu"
    decoder_input: str = "context"
    feedback_dim: int = 16
    mask_padding: bool = False
    pad_id: int | None = 0
    end_id: int | None = None

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
        if self.decoder_input not in DECODER_INPUTS:
            raise ValueError(f"decoder_input must be one of {', '.join(DECODER_INPUTS)}, got {self.decoder_input!r}")
        for name in ("input_vocab_size", "output_vocab_size", "tx", "ty", "n_a", "n_s"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.attention == "dot" and self.n_s != 2 * self.n_a:
            raise ValueError(f"dot attention needs n_s == 2 * n_a, got n_s={self.n_s}, n_a={self.n_a}")

    def to_json(self) -> dict:
        return asdict(self)


class Seq2Seq(nn.Module):
    """Bidirectional encoder, attention, recurrent decoder; see the module docstring.

    ``forward(x, y=None)``: ``x (batch, Tx)`` input ids, ``y (batch, Ty)`` target ids
    (used only for teacher forcing in feedback mode) -> ``(logits (batch, Ty, V_out),
    attention (batch, Ty, Tx))``. ``generate(x, beam_width=1)`` -> ``(ids (batch, Ty),
    attention)``.
    """

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        c = self.config = config
        rnn = CELLS[c.cell]
        self.embedding = None
        if c.embedding_dim:
            self.embedding = Embedding(c.input_vocab_size, c.embedding_dim)
            self.embedding.build_for((None, c.tx))
        self.encoder = Bidirectional(rnn(c.n_a, return_sequences=True))
        self.encoder.build_for((None, c.tx, c.embedding_dim or c.input_vocab_size))
        self.attention = ContextAttention(c.attention, units=c.attention_units, energy_activation=c.energy_activation)
        self.attention.build_for([(None, c.n_s), (None, c.tx, 2 * c.n_a)])
        self.feedback = None
        if c.decoder_input == "feedback":
            # One extra row: the start symbol fed before the first output.
            self.feedback = Embedding(c.output_vocab_size + 1, c.feedback_dim)
            self.feedback.build_for((None, c.ty))
        self.decoder = rnn(c.n_s)
        self.decoder.build_for((None, 1, 2 * c.n_a + (c.feedback_dim if self.feedback else 0)))
        self.output = Dense(c.output_vocab_size)
        self.output.build_for((None, c.n_s))

    @property
    def start_id(self) -> int:
        return self.config.output_vocab_size

    def count_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------ pieces
    def encode(self, x: torch.Tensor):
        """``x (batch, Tx)`` ids -> ``(a (batch, Tx, 2 n_a), mask (batch, Tx) or None)``."""
        c = self.config
        mask = (x != c.pad_id) if c.mask_padding and c.pad_id is not None else None
        if self.embedding is not None:
            h = self.embedding(x)
        else:
            h = F.one_hot(x, c.input_vocab_size).float()
        return self.encoder(h, mask=mask), mask

    def initial_state(self, batch: int, device) -> list[torch.Tensor]:
        z = torch.zeros(batch, self.config.n_s, device=device)
        return [z, z] if self.config.cell == "lstm" else [z]

    def step(self, inputs: torch.Tensor, state: list[torch.Tensor]) -> list[torch.Tensor]:
        """One decoder step with the decoder layer's own weights; ``state[0]`` is ``s_t``."""
        if torch.onnx.is_in_onnx_export():
            # lstm_cell/gru_cell have no ONNX form for a dynamic batch; the layer's step is the same recurrence
            return self.decoder.step(F.linear(inputs, self.decoder.weight_ih, self.decoder.bias_ih), state, None)[1]
        w = self.decoder.flat_weights() + [None] * (0 if self.decoder.use_bias else 2)
        if self.config.cell == "lstm":
            return list(torch.lstm_cell(inputs, (state[0], state[1]), *w))
        return [torch.gru_cell(inputs, state[0], *w)]

    def _decode(self, a, mask, choose, prev_ids=None):
        """Run the decoder for Ty steps. ``choose(logits_t)`` picks the next fed-back ids
        (feedback mode without ``prev_ids``); returns logits, attention and chosen ids."""
        c = self.config
        keys = self.attention.project_keys(a)
        state = self.initial_state(a.shape[0], a.device)
        prev = torch.full((a.shape[0],), self.start_id, dtype=torch.long, device=a.device)
        logits, weights, chosen = [], [], []
        for t in range(c.ty):
            context, w = self.attention.attend(state[0], a, keys, mask)
            inputs = context
            if self.feedback is not None:
                fed = prev if prev_ids is None else prev_ids[:, t]
                inputs = torch.cat([context, self.feedback(fed)], dim=-1)
            state = self.step(inputs, state)
            logit = self.output(state[0])
            logits.append(logit)
            weights.append(w)
            if choose is not None:
                prev = choose(logit)
                chosen.append(prev)
        ids = torch.stack(chosen, 1) if chosen else None
        return torch.stack(logits, 1), torch.stack(weights, 1), ids

    # ------------------------------------------------------------ API
    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None):
        a, mask = self.encode(x)
        if self.feedback is not None and y is not None:
            start = torch.full_like(y[:, :1], self.start_id)
            logits, weights, _ = self._decode(a, mask, None, prev_ids=torch.cat([start, y[:, :-1]], 1))
        else:
            logits, weights, _ = self._decode(a, mask, lambda logit: logit.argmax(-1))
        return logits, weights

    @torch.no_grad()
    def generate(self, x: torch.Tensor, beam_width: int = 1):
        """Output ids ``(batch, Ty)`` and attention ``(batch, Ty, Tx)``.

        Greedy with ``beam_width=1``. Beam search (feedback mode) keeps the
        ``beam_width`` best partial outputs by total log-probability; a beam that
        has emitted the end symbol (``end_id``) continues with it at no cost. In
        context mode the outputs do not feed back, so greedy is already exact."""
        if beam_width < 1:
            raise ValueError(f"beam_width must be >= 1, got {beam_width}")
        if beam_width == 1 or self.feedback is None:
            a, mask = self.encode(x)
            _, weights, ids = self._decode(a, mask, lambda logit: logit.argmax(-1))
            return ids, weights
        results = [self._beam_search(x[i : i + 1], beam_width) for i in range(x.shape[0])]
        return torch.stack([r[0] for r in results]), torch.stack([r[1] for r in results])

    def _beam_search(self, x, k):
        c = self.config
        a, mask = self.encode(x)
        keys = self.attention.project_keys(a)
        state = self.initial_state(1, x.device)
        prev = torch.full((1,), self.start_id, dtype=torch.long, device=x.device)
        scores = torch.zeros(1, device=x.device)
        ids = torch.zeros(1, 0, dtype=torch.long, device=x.device)
        weights = torch.zeros(1, 0, x.shape[1], device=x.device)
        for _ in range(c.ty):
            n = prev.shape[0]
            context, w = self.attention.attend(state[0], a.expand(n, -1, -1), keys.expand(n, -1, -1),
                                               None if mask is None else mask.expand(n, -1))
            state = self.step(torch.cat([context, self.feedback(prev)], -1), state)
            logp = torch.log_softmax(self.output(state[0]), -1)
            if c.end_id is not None and ids.shape[1]:
                ended = ids[:, -1] == c.end_id
                logp[ended] = float("-inf")
                logp[ended, c.end_id] = 0.0
            total = (scores[:, None] + logp).flatten()
            top = total.topk(min(k, total.numel()))
            beam, tok = top.indices // logp.shape[1], top.indices % logp.shape[1]
            scores, prev = top.values, tok
            state = [s[beam] for s in state]
            ids = torch.cat([ids[beam], tok[:, None]], 1)
            weights = torch.cat([weights[beam], w[beam][:, None]], 1)
        return ids[0], weights[0]
