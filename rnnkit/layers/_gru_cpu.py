"""GRU training on CPU with hand-written backpropagation through time.

Why this exists: on CPU, PyTorch trains an LSTM through oneDNN's fused RNN
primitive, but ``torch.gru`` is a per-step ATen loop in which autograd records
every small op (about 25 graph nodes per step and direction) and replays them
one by one backwards, so a GRU trains *slower* than an LSTM of the same size,
although it does three quarters of the work. oneDNN has the right cell
("linear-before-reset" GRU, which is PyTorch's GRU and Keras's
``reset_after=True``), but PyTorch exposes no entry point to it:
``aten::mkldnn_rnn_layer`` always builds an LSTM primitive, whatever its
``mode``. So this module does by hand what a fused kernel would:

* forward: the input projections of all steps and both directions in one
  matmul; then a tight loop under no autograd, both directions batched into one
  ``baddbmm`` per step, writing the gates it will need into preallocated buffers;
* backward: everything that does not depend on the incoming gradient is
  computed for all steps at once; the sequential part is four ops per step
  (both directions together); the weight gradients are then single big matmuls
  over all steps instead of one small accumulation per step.

Masks (Keras semantics: a masked step keeps the state) cost nothing per step:
the update gate's input is set to +inf at masked steps, so ``z = 1`` exactly,
``h_t = h_{t-1}`` exactly, and every gate gradient there is exactly zero.

Only used where it pays: CPU, float32/float64, gradients being recorded, no
autocast. Inference and CUDA keep the native ``torch.gru`` (see ``_fused``).
"""
from __future__ import annotations

import torch

# Set to False to train GRUs on CPU with ``torch.gru`` as before (benchmarks/seed_models.py
# compares both in one run).
enabled = True


def eligible(x: torch.Tensor, hx: tuple[torch.Tensor, ...], weights: list[torch.Tensor]) -> bool:
    """Whether ``gru_train`` should run this call instead of ``torch.gru``."""
    if not enabled or x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or 0 in x.shape[:2]:
        return False
    if not torch.is_grad_enabled() or torch.is_autocast_enabled("cpu"):
        return False
    tensors = [x, *hx, *weights]
    if any(t.dtype != x.dtype or t.device.type != "cpu" for t in tensors):
        return False
    return any(t.requires_grad for t in tensors)


# Work is done in chunks of time steps whose buffers hold at most this many
# elements. Bounding them keeps every allocation small enough for malloc to
# recycle (buffers of 32 MB and more are fresh mmaps each call, and the page
# faults of touching them cost as much as the work) and keeps a chunk in cache.
CHUNK_ELEMENTS = 1 << 20


def _steps(y: torch.Tensor, dirs: int, t0: int, t1: int) -> torch.Tensor:
    """Steps ``t0:t1`` of each direction's processing order, time-major.

    ``y`` is ``(batch, time, dirs, k)`` (or ``(batch, time, 1, k)`` shared by both
    directions); returns ``(dirs, t1 - t0, batch, k)``. Direction 1 processes time
    backwards, so its step ``s`` is time ``time - 1 - s``."""
    batch, time, _, k = y.shape
    out = y.new_empty(dirs, t1 - t0, batch, k)
    out[0] = y[:, t0:t1, 0].transpose(0, 1)
    if dirs == 2:
        out[1] = y[:, time - t1 : time - t0, -1].flip(1).transpose(0, 1)
    return out


def _add_steps(acc: torch.Tensor, s: torch.Tensor, t0: int, t1: int) -> None:
    """Inverse of ``_steps`` for ``acc (batch, time, k)``: add every direction's steps into ``acc``."""
    time = acc.shape[1]
    acc[:, t0:t1] += s[0].transpose(0, 1)
    if len(s) == 2:
        acc[:, time - t1 : time - t0] += s[1].flip(0).transpose(0, 1)


def _chunks(time: int, per_step: int) -> list[tuple[int, int]]:
    size = max(1, min(time, CHUNK_ELEMENTS // per_step))
    return [(t0, min(t0 + size, time)) for t0 in range(0, time, size)]


def _forward_steps(g, gi_n, rz, n, hs, w_hh_t) -> None:
    """The sequential part of the forward pass over one chunk, in place.

    Arrays are ``(dirs, steps, batch, .)``: ``g`` holds ``[gi_r + b_r, gi_z + b_z, b_hn]``
    and each step adds ``h W_hh^T`` to it; the gates go to ``rz``, the candidate
    to ``n``, the new state to ``hs[:, s + 1]``. Views of every step are made up
    front (one ``unbind`` each), so the loop is five ops per step."""
    u = n.shape[-1]
    g_s, pre_rz, pre_n = g.unbind(1), g[..., : 2 * u].unbind(1), g[..., 2 * u :].unbind(1)
    rz_s, r_s, z_s = rz.unbind(1), rz[..., :u].unbind(1), rz[..., u:].unbind(1)
    gi_n_s, n_s, h_s = gi_n.unbind(1), n.unbind(1), hs.unbind(1)
    for s in range(len(g_s)):
        g_s[s].baddbmm_(h_s[s], w_hh_t)
        torch.sigmoid(pre_rz[s], out=rz_s[s])
        torch.addcmul(gi_n_s[s], r_s[s], pre_n[s], out=n_s[s]).tanh_()
        torch.lerp(n_s[s], h_s[s], z_s[s], out=h_s[s + 1])  # n + z * (h - n)


def _backward_steps(d_out, coef, z, w_hh, carry, dh, d_g) -> torch.Tensor:
    """The sequential part of the backward pass over one chunk, last step first.

    ``d_out (dirs, steps, batch, u)`` is the gradient from the outputs, ``carry``
    the one from the next chunk (or the final state). Fills ``dh`` (total
    gradient of each step's state) and ``d_g = dh * coef`` (of ``[r, z]`` pre-
    activations and ``gh_n``); returns the gradient of the state before the chunk."""
    dirs, steps, batch, u = dh.shape
    d_out_s, dh_s, dh_col = d_out.unbind(1), dh.unbind(1), dh.unsqueeze(-2).unbind(1)
    coef_s, d_g_s, d_g_rows, z_s = coef.unbind(1), d_g.unbind(1), d_g.view(dirs, steps, batch, 3 * u).unbind(1), z.unbind(1)
    for s in range(steps - 1, -1, -1):
        torch.add(d_out_s[s], carry, out=dh_s[s])
        torch.mul(dh_col[s], coef_s[s], out=d_g_s[s])
        carry = torch.bmm(d_g_rows[s], w_hh).addcmul_(dh_s[s], z_s[s])
    return carry


class _GRU(torch.autograd.Function):
    """One GRU layer, one or two directions, batch first. Inputs: ``x (batch, time, in)``,
    ``h0 (dirs, batch, units)``, ``invalid (dirs, time, batch, 1)`` bool or None
    (masked steps, in processing order), ``has_biases``, then the flat weights
    ``w_ih (3u, in), w_hh (3u, u)[, b_ih, b_hh]`` per direction (gates r, z, n).
    Returns ``(outputs (batch, time, dirs * units), h_n (dirs, batch, units))``.

    Per step, with ``gh = h W_hh^T + b_hh``: ``r = sigmoid(gi_r + gh_r)``,
    ``z = sigmoid(gi_z + gh_z)``, ``n = tanh(gi_n + r * gh_n)``, ``h = n + z (h - n)``.
    """

    @staticmethod
    def forward(ctx, x, h0, invalid, has_biases, *weights):
        batch, time, n_in = x.shape
        dirs, _, u = h0.shape
        per = 4 if has_biases else 2
        w_ih_t = torch.stack(weights[0::per]).transpose(1, 2)  # (dirs, in, 3u)
        w_hh_t = torch.stack(weights[1::per]).transpose(1, 2)  # (dirs, u, 3u)
        # gh_r and gh_z only ever appear added to gi_r and gi_z: fold their biases in.
        bias = x.new_zeros(dirs, 1, 3 * u)
        b_hn = x.new_zeros(dirs, 1, 1, u)
        if has_biases:
            b_hh = torch.stack(weights[3::per])
            bias[:, 0] = torch.stack(weights[2::per])
            bias[:, 0, : 2 * u] += b_hh[:, : 2 * u]
            b_hn[:, 0, 0] = b_hh[:, 2 * u :]
        x_shared = x.unsqueeze(2)

        out = x.new_empty(batch, time, dirs, u)
        h = h0
        saved = []
        chunks = _chunks(time, dirs * batch * 4 * u)
        for t0, t1 in chunks:
            k = t1 - t0
            xs = _steps(x_shared, dirs, t0, t1).view(dirs, k * batch, n_in)
            # g holds [gi_r + gh_r, gi_z + gh_z, gh_n] once each step has added h W_hh^T to it.
            g = torch.baddbmm(bias, xs, w_ih_t).view(dirs, k, batch, 3 * u)
            gi_n = g[..., 2 * u :].clone()
            g[..., 2 * u :] = b_hn
            if invalid is not None:
                g[..., u : 2 * u].masked_fill_(invalid[:, t0:t1], float("inf"))  # z = 1: keep the state
            hs = x.new_empty(dirs, k + 1, batch, u)  # hs[:, s] = state before step t0 + s
            hs[:, 0] = h
            rz = x.new_empty(dirs, k, batch, 2 * u)
            n = x.new_empty(dirs, k, batch, u)
            _forward_steps(g, gi_n, rz, n, hs, w_hh_t)
            h = hs[:, k]
            out[:, t0:t1, 0] = hs[0, 1:].transpose(0, 1)
            if dirs == 2:
                out[:, time - t1 : time - t0, 1] = hs[1, 1:].flip(0).transpose(0, 1)
            saved += [g, rz, n, hs]

        ctx.has_biases = has_biases
        ctx.chunks = chunks
        ctx.save_for_backward(x, w_ih_t, w_hh_t, *saved)
        return out.view(batch, time, dirs * u), h.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_out, d_hn):
        x, w_ih_t, w_hh_t, *saved = ctx.saved_tensors
        batch, time, n_in = x.shape
        dirs, u, _ = w_hh_t.shape
        w_hh = w_hh_t.transpose(1, 2)
        d_out = d_out.view(batch, time, dirs, u)
        d_x = torch.zeros_like(x) if ctx.needs_input_grad[0] else None
        d_w_ih_t = x.new_zeros(dirs, n_in, 3 * u)
        d_w_hh_t = x.new_zeros(dirs, u, 3 * u)
        d_b_ih = x.new_zeros(dirs, 3 * u)
        d_b_hh = x.new_zeros(dirs, 3 * u)
        carry = d_hn
        for i in range(len(ctx.chunks) - 1, -1, -1):
            t0, t1 = ctx.chunks[i]
            k = t1 - t0
            g, rz, n, hs = saved[4 * i : 4 * i + 4]
            r, z, gh_n, h_prev = rz[..., :u], rz[..., u:], g[..., 2 * u :], hs[:, :k]
            # Each gate's gradient is dh_t times a coefficient known before the
            # sequential loop: compute them for the whole chunk at once.
            dn_pre = torch.mul(n, n).neg_().add_(1)
            dn_pre.addcmul_(dn_pre, z, value=-1)  # (1 - z)(1 - n^2): dh -> n's pre-activation
            coef = x.new_empty(dirs, k, batch, 3, u)
            c_r, c_z, c_n = coef.unbind(3)
            torch.mul(dn_pre, r, out=c_n)  # dh -> gh_n
            torch.mul(c_n, gh_n, out=c_r).addcmul_(c_r, r, value=-1)  # dh -> r's pre-activation
            torch.sub(h_prev, n, out=c_z).mul_(z).addcmul_(c_z, z, value=-1)  # dh -> z's pre-activation
            d_out_s = _steps(d_out, dirs, t0, t1)
            dh = x.new_empty(dirs, k, batch, u)  # total gradient reaching each step's output
            d_g = x.new_empty(dirs, k, batch, 3, u)  # gradient of [r, z pre-activations, gh_n]
            carry = _backward_steps(d_out_s, coef, z, w_hh, carry, dh, d_g)

            d_g_flat = d_g.view(dirs, k * batch, 3 * u)
            d_w_hh_t.baddbmm_(h_prev.reshape(dirs, k * batch, u).transpose(1, 2), d_g_flat)
            d_b_hh += d_g_flat.sum(1)
            torch.mul(dh, dn_pre, out=d_g[..., 2, :])  # d_g is now the input projection's gradient
            xs = _steps(x.unsqueeze(2), dirs, t0, t1).view(dirs, k * batch, n_in)
            d_w_ih_t.baddbmm_(xs.transpose(1, 2), d_g_flat)
            d_b_ih += d_g_flat.sum(1)
            if d_x is not None:
                _add_steps(d_x, torch.bmm(d_g_flat, w_ih_t.transpose(1, 2)).view(dirs, k, batch, n_in), t0, t1)

        grads = []
        for d in range(dirs):
            grads += [d_w_ih_t[d].t(), d_w_hh_t[d].t()]
            if ctx.has_biases:
                grads += [d_b_ih[d], d_b_hh[d]]
        return (d_x, carry, None, None, *grads)


def gru_train(
    x: torch.Tensor,
    mask: torch.Tensor | None,
    h0: torch.Tensor,
    weights: list[torch.Tensor],
    has_biases: bool,
    bidirectional: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GRU layer forward with hand-written backward; same contract as ``torch.gru``
    (batch first, one layer) plus Keras masks.

    Args:
        x: ``(batch, time, features)``.
        mask: ``(batch, time)`` bool, True = real step; or None.
        h0: ``(directions, batch, units)``.
        weights: ``w_ih, w_hh[, b_ih, b_hh]`` per direction, PyTorch's gate order (r, z, n).

    Returns:
        ``(outputs (batch, time, directions * units), h_n (directions, batch, units))``.
        With a mask, a masked step repeats the previous output (the next step's
        for the backward direction) and steps before any real one output zeros,
        as ``_fused.fused_run``.
    """
    invalid = None
    if mask is not None:
        steps = (~mask).t()  # (time, batch)
        invalid = (torch.stack([steps, steps.flip(0)]) if bidirectional else steps[None]).unsqueeze(-1)
    out, h_n = _GRU.apply(x, h0, invalid, has_biases, *weights)
    if mask is None:
        return out, h_n
    seen = mask.cumsum(1) > 0
    if bidirectional:
        seen = torch.stack([seen, mask.flip(1).cumsum(1).flip(1) > 0], dim=-1)
    units = h0.shape[-1]
    out = out.view(*mask.shape, -1, units) * seen.view(*mask.shape, -1, 1)
    return out.flatten(2), h_n
