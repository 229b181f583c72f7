"""The fit / evaluate / predict loops behind ``Model``: plain, readable PyTorch.

Data flows one way: arrays -> tensors on the model's device -> index batches ->
forward (logits where the loss can use them) -> loss + weight penalties ->
backward -> clip -> optimizer step -> streaming metrics -> callbacks.
"""
from __future__ import annotations

import contextlib
import math
import sys

import numpy as np
import torch

from .. import distributed
from ..allocator import keep_freed_memory
from ..layers.base import as_tensor
from .callbacks import CallbackList, History
from .compile import build_training_state
from .progress import ProgressLogger


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss became NaN)."""


def _to_tensor(data, device, what):
    if data is None:
        raise ValueError(f"{what} is missing")
    if isinstance(data, (list, tuple)) and data and isinstance(data[0], (np.ndarray, torch.Tensor)) and len(data) > 1 and what == "x":
        raise ValueError("x: a Sequential model takes a single input array, got a list of arrays")
    return as_tensor(data, device)


def _check_lengths(x, y):
    if y is not None and len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}; they must have the same length")
    if len(x) == 0:
        raise ValueError("x has no samples")


def _require_compiled(model):
    if model.compiled is None:
        raise RuntimeError(f"model {model.name!r} must be compiled before training or evaluation: call model.compile(...)")


def _ensure_built(model, x):
    if not model.built:
        model.build_for((None,) + tuple(x.shape[1:]))
    build_training_state(model)


def _autocast(model):
    """Mixed-precision context from ``compile(precision=...)`` (a no-op for fp32)."""
    precision = getattr(model.compiled, "precision", "fp32")
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=model.device.type, dtype=dtype)


def sample_weights(y: torch.Tensor, sample_weight=None, class_weight=None, what: str = "sample_weight"):
    """The per-sample loss weights ``fit``/``evaluate`` use: ``sample_weight`` as a float tensor
    (``(n,)``, or ``(n, steps)`` for sequence targets), or weights looked up from ``class_weight``
    (``{class index: weight}``; classes not in it weigh 1) by each sample's label: the target
    itself for integer labels ``(n,)``/``(n, 1)``, the arg-max of one-hot rows. None when
    neither is given. Keras's rules, checked with one-line errors."""
    if sample_weight is not None and class_weight is not None:
        raise ValueError("give sample_weight or class_weight, not both (Keras refuses both too)")
    if class_weight is not None:
        if not isinstance(class_weight, dict) or not all(
                isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in class_weight):
            raise ValueError(f"class_weight must be a dict of class index -> weight, got {class_weight!r}")
        labels = y
        if labels.dim() == 2 and labels.shape[-1] == 1:
            labels = labels.squeeze(-1)
        elif labels.dim() == 2 and _probability_rows(labels):  # one-hot (or smoothed) rows: the arg-max
            labels = labels.argmax(-1)
        if labels.dim() != 1:
            raise ValueError(f"class_weight needs one label per sample (targets (n,), (n, 1) or one-hot "
                             f"(n, classes)), got targets of shape {tuple(y.shape)}; for sequence targets "
                             f"pass sample_weight of shape (n, steps)")
        labels = labels.double().round().long()
        w = torch.ones(len(labels), dtype=torch.float32, device=y.device)
        for cls, weight in class_weight.items():
            w[labels == int(cls)] = float(weight)
        return w
    if sample_weight is None:
        return None
    w = as_tensor(sample_weight, y.device).float()
    if w.dim() == 2 and w.shape[1] == 1:  # (n, 1): one weight per sample, as (n,)
        w = w[:, 0]
    lead = tuple(y.shape[: w.dim()])
    if w.dim() not in (1, 2) or tuple(w.shape) != lead:
        raise ValueError(f"{what} must have shape (n,) or (n, steps) matching the targets {tuple(y.shape)}, "
                         f"got {tuple(w.shape)}")
    if not torch.isfinite(w).all():
        raise ValueError(f"{what} has values that are not finite numbers")
    return w


def _probability_rows(y: torch.Tensor) -> bool:
    """Whether every row of ``y`` is a distribution (non-negative, sums to 1): one-hot targets,
    not a row of integer labels per step."""
    y = y.double()
    return bool((y >= 0).all() and torch.allclose(y.sum(-1), torch.ones((), dtype=y.dtype), atol=1e-3))


def _forward_loss(model, xb, yb, training: bool, runner=None, wb=None):
    """Forward a batch; returns (loss incl. penalties, predictions, output mask).

    ``runner`` is what to call for the forward pass (the DDP wrapper when distributed).
    ``wb``: the batch's sample weights (`sample_weights`) or None. As Keras computes it, the
    weighted loss is ``sum(loss * weight) / count``, ``count`` being the number of values
    (of unmasked steps when the output has a mask), not the sum of the weights."""
    state = model.compiled
    loss = state.loss
    use_logits = (
        loss.logit_activation is not None
        and not loss.from_logits
        and getattr(model, "final_activation", None) == loss.logit_activation
    )
    with _autocast(model):
        if hasattr(model, "forward_with_mask"):
            out, out_mask = (runner or model)(xb, training=training, return_logits=use_logits, with_mask=True)
        else:
            out, out_mask = (runner or model)(xb, training=training), None
    out = out.float()  # losses in fp32 whatever the compute precision
    logits = use_logits or loss.from_logits
    if out_mask is not None or wb is not None:
        per = loss.per_sample(yb, out, logits=logits)
        if wb is not None:
            if wb.dim() > per.dim():
                raise ValueError(f"sample weights of shape {tuple(wb.shape)} do not fit the loss's per-sample "
                                 f"values {tuple(per.shape)}: per-step weights need sequence outputs")
            per = per * wb.view(tuple(wb.shape) + (1,) * (per.dim() - wb.dim()))
        if out_mask is not None and out_mask.shape == per.shape:
            m = out_mask.to(per.dtype)
            data_loss = (per * m).sum() / m.sum().clamp(min=1)
        else:
            data_loss = per.mean()
    else:
        data_loss = loss.mean(yb, out, logits=logits)
    total = data_loss
    penalty = model.regularization_loss()
    if penalty is not None:
        total = total + penalty
    if use_logits:
        out = torch.sigmoid(out) if loss.logit_activation == "sigmoid" else torch.softmax(out, -1)
    return total, out, out_mask


def _batches(n, batch_size, order=None):
    """Index batches over ``n`` samples: slices in order, or chunks of a permutation."""
    for start in range(0, n, batch_size):
        if order is None:
            yield slice(start, min(start + batch_size, n))
        else:
            yield order[start : start + batch_size]


def _rank_slice(idx, n, world, rank):
    """This rank's contiguous part of a global batch (None when it is too small to share)."""
    if world == 1:
        return idx
    if isinstance(idx, slice):
        idx = torch.arange(idx.start, idx.stop)
    if len(idx) < world:
        return None
    return torch.tensor_split(idx, world)[rank]


def validation_cut(n: int, validation_split: float) -> int:
    """How many of ``n`` samples ``fit(validation_split=...)`` trains on (the rest validate);
    ValueError when either part would be empty."""
    if not 0.0 < validation_split < 1.0:
        raise ValueError(f"validation_split must be in (0, 1), got {validation_split}")
    split = int(n * (1.0 - validation_split))
    if split == 0 or split == n:
        raise ValueError(f"validation_split={validation_split} leaves no training or no validation samples out of {n}")
    return split


def _verbosity(verbose):
    if verbose == "auto":
        return 1 if sys.stderr.isatty() else 2
    return int(verbose)


def _validation_parts(validation_data):
    """``(x, y, sample_weight or None)`` from Keras's 2- or 3-tuple ``validation_data``."""
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise ValueError("validation_data must be a tuple (x_val, y_val) or (x_val, y_val, sample_weight_val)")
    return validation_data[0], validation_data[1], (validation_data[2] if len(validation_data) == 3 else None)


def fit(model, x, y, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
        validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
        steps_per_epoch=None, **kwargs):
    if kwargs:
        raise TypeError(f"fit() got unexpected argument(s): {', '.join(sorted(kwargs))}")
    _require_compiled(model)
    keep_freed_memory()  # steps reuse freed activations instead of faulting in fresh pages
    device = model.device
    x = _to_tensor(x, device, "x")
    y = _to_tensor(y, device, "y")
    _check_lengths(x, y)
    weights = sample_weights(y, sample_weight, class_weight)
    batch_size = int(batch_size or 32)
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if validation_data is not None:
        validation_data = _validation_parts(validation_data)
    elif validation_split:
        split = validation_cut(len(x), validation_split)
        x, x_val, y, y_val = x[:split], x[split:], y[:split], y[split:]
        w_val = None
        if weights is not None:
            weights, w_val = weights[:split], weights[split:]
        validation_data = (x_val, y_val, w_val)
    _ensure_built(model, x)
    state = model.compiled
    opt = state.optimizer
    params = [p for p in model.parameters() if p.requires_grad]

    n = len(x)
    runner, world, rank = None, 1, 0
    if distributed.setup(device):
        world, rank = distributed.world_size(), distributed.rank()
        if n < world:
            raise ValueError(f"cannot shard {n} samples over {world} processes: each process needs at least one")
        distributed.check_same_config({
            "model": model.get_config(), "compile": state.get_config(), "batch_size": batch_size,
            "samples": n, "x_shape": list(x.shape[1:]), "epochs": epochs, "shuffle": bool(shuffle),
            "params": sum(p.numel() for p in params),
        })
        from torch.nn.parallel import DistributedDataParallel

        runner = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    # Every rank cuts the same global batches (world x batch_size) from one shared order.
    global_batch = batch_size * world
    steps = math.ceil(n / global_batch)
    if steps_per_epoch:
        steps = min(steps, int(steps_per_epoch))
    shuffle_seed = distributed.broadcast_int(int(torch.randint(0, 2**62, (1,)).item()))
    verbose = _verbosity(verbose) if distributed.is_main() else 0
    history = History()
    cbs = list(callbacks or []) + [history]  # last, so it records what other callbacks add (learning_rate)
    if verbose:
        cbs.append(ProgressLogger(verbose))
    cb = CallbackList(cbs, model, {"epochs": epochs, "steps": steps, "batch_size": batch_size, "samples": n,
                                   "verbose": verbose, "world_size": world})
    model.history = history
    model.stop_training = False
    scaler = None
    if getattr(state, "precision", "fp32") == "fp16" and device.type == "cuda":
        scaler = torch.amp.GradScaler("cuda")
    cb.on_train_begin()
    global_step = 0
    for epoch in range(initial_epoch, epochs):
        model.train()
        for m in state.metrics:
            m.reset()
        loss_sum, seen = 0.0, 0  # Python numbers: the loss is read back every step anyway
        order = None
        if shuffle:
            gen = torch.Generator().manual_seed(shuffle_seed + epoch)
            order = torch.randperm(n, generator=gen).to(device)
        cb.on_epoch_begin(epoch)
        for step, global_idx in enumerate(_batches(n, global_batch, order)):
            if step >= steps:
                break
            idx = _rank_slice(global_idx, n, world, rank)
            if idx is None:  # a final global batch smaller than the number of ranks: skipped by all
                break
            cb.on_train_batch_begin(step)
            xb, yb = x[idx], y[idx]
            opt.torch_optimizer.zero_grad(set_to_none=True)
            loss, pred, out_mask = _forward_loss(model, xb, yb, training=True, runner=runner,
                                                 wb=None if weights is None else weights[idx])
            loss_value = float(loss.detach())  # one sync per step: needed for the NaN check and progress
            if not math.isfinite(loss_value):
                raise TrainingError(
                    f"loss became {loss_value} at epoch {epoch + 1}, step {step + 1} (global step {global_step + 1}); "
                    f"training stopped before applying that update. Try a lower learning rate or clipnorm=1.0"
                )
            try:
                if scaler is not None:
                    scaler.scale(loss).backward()
                else:
                    loss.backward()
            except RuntimeError as exc:
                if world > 1:
                    raise TrainingError(
                        f"rank {rank}: lost contact with the other processes at epoch {epoch + 1}, step {step + 1} "
                        f"({str(exc).splitlines()[0]}); the last checkpoint is intact: restart to resume from it"
                    ) from exc
                raise
            opt.step(params, scaler=scaler)
            with torch.no_grad():
                for m in state.metrics:
                    m.update(yb, pred.detach(), out_mask)
            bs = len(yb)
            loss_sum += loss_value * bs
            seen += bs
            global_step += 1
            logs = {"loss": loss_value, "size": bs * world}
            if verbose == 1:
                logs.update({m.name: m.result() for m in state.metrics})
            cb.on_train_batch_end(step, logs)
            if model.stop_training:
                break
        # Epoch figures over all ranks' samples, so every rank's callbacks decide alike.
        totals = distributed.all_reduce_sum(torch.tensor([loss_sum, seen], dtype=torch.float64))
        logs = {"loss": float(totals[0]) / max(float(totals[1]), 1.0)}
        for m in state.metrics:
            m.sync()
        logs.update({m.name: m.result() for m in state.metrics})
        if validation_data is not None:
            x_val, y_val, w_val = validation_data
            val = evaluate(model, x_val, y_val, batch_size=batch_size, return_dict=True, sample_weight=w_val)
            logs.update({f"val_{k}": v for k, v in val.items()})
        cb.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    cb.on_train_end()
    model.eval()
    return history


def _check_steps(steps):
    """``steps`` of predict/evaluate: None (all batches) or a positive number of batches."""
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1):
        raise ValueError(f"steps must be a positive number of batches or None, got {steps!r}")
    return steps


@torch.no_grad()
def evaluate(model, x, y, batch_size=None, verbose=0, sample_weight=None, steps=None, return_dict=False,
             **kwargs):
    if kwargs:
        raise TypeError(f"evaluate() got unexpected argument(s): {', '.join(sorted(kwargs))}")
    _require_compiled(model)
    device = model.device
    x = _to_tensor(x, device, "x")
    y = _to_tensor(y, device, "y")
    _check_lengths(x, y)
    weights = sample_weights(y, sample_weight)
    if _check_steps(steps) is not None:  # Keras: only the first `steps` batches
        cut = int(steps) * int(batch_size or 32)
        x, y, weights = x[:cut], y[:cut], None if weights is None else weights[:cut]
    _ensure_built(model, x)
    state = model.compiled
    metrics = [_fresh(m) for m in state.metrics]
    was_training = model.training
    model.eval()
    total, seen = torch.zeros((), device=device), 0
    for idx in _batches(len(x), int(batch_size or 32)):
        xb, yb = x[idx], y[idx]
        loss, pred, out_mask = _forward_loss(model, xb, yb, training=False,
                                             wb=None if weights is None else weights[idx])
        total += loss * len(yb)
        seen += len(yb)
        for m in metrics:
            m.update(yb, pred, out_mask)
    model.train(was_training)
    results = {"loss": float(total) / seen}
    results.update({m.name: m.result() for m in metrics})
    if verbose:
        print(" - ".join(f"{k}: {v:.4f}" for k, v in results.items()))
    if return_dict:
        return results
    return results["loss"] if len(results) == 1 else list(results.values())


@torch.no_grad()
def predict(model, x, batch_size=None, verbose=0, steps=None, **kwargs):
    if kwargs:
        raise TypeError(f"predict() got unexpected argument(s): {', '.join(sorted(kwargs))}")
    device = model.device
    x = _to_tensor(x, device, "x")
    if _check_steps(steps) is not None:  # Keras: only the first `steps` batches
        x = x[: int(steps) * int(batch_size or 32)]
    if len(x) == 0:
        raise ValueError("x has no samples")
    was_training = model.training
    model.eval()
    outs = [model(x[idx], training=False) for idx in _batches(len(x), int(batch_size or 32))]
    model.train(was_training)
    if isinstance(outs[0], list):
        return [torch.cat(parts).cpu().numpy() for parts in zip(*outs)]
    return torch.cat(outs).cpu().numpy()


def _fresh(metric):
    """A new, empty metric of ``metric``'s kind and settings."""
    if hasattr(metric, "threshold"):
        return type(metric)(name=metric.name, threshold=metric.threshold)
    return type(metric)(name=metric.name)


def _batch_results(model, loss: float, pred, y, out_mask, return_dict: bool):
    """``train_on_batch``/``test_on_batch``'s answer, as Keras gives it: the loss alone when the
    model has no metrics, else ``[loss, *metrics]`` (or a dict), the metrics over this batch."""
    results = {"loss": loss}
    for m in model.compiled.metrics:
        fresh = _fresh(m)
        fresh.update(y, pred.detach(), out_mask)
        results[m.name] = fresh.result()
    if return_dict:
        return results
    return loss if len(results) == 1 else list(results.values())


def train_on_batch(model, x, y, sample_weight=None, class_weight=None, return_dict=False):
    _require_compiled(model)
    device = model.device
    x, y = _to_tensor(x, device, "x"), _to_tensor(y, device, "y")
    _check_lengths(x, y)
    weights = sample_weights(y, sample_weight, class_weight)
    _ensure_built(model, x)
    opt = model.compiled.optimizer
    model.train()
    opt.torch_optimizer.zero_grad(set_to_none=True)
    loss, pred, out_mask = _forward_loss(model, x, y, training=True, wb=weights)
    if not math.isfinite(float(loss.detach())):
        raise TrainingError(f"loss became {float(loss)} in train_on_batch; the update was not applied")
    loss.backward()
    opt.step([p for p in model.parameters() if p.requires_grad])
    model.eval()
    return _batch_results(model, float(loss.detach()), pred, y, out_mask, return_dict)


@torch.no_grad()
def test_on_batch(model, x, y, sample_weight=None, return_dict=False):
    _require_compiled(model)
    device = model.device
    x, y = _to_tensor(x, device, "x"), _to_tensor(y, device, "y")
    _check_lengths(x, y)
    weights = sample_weights(y, sample_weight)
    _ensure_built(model, x)
    was_training = model.training
    model.eval()
    loss, pred, out_mask = _forward_loss(model, x, y, training=False, wb=weights)
    model.train(was_training)
    return _batch_results(model, float(loss), pred, y, out_mask, return_dict)
