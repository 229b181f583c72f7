"""Choosing next tokens from next-token logits: greedy, temperature, top-k, top-p, beam search.

Everything here works on logits of shape `(batch, vocab)` and on two callables
supplied by the model's engine, so any autoregressive model can use it (a
word-level model re-reading a window of ids, a character-level model carrying
its recurrent state):

    logits_fn(state) -> (batch, vocab) logits of the next token
    advance_fn(state, tokens) -> the state after appending `tokens` (batch,)

Example (greedy continuation of one window, 5 tokens):

    >>> tokens = sample_tokens(logits_fn, advance_fn, window, steps=5, temperature=0.0)
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch

from ..limits import refuse_large

__all__ = [
    "check_sampling_args",
    "filter_logits",
    "sample_next",
    "sample_tokens",
    "beam_search",
    "select_rows",
]

LogitsFn = Callable[[Any], torch.Tensor]
AdvanceFn = Callable[[Any, torch.Tensor], Any]


def check_sampling_args(temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                        beam_width: int | None = None) -> None:
    """Raises a one-line `ValueError` naming the first bad argument.

    Valid: `temperature >= 0` (0 is greedy), `top_k >= 1`, `0 < top_p <= 1`,
    `beam_width >= 1`; a beam wider than 1 searches deterministically, so it
    cannot be combined with `top_k`/`top_p`.
    """
    if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be an integer >= 1, got {top_k!r}")
    if top_p is not None and not (isinstance(top_p, (int, float)) and 0.0 < top_p <= 1.0):
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
    if beam_width is not None and (isinstance(beam_width, bool) or not isinstance(beam_width, int) or beam_width < 1):
        raise ValueError(f"beam_width must be an integer >= 1, got {beam_width!r}")
    if beam_width is not None and beam_width > 1 and (top_k is not None or top_p is not None):
        raise ValueError("beam search (beam_width > 1) is deterministic; it cannot be combined with top_k or top_p")


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None, banned: Sequence[int] = ()) -> torch.Tensor:
    """Scaled logits with every excluded token set to `-inf`.

    Applied in this order: `banned` ids are removed, logits are divided by
    `temperature` (skipped when it is 0 or 1), only the `top_k` largest are
    kept, then only the smallest set of most probable tokens whose
    probabilities sum to at least `top_p` (nucleus sampling; the most probable
    token is always kept).

    Args:
        logits: `(batch, vocab)` float tensor.
        temperature: Softmax temperature; below 1 sharpens, above 1 flattens.
        top_k: Keep this many tokens per row. Defaults to `None` (all).
        top_p: Probability mass to keep, in `(0, 1]`. Defaults to `None` (all).
        banned: Token ids never chosen (e.g. padding 0). Defaults to `()`.

    Returns:
        A new `(batch, vocab)` tensor.
    """
    out = logits.float().clone()
    if len(banned):
        out[:, list(banned)] = -math.inf
    if temperature not in (0, 1):
        out = out / float(temperature)
    if top_k is not None and top_k < out.shape[-1]:
        kth = out.topk(top_k, dim=-1).values[:, -1:]
        out = out.masked_fill(out < kth, -math.inf)
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = out.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # drop a token once the tokens ranked above it already hold top_p of the mass
        drop = (probs.cumsum(dim=-1) - probs) >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, -math.inf)
        out = torch.full_like(out, -math.inf).scatter(-1, order, sorted_logits)
    return out


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, banned: Sequence[int] = (),
                generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row: the argmax when `temperature` is 0, else a draw from the filtered softmax.

    Args:
        logits: `(batch, vocab)` next-token logits.
        temperature, top_k, top_p, banned: as `filter_logits`.
        generator: `torch.Generator` for reproducible draws. Defaults to
            `None` (torch's global generator).

    Returns:
        Long tensor of shape `(batch,)`.
    """
    filtered = filter_logits(logits, temperature, top_k, top_p, banned)
    if temperature == 0:
        return filtered.argmax(dim=-1)
    probs = filtered.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def sample_tokens(logits_fn: LogitsFn, advance_fn: AdvanceFn, state, steps: int, temperature: float = 1.0,
                  top_k: int | None = None, top_p: float | None = None, banned: Sequence[int] = (),
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Autoregressive sampling: `steps` tokens per row of `state`.

    Args:
        logits_fn, advance_fn: see the module docstring.
        state: The engine's state for a batch of contexts.
        steps: Number of tokens to produce (>= 0).
        temperature, top_k, top_p, banned, generator: as `sample_next`.

    Returns:
        Long tensor of shape `(batch, steps)`.
    """
    chosen = []
    with torch.no_grad():
        for _ in range(steps):
            tokens = sample_next(logits_fn(state), temperature, top_k, top_p, banned, generator)
            chosen.append(tokens)
            state = advance_fn(state, tokens)
    if not chosen:
        return torch.zeros((_batch_size(logits_fn, state), 0), dtype=torch.long)
    return torch.stack(chosen, dim=1)


def select_rows(state, index: torch.Tensor):
    """Picks rows `index` along axis 0 of a tensor, or of every tensor in a tuple/list/dict."""
    if isinstance(state, torch.Tensor):
        return state.index_select(0, index.to(state.device))
    if isinstance(state, (tuple, list)):
        return type(state)(select_rows(s, index) for s in state)
    if isinstance(state, dict):
        return {k: select_rows(v, index) for k, v in state.items()}
    raise TypeError(f"select_rows: cannot index a state of type {type(state).__name__}; pass select_fn")


def beam_search(logits_fn: LogitsFn, advance_fn: AdvanceFn, state, steps: int, beam_width: int,
                banned: Sequence[int] = (), select_fn: Callable[[Any, torch.Tensor], Any] = select_rows,
                ) -> tuple[list[int], float]:
    """The most likely continuation of one context found by beam search.

    Keeps the `beam_width` highest-scoring partial continuations (score = sum
    of token log-probabilities) and extends each by every token, `steps`
    times. All beams have the same length, so scores need no length
    normalisation. `beam_width=1` is greedy decoding.

    Args:
        logits_fn, advance_fn: see the module docstring.
        state: State of a batch of exactly one context.
        steps: Number of tokens to produce (>= 0).
        beam_width: Number of beams kept (>= 1).
        banned: Token ids never chosen. Defaults to `()`.
        select_fn: `select_fn(state, index)` keeps the rows `index` (a long
            tensor, possibly repeating rows) of a batched state. Defaults to
            `select_rows` (axis 0 of every tensor).

    Returns:
        `(tokens, log_prob)`: the best continuation as a list of `steps` ids,
        and its total log-probability.
    """
    check_sampling_args(beam_width=beam_width)
    if steps > 0:
        refuse_large(f"beam search of width {beam_width:,} over {steps:,} tokens",
                     beam_bytes(beam_width, steps, logits_fn(state).shape[-1], state),
                     "use a narrower beam (beam_width / --beam-width) or fewer tokens")
    scores = torch.zeros(1)
    history = torch.zeros((1, 0), dtype=torch.long)
    with torch.no_grad():
        for _ in range(steps):
            logp = filter_logits(logits_fn(state), banned=banned).log_softmax(dim=-1).cpu()
            vocab = logp.shape[-1]
            candidates = (scores[:, None] + logp).reshape(-1)
            k = min(beam_width, int(torch.isfinite(candidates).sum()))
            if k == 0:
                raise ValueError("beam_search: every token is banned; nothing can be generated")
            scores, flat = candidates.topk(k)
            rows, tokens = flat // vocab, flat % vocab
            history = torch.cat([history[rows], tokens[:, None]], dim=1)
            state = advance_fn(select_fn(state, rows), tokens)
    return history[0].tolist(), float(scores[0])


def beam_bytes(beam_width: int, steps: int, vocab: int, state) -> int:
    """Bytes `beam_search` allocates at its widest, about: per beam, four float32 rows of
    ``vocab`` scores (logits, log-probabilities, candidates, their filter), two int64
    histories of ``steps`` tokens, and three copies of ``state`` (one context's state, any
    nesting of tensors)."""
    def nbytes(s) -> int:
        if isinstance(s, torch.Tensor):
            return s.numel() * s.element_size()
        return sum(nbytes(t) for t in s) if isinstance(s, (list, tuple)) else 0

    return beam_width * (vocab * 16 + steps * 16 + 3 * nbytes(state))


def _batch_size(logits_fn: LogitsFn, state) -> int:
    return int(logits_fn(state).shape[0])
