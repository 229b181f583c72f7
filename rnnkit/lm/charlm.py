"""A streaming recurrent language model over a token vocabulary (characters or words).

``Embedding -> [RNN layer] x layers -> Linear``, with dropout on every
non-recurrent connection; or, with ``residual``, a residual stream that each
layer (and each optional feed-forward block) adds to from a LayerNorm of it, as
in transformer-style language models. The recurrent layers are rnnkit's own
(``rnnkit.layers.LSTM``/``GRU``/``SimpleRNN``, PyTorch weight layout), run
through their fused native op; the hidden state is an explicit value passed in
and returned, so training can carry it across batches and generation can carry
it across characters.

Generation is stateful: the prime is fed once (one fused call), then each new
token costs one step of every layer from the carried state, however long the
text already is: for LSTMs on the CPU a step over a snapshot of the weights in
C or numpy (`rnnkit.lm.fastgen`, an order of magnitude faster for one stream), else
one ``torch.lstm_cell``-style op per layer (`CharLM.step`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import layers
from ..layers._dropout import Dropout
from ..layers._fusion import embedded_run
from ..layers._lookup import embedding_lookup
from . import fastgen
from ..limits import refuse_large
from .sampling import beam_search, check_sampling_args, sample_next

if TYPE_CHECKING:
    from .batchgen import BatchLSTM

#: Cell name -> (rnnkit layer class, single-step native op or None).
#: A cell without a step op generates through its layer's ``run``, one step at a time.
CELLS = {
    "lstm": (layers.LSTM, torch.lstm_cell),
    "gru": (layers.GRU, torch.gru_cell),
    "rnn": (layers.SimpleRNN, torch.rnn_tanh_cell),
    "mingru": (layers.MinGRU, None),
    "minlstm": (layers.MinLSTM, None),
}

#: Generation engines (see `CharLM.generate`).
ENGINES = ("auto", "fast", "torch")

State = list  # per layer: a list of (batch, hidden) tensors ([h, c] for LSTM, [h] otherwise)


@dataclass
class CharLMConfig:
    """Architecture of a `CharLM` (everything needed to rebuild it; saved with checkpoints).

    Args:
        vocab_size: number of tokens (characters or words).
        cell: ``"lstm"``, ``"gru"``, ``"rnn"``, ``"mingru"`` or ``"minlstm"`` (keys of `CELLS`).
        layers: stacked recurrent layers.
        hidden: units per recurrent layer.
        embedding: embedding width.
        dropout: dropout rate on the embedding output, then between layers and before the head
            (plain stacks) or on every residual branch (``residual``: the outputs of the residual
            layers and of the feed-forward blocks, not the stream itself).
        tie_weights: share the embedding matrix with the output layer (needs ``embedding == hidden``).
        residual: pre-norm residual layers: every layer whose input is ``hidden`` wide (all after
            the first; the first too when ``embedding == hidden``) computes
            ``x + dropout(layer(LayerNorm(x)))``, and a LayerNorm precedes the head. Deep stacks of
            MinGRU/MinLSTM learn faster this way.
        feed_forward: with ``residual``, a position-wise feed-forward block after every layer,
            ``x + dropout(W2 gelu(W1 LayerNorm(x)))`` with ``feed_forward * hidden`` inner units
            (0: none). With it each layer is the block of Feng et al.'s language models.
    """

    vocab_size: int
    cell: str = "lstm"
    layers: int = 1
    hidden: int = 512
    embedding: int = 64
    dropout: float = 0.0
    tie_weights: bool = False
    residual: bool = False
    feed_forward: int = 0

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"unknown cell {self.cell!r}; expected one of {', '.join(CELLS)}")
        for name in ("vocab_size", "layers", "hidden", "embedding"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if isinstance(self.feed_forward, bool) or not isinstance(self.feed_forward, int) or self.feed_forward < 0:
            raise ValueError(f"feed_forward must be 0 or a positive integer, got {self.feed_forward!r}")
        if self.feed_forward and not self.residual:
            raise ValueError("feed_forward needs residual layers; turn them on (--residual) or drop --feed-forward")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.tie_weights and self.embedding != self.hidden:
            raise ValueError(
                f"tie_weights needs embedding == hidden, got embedding={self.embedding} and hidden={self.hidden}; "
                f"give both the same width (--embedding {self.hidden}) or turn tying off (--no-tie-weights)"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CharLMConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config key(s): {', '.join(sorted(unknown))}")
        return cls(**d)


class CharLM(nn.Module):
    """Recurrent language model with an explicit, carried hidden state.

    Call: ``logits, state = model(idx, state)`` with ``idx (batch, time)`` token ids
    and ``state`` from `initial_state` or a previous call (None = zeros); ``logits``
    are ``(batch, time, vocab_size)``.

    Example:
        >>> model = CharLM(CharLMConfig(vocab_size=65, hidden=128))
        >>> logits, state = model(torch.zeros(2, 10, dtype=torch.long))
        >>> logits.shape
        torch.Size([2, 10, 65])
    """

    def __init__(self, config: CharLMConfig):
        super().__init__()
        self.config = config
        c = config
        self.embed = nn.Embedding(c.vocab_size, c.embedding)
        layer_cls, _ = CELLS[c.cell]
        self.rnns = nn.ModuleList()
        for i in range(c.layers):
            layer = layer_cls(c.hidden, return_sequences=True, return_state=True, name=f"{c.cell}_{i}")
            layer.build((None, None, c.embedding if i == 0 else c.hidden))
            self.rnns.append(layer)
        self.drop = Dropout(c.dropout) if c.dropout > 0 else nn.Identity()
        if c.residual:
            self.norms = nn.ModuleList(nn.LayerNorm(c.hidden) if self.is_residual(i) else nn.Identity()
                                       for i in range(c.layers))
            self.final_norm = nn.LayerNorm(c.hidden)
        if c.feed_forward:
            self.feed_forwards = nn.ModuleList(
                nn.Sequential(nn.LayerNorm(c.hidden), nn.Linear(c.hidden, c.feed_forward * c.hidden), nn.GELU(),
                              nn.Linear(c.feed_forward * c.hidden, c.hidden))
                for _ in range(c.layers))
        self.head = nn.Linear(c.hidden, c.vocab_size)
        if c.tie_weights:
            self.head.weight = self.embed.weight

    def is_residual(self, i: int) -> bool:
        """Whether layer ``i`` adds its output to its input (`CharLMConfig.residual`)."""
        return self.config.residual and (i > 0 or self.config.embedding == self.config.hidden)

    def _layer_output(self, i: int, x: torch.Tensor, run, drop: bool = True) -> tuple[torch.Tensor, list]:
        """Layer ``i`` on ``x`` through ``run(layer, inputs) -> (outputs, finals)``, residual or plain
        (``drop``: apply the model's dropout, when training)."""
        layer, dropout = self.rnns[i], (self.drop if drop else nn.Identity())
        if self.is_residual(i):
            y, finals = run(layer, self.norms[i](x))
            x = x + dropout(y)
        else:
            x, finals = run(layer, x)
            # plain stacks drop out between layers; a residual stream is dropped on its branches only
            x = x if self.config.residual else dropout(x)
        if self.config.feed_forward:
            x = x + dropout(self.feed_forwards[i](x))
        return x, finals

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.final_norm(x) if self.config.residual else x)

    # ------------------------------------------------------------------ state
    def initial_state(self, batch: int, device=None) -> State:
        """Zero state for ``batch`` streams."""
        device = device or self.head.weight.device
        return [layer.initial_states(torch.zeros(batch, 1, 1, device=device), None) for layer in self.rnns]

    @staticmethod
    def detach_state(state: State) -> State:
        """Cut the graph at a batch boundary (truncated backpropagation through time)."""
        return [[s.detach() for s in layer_state] for layer_state in state]

    @staticmethod
    def select_state(state: State, index: torch.Tensor) -> State:
        """The states of streams ``index`` (reorders beams; picks one stream)."""
        return [[s.index_select(0, index) for s in layer_state] for layer_state in state]

    # ---------------------------------------------------------------- forward
    def forward(self, idx: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """``idx (batch, time)`` -> ``(logits (batch, time, vocab), final state)``."""
        if state is None:
            state = self.initial_state(idx.shape[0], idx.device)
        # A MinGRU/MinLSTM first layer reads its gate logits from the projected embedding
        # table (rnnkit/layers/_fusion.py, whose guards decide), unless dropout on the embedded
        # vectors is due or the layer's input is normalised first (a residual first layer).
        fused = None
        if not (self.training and self.config.dropout > 0) and not self.is_residual(0):
            fused = embedded_run(self.embed, self.rnns[0], idx, state[0], self.training)
        x = None if fused is not None else self.drop(embedding_lookup(idx, self.embed.weight))
        new_state = []
        for i, layer_state in enumerate(state):
            if i == 0 and fused is not None:
                run = lambda layer, _: fused  # noqa: E731
            else:
                run = lambda layer, inputs: layer.run(inputs, None, layer_state, self.training)  # noqa: E731
            x, finals = self._layer_output(i, x, run)
            new_state.append(finals)
        return self._head(x), new_state

    @torch.inference_mode()
    def step(self, token: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One token per stream: ``token (batch,)`` -> ``(logits (batch, vocab), state)``.

        Uses the cell's single-step native op on the layer's own weights, so the
        cost does not depend on how many tokens came before.
        """
        _, step_op = CELLS[self.config.cell]
        x = self.embed.weight.index_select(0, token)
        new_state = []

        def one_step(layer, inputs):
            if step_op is None:
                out, finals = layer.run(inputs.unsqueeze(1), None, layer_state, False)
                return out[:, 0], finals
            # The cell ops accept a missing hidden-hidden bias (rnnkit's LSTM has none).
            weights = (layer.weight_ih, layer.weight_hh, layer.bias_ih, layer.bias_hh)
            if len(layer_state) == 2:
                h, c = step_op(inputs, tuple(layer_state), *weights)
                return h, [h, c]
            h = step_op(inputs, layer_state[0], *weights)
            return h, [h]

        for i, layer_state in enumerate(state):
            x, finals = self._layer_output(i, x, one_step, drop=False)  # generation never drops out
            new_state.append(finals)
        return self._head(x), new_state

    # ------------------------------------------------------------- generation
    @torch.inference_mode()
    def prime(self, ids: list[int] | torch.Tensor) -> tuple[torch.Tensor, State]:
        """Feed ``ids`` once (one fused call per layer) from the zero state.

        Returns the logits for the next token ``(vocab,)`` and the state after ``ids``."""
        ids = torch.as_tensor(ids, dtype=torch.long, device=self.head.weight.device).view(1, -1)
        if ids.shape[1] == 0:
            raise ValueError("prime: need at least one token to start from")
        was_training = self.training
        self.eval()
        try:
            logits, state = self(ids)
        finally:
            self.train(was_training)
        return logits[0, -1], state

    @torch.inference_mode()
    def generate(
        self,
        prime_ids: list[int],
        length: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        precision: str = "fp32",
        engine: str = "auto",
    ) -> Iterator[int]:
        """Yield ``length`` sampled token ids, one step of the carried state each.

        The same ``generator`` seed gives the same tokens. ``temperature`` divides the
        logits (0 = greedy); ``top_k`` keeps the k most likely tokens; ``top_p`` keeps
        the smallest set whose probability reaches p (nucleus sampling). The prime is
        always read in float32 by the fused op. ``precision`` and ``engine`` pick the
        per-token step: ``engine="auto"`` takes `rnnkit.lm.fastgen.FastLSTM` (numpy buffers,
        the fastest for a batch of one) when it can step this model at this precision, else
        `stepper(precision)`; ``"fast"`` insists on the former, ``"torch"`` on the latter.
        """
        check_sampling_args(temperature, top_k, top_p)
        logits, state, step, fast = self._primed(prime_ids, precision, engine)
        if top_k is not None or top_p is not None or temperature == 0:
            for _ in range(length):
                token = sample_next(logits, temperature, top_k, top_p, generator=generator)
                yield int(token)
                logits, state = step(token, state)
            return
        # Plain sampling, inverse-CDF with the uniforms drawn up front: a few operations a token.
        uniforms = torch.rand(length, 1, generator=generator, dtype=torch.float64, device=logits.device)
        if fast is not None:
            yield from fastgen.sample_stream(fast, logits[0].numpy(), uniforms.view(-1).numpy(), temperature)
            return
        last = logits.shape[-1] - 1
        for i in range(length):
            cdf = torch.softmax(logits[0].double() / temperature, 0).cumsum_(0)
            token = torch.searchsorted(cdf, uniforms[i]).clamp_(max=last)
            yield int(token)
            logits, state = step(token, state)

    @torch.inference_mode()
    def generate_many(
        self,
        prime_ids: list[int],
        length: int,
        num_samples: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        precision: str = "fp32",
        engine: str = "auto",
    ) -> list[list[int]]:
        """``num_samples`` independent continuations of one prime, ``length`` tokens each,
        generated as a batch: each step reads the weights once for every sample, so many
        samples cost far less than one after the other. Options as `generate`.

        The same seed and ``num_samples`` give the same samples; with plain temperature
        sampling the first one is `generate`'s text for that seed (each sample takes its own
        row of the same uniforms). A float32 LSTM stack on the CPU runs through the C batched
        step (`batch_stepper`, `rnnkit.lm.batchgen`) where it can be built."""
        check_sampling_args(temperature, top_k, top_p)
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}")
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        refuse_large(f"{num_samples:,} samples of {length:,} tokens", self.samples_bytes(num_samples, length),
                     "generate fewer samples (num_samples / --num-samples) or fewer tokens at a time")
        plain = top_k is None and top_p is None and temperature != 0
        if plain:  # sample k takes row k of the draws: sample 0 has the single stream's uniforms
            uniforms = torch.rand(num_samples, length, generator=generator, dtype=torch.float64).T.contiguous()
        batch = self.batch_stepper(num_samples) if engine != "torch" and precision == "fp32" else None
        if batch is not None:  # the C batched step (rnnkit.lm.batchgen), sampling included
            return self._generate_batch(batch, prime_ids, length, temperature, top_k, top_p, generator,
                                        uniforms if plain else None)
        logits, state, step, _ = self._primed(prime_ids, precision, engine, num_samples)
        out = torch.empty(num_samples, length, dtype=torch.long)
        for i in range(length):
            if plain:  # inverse CDF, as `generate`
                cdf = torch.softmax(logits.double() / temperature, 1).cumsum_(1)
                tokens = torch.searchsorted(cdf, uniforms[i].unsqueeze(1)).clamp_(max=logits.shape[1] - 1).view(-1)
            else:
                tokens = sample_next(logits, temperature, top_k, top_p, generator=generator)
            out[:, i] = tokens
            logits, state = step(tokens, state)
        return out.tolist()

    def samples_bytes(self, num_samples: int, length: int) -> int:
        """Bytes `generate_many` allocates, about: per sample, its uniforms (float64), the
        tokens (int64, then Python ints) for ``length`` steps, a row of logits with its float64
        softmax and cumulative sum, and two copies of the carried state (float32)."""
        state = sum(s.numel() * 4 for layer in self.initial_state(1) for s in layer)
        return num_samples * (length * 24 + self.config.vocab_size * 20 + 2 * state)

    def _generate_batch(self, batch, prime_ids, length, temperature, top_k, top_p, generator, uniforms):
        """`generate_many` through a `BatchLSTM` holding ``num_samples`` copies of the primed
        state; ``uniforms`` ``(length, num_samples)`` for plain sampling, else None."""
        logits, state = self.prime(prime_ids)
        n = batch.capacity
        for _ in range(n):
            batch.add(state)
        batch.logits[:] = logits.numpy()
        out = np.empty((length, n), np.int32)
        plain, temperatures = np.ones(n, bool), np.full(n, float(temperature))
        for i in range(length):
            if uniforms is not None:
                batch.sample_plain(plain, uniforms[i].numpy(), temperatures, out[i])
            else:
                out[i] = sample_next(torch.from_numpy(batch.logits), temperature, top_k, top_p,
                                     generator=generator).numpy()
            batch.step(out[i])
        return out.T.tolist()

    def batch_stepper(self, capacity: int, kernel: str = "auto") -> "BatchLSTM | None":
        """A `rnnkit.lm.batchgen.BatchLSTM` for up to ``capacity`` streams over a snapshot of the
        weights, or None where it cannot step this model (not a plain float32 LSTM stack on the
        CPU) or, with ``kernel="auto"``, where its C step is unavailable."""
        from .batchgen import BatchLSTM, native_problem

        if fastgen.unsupported(self, "fp32") is not None:
            return None
        if kernel == "auto" and native_problem(self.config.layers) is not None:
            return None
        return BatchLSTM(self, capacity, kernel=kernel)

    def _primed(self, prime_ids, precision: str, engine: str, batch: int | None = None):
        """The prime fed once, and the per-token step to continue with: ``(logits (batch, vocab),
        state, step, fast)`` where ``step(tokens (batch,), state) -> (logits, state)`` and ``fast``
        is the `FastLSTM` behind it or None. ``batch`` None is one stream; N copies it N times."""
        fast = self.fast_stepper(precision, engine, batch)
        step = self.stepper(precision) if fast is None else None
        logits, state = self.prime(prime_ids)
        n = batch or 1
        logits = logits.expand(n, -1)
        if batch is not None:
            state = [[s.expand(n, -1).contiguous() for s in layer_state] for layer_state in state]
        if fast is not None:
            fast.load_state(state)
            step = lambda tokens, _: (  # noqa: E731
                torch.from_numpy(fast.step(int(tokens) if batch is None else tokens.numpy())).view(n, -1), None)
        return logits, state, step, fast

    @torch.inference_mode()
    def beam_search(self, prime_ids: list[int], length: int, beam_width: int = 5,
                    precision: str = "fp32") -> tuple[list[int], float]:
        """The most likely ``length``-token continuation found keeping ``beam_width`` hypotheses.

        Returns ``(token ids, total log-probability in nats)``. Meant for short
        completions: the search is deterministic and favours safe, repetitive text.
        """
        step = self.stepper(precision)
        logits, state = self.prime(prime_ids)
        return beam_search(
            lambda s: s[0], lambda s, tokens: step(tokens, s[1]), (logits.unsqueeze(0), state), length, beam_width)

    def stepper(self, precision: str = "fp32") -> Callable[[torch.Tensor, State], tuple[torch.Tensor, State]]:
        """The per-token step for generation: `step` itself for ``"fp32"`` (exact), or a
        `PackedStep` over a snapshot of the weights for ``"fp16"`` / ``"int8"``."""
        if precision == "fp32":
            return self.step
        return PackedStep(self, precision)

    def fast_stepper(self, precision: str = "fp32", engine: str = "auto",
                     batch: int | None = None, kernel: str = "auto") -> "fastgen.FastLSTM | None":
        """A `rnnkit.lm.fastgen.FastLSTM` over a snapshot of the weights (one stream, or
        ``batch`` streams), or None where ``engine="auto"`` and it cannot step this model
        (see `generate`). ``kernel`` is `FastLSTM`'s (C or numpy step for a single stream)."""
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if engine == "torch":
            return None
        why = fastgen.unsupported(self, precision)
        if why is None:
            return fastgen.FastLSTM(self, precision, batch, kernel)
        if engine == "fast":
            raise ValueError(why)
        return None


# -------------------------------------------------------- packed generation
PRECISIONS = ("fp32", "fp16", "int8")


class PackedStep:
    """One generation step with every matrix packed for fbgemm's CPU kernels.

    Generating one token from a batch of one is a chain of matrix-vector products,
    so its speed is the speed of reading the weights from memory: fp16 halves the
    bytes, int8 (one scale per output row, inputs quantized on the fly) quarters
    them. The state stays float32. Results differ from float32 by rounding
    (logits: fp16 within ~0.3%, int8 within a few %), and are deterministic.
    """

    def __init__(self, model: CharLM, precision: str):
        if precision not in PRECISIONS[1:]:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if "fbgemm" not in torch.backends.quantized.supported_engines:
            raise ValueError(f"precision {precision!r} needs PyTorch's fbgemm kernels (x86 CPUs); use fp32")
        if model.head.weight.device.type != "cpu":
            raise ValueError(f"precision {precision!r} is for generation on the CPU; use fp32 on {model.head.weight.device}")
        if model.config.cell not in _CELL_MATH:
            raise ValueError(f"precision {precision!r} supports cells {', '.join(_CELL_MATH)}; use fp32 for {model.config.cell}")
        if model.config.residual:
            raise ValueError(f"precision {precision!r} supports plain stacks, not residual ones; use fp32")
        pack, self.linear = fastgen.PACKERS[precision]
        self.cell = model.config.cell
        self.embed = model.embed.weight.detach()
        self.layers = [(pack(layer.weight_ih, layer.bias_ih), pack(layer.weight_hh, layer.bias_hh))
                       for layer in model.rnns]
        self.head = pack(model.head.weight, model.head.bias)

    @torch.inference_mode()
    def __call__(self, token: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        x = self.embed.index_select(0, token)
        new_state = []
        for (w_ih, w_hh), layer_state in zip(self.layers, state):
            finals = _CELL_MATH[self.cell](self.linear(x, w_ih), self.linear(layer_state[0], w_hh), layer_state)
            new_state.append(finals)
            x = finals[0]
        return self.linear(x, self.head), new_state


def _lstm_math(gi, gh, state):
    i, f, g, o = (gi + gh).chunk(4, 1)
    c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
    return [torch.sigmoid(o) * torch.tanh(c), c]


def _gru_math(gi, gh, state):  # PyTorch's gate order r, z, n; the reset gate scales W_hh h + b_hh
    ir, iz, in_ = gi.chunk(3, 1)
    hr, hz, hn = gh.chunk(3, 1)
    r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
    n = torch.tanh(in_ + r * hn)
    return [n + z * (state[0] - n)]


_CELL_MATH = {"lstm": _lstm_math, "gru": _gru_math, "rnn": lambda gi, gh, state: [torch.tanh(gi + gh)]}
