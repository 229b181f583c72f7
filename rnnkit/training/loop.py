"""The fit / evaluate / predict loops behind ``Model``: plain, readable PyTorch.

Data flows one way: data (arrays, generators, datasets: `data.py`) -> batches of tensors on
the model's device -> forward (logits where a loss can use them) -> per-output losses x
loss weights + weight penalties -> backward -> clip -> optimizer step -> streaming metrics ->
callbacks. A model that overrides ``train_step``/``test_step``/``predict_step`` (or
``compute_loss``/``compute_metrics``) gets them called instead, as Keras 3 does (`Trainer`).
"""
from __future__ import annotations

import contextlib
import math
import sys
import warnings

import numpy as np
import torch

from .. import distributed
from ..allocator import keep_freed_memory
from ..layers.base import as_tensor
from .callbacks import CallbackList, History
from . import data as data_mod
from .compile import build_training_state, weighted_mask
from .outputs import flat_outputs, flat_targets, flat_weights, output_activations, output_spec
from .outputs import names_of as _names_of
from .progress import ProgressLogger


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss became NaN)."""


def _require_compiled(model):
    if model.compiled is None:
        raise RuntimeError(f"model {model.name!r} must be compiled before training or evaluation: call model.compile(...)")


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


# Keras-on-torch train_step code reads a weight's tensor as ``v.value`` (a KerasVariable's
# torch Parameter); rnnkit's weights are the Parameters themselves, so ``value`` is the
# Parameter. (Belongs with the Layer contract in layers/base.py; see the lead's notes.)
if not hasattr(torch.nn.Parameter, "value"):
    torch.nn.Parameter.value = property(lambda self: self, doc="The parameter itself (Keras's Variable.value).")


def _overrides(model, name: str) -> bool:
    """Whether the model's class defines its own ``name`` (train_step, ...) over `Trainer`'s."""
    own = getattr(type(model), name, None)
    return own is not None and own is not getattr(Trainer, name)


# --------------------------------------------------------------------- one batch's losses
class _Plan:
    """What every batch of one fit/evaluate call reads: the outputs, their losses and whether a
    loss takes the output's logits (the final softmax/sigmoid left out: exact and stable)."""

    def __init__(self, model):
        state = model.compiled
        self.model, self.state = model, state
        self.specs = state.outputs
        self.names = [s.name for s in self.specs]
        self.k = len(self.specs)
        acts = output_activations(model, self.k)
        self.logits = [s.loss is not None and s.loss.logit_activation is not None and not s.loss.from_logits
                       and acts[i] == s.loss.logit_activation for i, s in enumerate(self.specs)]
        self.activations = [acts[i] if self.logits[i] else None for i in range(self.k)]
        self.from_logits = [bool(s.loss is not None and s.loss.from_logits) for s in self.specs]
        self.with_mask = hasattr(model, "forward_with_mask")
        self.sequential = _is_sequential(model)
        self.trackers = [s.tracker for s in self.specs if s.tracker is not None]
        self.metrics = [(i, w, m) for i, s in enumerate(self.specs)
                        for w, group in ((False, s.metrics), (True, s.weighted_metrics)) for m in group]

    def forward(self, xb, training, runner=None):
        """``(flat outputs, flat masks)``, logits where `logits` asks for them."""
        model = self.model
        with _autocast(model):
            if self.sequential:  # through __call__ (and the DDP wrapper), as Sequential always ran
                out, masks = (runner or model)(xb, training=training, return_logits=self.logits[0], with_mask=True)
                return [out], [masks]
            if self.with_mask:
                out, masks = model.forward_with_mask(
                    xb, training=training, return_logits=self.logits if any(self.logits) else False)
            else:
                out, masks = (runner or model)(xb, training=training), None
        flat = flat_outputs(out, self.names)
        if len(flat) != self.k:
            raise ValueError(f"the model returned {len(flat)} output(s) but was compiled for {self.k} {self.names}")
        flat_masks = [None] * self.k if masks is None else (
            [masks] if self.k == 1 and not isinstance(masks, (list, tuple, dict)) else flat_outputs(masks, self.names))
        return flat, flat_masks

    def losses(self, xb, ys, ws, training, runner=None):
        """Forward a batch; ``(total loss incl. penalties, per-output losses, predictions, masks)``.

        ``ws``: per-output sample weights (or None). As Keras computes it, a weighted loss is
        ``sum(loss * weight) / count``, ``count`` being the number of values (of unmasked steps
        when the output has a mask), not the sum of the weights."""
        outs, masks = self.forward(xb, training, runner)
        total, values, preds = None, [], []
        for i, spec in enumerate(self.specs):
            out = outs[i].float()  # losses in fp32 whatever the compute precision
            value = None
            if spec.loss is not None:
                value = _output_loss(spec.loss, ys[i], out, masks[i], ws[i], self.logits[i] or self.from_logits[i])
                weighted = value if spec.weight is None else value * spec.weight
                total = weighted if total is None else total + weighted
            values.append(value)
            act = self.activations[i]
            preds.append(out if act is None else (torch.sigmoid(out) if act == "sigmoid" else torch.softmax(out, -1)))
        penalty = self.model.regularization_loss()
        if penalty is not None:
            total = total + penalty
        return total, values, preds, masks

    def update_metrics(self, ys, preds, masks, ws) -> None:
        with torch.no_grad():
            for i, weighted, m in self.metrics:
                mask = masks[i]
                if weighted and ws[i] is not None:
                    mask = weighted_mask(ws[i], mask)
                m.update(ys[i], preds[i].detach(), mask)

    def update_trackers(self, values) -> None:
        # Keras 3 averages each output's loss over the batches, each batch counting once
        # (its "loss" is a mean over samples); the fixtures hold that.
        for spec, value in zip(self.specs, values):
            if spec.tracker is not None:
                spec.tracker.update_state(value.detach())

    def reset(self) -> None:
        for spec in self.specs:
            if spec.tracker is not None:
                spec.tracker.reset_state()
        for _, _, m in self.metrics:
            m.reset()

    def results(self) -> dict:
        logs = {t.name: t.result() for t in self.trackers}
        logs.update(self.state.compile_metrics.result())
        return logs


def _output_loss(loss, y, out, mask, w, logits):
    if mask is None and w is None:
        return loss.mean(y, out, logits=logits)
    per = loss.per_sample(y, out, logits=logits)
    if w is not None:
        if w.dim() > per.dim():
            raise ValueError(f"sample weights of shape {tuple(w.shape)} do not fit the loss's per-sample "
                             f"values {tuple(per.shape)}: per-step weights need sequence outputs")
        per = per * w.view(tuple(w.shape) + (1,) * (per.dim() - w.dim()))
    if mask is not None and mask.shape == per.shape:
        m = mask.to(per.dtype)
        return (per * m).sum() / m.sum().clamp(min=1)
    return per.mean()


def _batch_weights(plan, ys, w, class_weight=None, check=True):
    """Per-output float sample weights for a batch (checked when ``check``: stream batches)."""
    ws = flat_weights(w, plan.names, plan.k)
    if class_weight is not None:
        if plan.k != 1:
            raise ValueError("class_weight is only supported for models with a single output (Keras's rule); "
                             "use sample_weight per output")
        return [sample_weights(ys[0], ws[0], class_weight)]
    if not check:
        return ws
    return [None if wi is None else sample_weights(yi, wi) for yi, wi in zip(ys, ws)]


# ---------------------------------------------------------------- data in, model ready
def _cast_ints(model) -> bool:
    """Whether boolean/integer inputs become float32: a Sequential whose first layer is not an
    Embedding (Keras's float32 Input casts them; token ids stay integers)."""
    from ..layers.core import Embedding  # noqa: PLC0415

    layers = getattr(model, "layers", None) if _is_sequential(model) else None
    return bool(layers) and not isinstance(layers[0], Embedding)


def _is_sequential(model) -> bool:
    # Sequential sets the flag (models import this module, not the other way round).
    return bool(getattr(model, "_sequential", False))


def _check_inputs(model, x) -> None:
    """A dict of inputs must name every model input (``model.input_names``)."""
    names = getattr(model, "input_names", None)
    if isinstance(x, dict) and names:
        missing = [n for n in names if n not in x]
        if missing:
            raise ValueError(f"x has no entry for input {missing[0]!r}; the model's inputs are {list(names)}, "
                             f"x has keys {sorted(x)}")
    if isinstance(x, (list, tuple)) and _is_sequential(model):
        raise ValueError(f"x: a Sequential model takes a single input array, got a list of {len(x)} arrays")


def _adapt(model, x, y=None, sample_weight=None, batch_size=None, shuffle=False, what="x"):
    adapter = data_mod.adapt(x, y, sample_weight, batch_size=batch_size, shuffle=shuffle, device=model.device,
                             cast_ints=_cast_ints(model), what=what)
    if isinstance(adapter, data_mod.ArrayData):
        _check_inputs(model, adapter.x)
    return adapter


def _ensure_ready(model, xb) -> None:
    """Build the model (from a first batch) and its training state (optimizer, per-output losses)."""
    if not model.built:
        if _is_sequential(model) and isinstance(xb, torch.Tensor):
            model.build_for((None,) + tuple(xb.shape[1:]))
        elif hasattr(model, "build_from_data"):
            model.build_from_data(xb)  # a call that carries no state and updates no statistics
        else:
            with torch.no_grad():
                model(xb, training=False)
    state = model.compiled
    if not state.outputs:
        names, _ = output_spec(model)
        if names is None:  # a subclassed model: the outputs' structure shows in a call
            was = model.training
            model.eval()
            with torch.no_grad():
                names = _names_of(model(xb, training=False))
            model.train(was)
        build_training_state(model, names)
    else:
        build_training_state(model)


def _first_batch(adapter):
    """The first batch of a stream without losing it: ``(batch, iterator with it put back)``."""
    it = adapter.iterator()
    try:
        first = next(it)
    except StopIteration:
        raise ValueError(f"the {adapter.kind} yielded no batches") from None

    def chained():
        yield first
        yield from it

    return first, chained()


class _Feed:
    """Batches epoch by epoch, as Keras's EpochIterator gives them. Arrays restart each epoch
    (a fresh order; at most ``steps`` batches). With ``steps`` (steps_per_epoch / validation_steps)
    a stream's iterator carries on across epochs until its batches run out; without, an epoch is
    the whole stream. A generator is never restarted: once used up it yields nothing."""

    def __init__(self, adapter, steps=None, world=1, rank=0):
        self.adapter, self.steps, self.world, self.rank = adapter, steps, world, rank
        self.iterator = None  # a stream's current iterator
        self.seen = 0
        self.ran_out = False

    def prime(self, iterator):
        self.iterator = iterator

    def epoch(self, seed=None):
        a = self.adapter
        a.on_epoch_begin()
        if isinstance(a, data_mod.ArrayData):
            limit = self.steps if self.steps is not None else math.inf
            if self.world == 1:
                for step, batch in enumerate(a.iterator(seed)):
                    if step >= limit:
                        break
                    yield step, batch
            else:
                yield from _sharded(a, seed, limit, self.world, self.rank)
        elif self.steps:
            if self.iterator is None:
                self.iterator, self.seen = a.iterator(), 0
            for step in range(self.steps):
                if a.num_batches and self.seen >= a.num_batches:
                    break
                try:
                    batch = next(self.iterator)
                except StopIteration:
                    self.iterator, self.ran_out = None, True
                    break
                self.seen += 1
                yield step, batch
            if a.num_batches and self.seen >= a.num_batches:
                self.iterator, self.seen = None, 0
        else:
            it, self.iterator = (self.iterator or a.iterator()), None
            yield from enumerate(it)
        a.on_epoch_end()


def _sharded(a, seed, limit, world, rank):
    """This rank's part of each global batch (world x batch_size) cut from one shared order."""
    n = a.n
    order = None
    if a.shuffle:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(data_mod.leaves(a.x)[0].device)
    gb = a.batch_size * world
    for step, start in enumerate(range(0, n, gb)):
        if step >= limit:
            break
        idx = slice(start, min(start + gb, n)) if order is None else order[start : start + gb]
        idx = _rank_slice(idx, n, world, rank)
        if idx is None:  # a final global batch smaller than the number of ranks: skipped by all
            break
        yield step, (data_mod.take(a.x, idx), data_mod.take(a.y, idx), data_mod.take(a.sample_weight, idx))


def _rank_slice(idx, n, world, rank):
    """This rank's contiguous part of a global batch (None when it is too small to share)."""
    if isinstance(idx, slice):
        idx = torch.arange(idx.start, idx.stop)
    if len(idx) < world:
        return None
    return torch.tensor_split(idx, world)[rank]


def _pack(x, y, w):
    """A batch as Keras hands it to train_step/test_step: x, (x,), (x, y) or (x, y, sample_weight)."""
    if y is None:
        return (x,) if isinstance(x, (list, tuple)) else x
    return (x, y) if w is None else (x, y, w)


def _pythonify(logs) -> dict:
    """A step's logs as floats, nested dicts (``compile_metrics``) flattened, as Keras does."""
    out = {}
    for k, v in (logs or {}).items():
        if isinstance(v, dict):
            out.update(_pythonify(v))
        else:
            out[k] = float(v.detach()) if isinstance(v, torch.Tensor) else float(v)
    return out


def _prepare_weights(model, adapter, class_weight):
    """Array data: sample weights (or class_weight's) checked once over all samples, per output."""
    plan = _Plan(model)
    ys = flat_targets(adapter.y, plan.names, plan.k)
    ws = _batch_weights(plan, ys, adapter.sample_weight, class_weight)
    adapter.sample_weight = None if all(w is None for w in ws) else (ws[0] if plan.k == 1 else ws)
    return plan


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


def _check_count(value, what: str) -> int:
    """``epochs`` / ``initial_epoch``: a whole number >= 0 (0 epochs trains nothing, as Keras)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{what} must be a whole number >= 0, got {value!r}")
    return int(value)


def _check_verbose(verbose) -> None:
    """Keras's ``verbose``: ``"auto"``, 0 (silent), 1 (progress bar) or 2 (one line per epoch)."""
    if not (verbose == "auto" or (isinstance(verbose, (int, np.integer)) and 0 <= verbose <= 2)):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2, got {verbose!r}")


def _check_steps(steps, what="steps"):
    """``steps``-like arguments: None (all batches) or a positive number of batches."""
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1):
        raise ValueError(f"{what} must be a positive number of batches or None, got {steps!r}")
    return None if steps is None else int(steps)


def _validation_adapter(model, validation_data, batch_size):
    """The adapter for ``validation_data``: ``(x_val, y_val)``, ``(x_val, y_val, sample_weight_val)``
    or a generator / PyDataset / DataLoader of such batches."""
    if data_mod.is_stream(validation_data):
        return _adapt(model, validation_data, batch_size=batch_size, what="validation_data")
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise ValueError("validation_data must be a tuple (x_val, y_val) or (x_val, y_val, sample_weight_val), "
                         "or a generator / PyDataset / DataLoader of batches")
    vx, vy, vw = data_mod.unpack(tuple(validation_data), "validation_data")
    return _adapt(model, vx, vy, vw, batch_size=batch_size, what="validation_data x")


def _should_eval(epoch: int, freq) -> bool:
    if isinstance(freq, int):
        return (epoch + 1) % freq == 0
    return epoch + 1 in freq


def _check_freq(freq):
    if isinstance(freq, bool) or not (isinstance(freq, int) and freq >= 1 or isinstance(freq, (list, tuple, set))):
        raise ValueError(f"validation_freq must be a positive whole number or a list of epochs, got {freq!r}")
    return freq


_RAN_OUT = ("Your input ran out of data; interrupting training. Make sure that your dataset or generator can "
            "generate at least `steps_per_epoch * epochs` batches.")


def _batch_size_of(xb) -> int:
    return len(data_mod.leaves(xb)[0])


def _custom_training(model) -> bool:
    return any(_overrides(model, n) for n in ("train_step", "compute_loss", "compute_metrics"))


def _custom_testing(model) -> bool:
    return any(_overrides(model, n) for n in ("test_step", "compute_loss", "compute_metrics"))


def _stream_class_weight(adapter, class_weight):
    if class_weight is not None and adapter.kind != "PyDataset" and not isinstance(adapter, data_mod.ArrayData):
        raise ValueError(f"class_weight is not supported for {adapter.kind} inputs (Keras's rule): give the "
                         f"weights as the batches' third item")


def fit(model, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
        validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
        steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1, **kwargs):
    if kwargs:
        raise TypeError(f"fit() got unexpected argument(s): {', '.join(sorted(kwargs))}")
    _require_compiled(model)
    keep_freed_memory()  # steps reuse freed activations instead of faulting in fresh pages
    epochs, initial_epoch = _check_count(epochs, "epochs"), _check_count(initial_epoch, "initial_epoch")
    _check_verbose(verbose)
    steps_per_epoch = _check_steps(steps_per_epoch, "steps_per_epoch")
    validation_steps = _check_steps(validation_steps, "validation_steps")
    if validation_batch_size is not None and (isinstance(validation_batch_size, bool) or not isinstance(
            validation_batch_size, (int, np.integer)) or validation_batch_size < 1):
        raise ValueError(f"validation_batch_size must be a positive whole number or None, got {validation_batch_size!r}")
    validation_freq = _check_freq(validation_freq)
    if sample_weight is not None and class_weight is not None:
        raise ValueError("give sample_weight or class_weight, not both (Keras refuses both too)")
    device = model.device
    adapter = _adapt(model, x, y, sample_weight, batch_size=batch_size, shuffle=shuffle)
    arrays = isinstance(adapter, data_mod.ArrayData)
    _stream_class_weight(adapter, class_weight)
    if arrays and adapter.y is None:
        raise ValueError("fit() needs targets: y is missing")
    val_adapter = None
    if validation_data is not None:
        vbs = validation_batch_size if validation_batch_size is not None else (
            None if data_mod.is_stream(validation_data) else batch_size)
        val_adapter = _validation_adapter(model, validation_data, vbs)
    elif validation_split:
        if not arrays:
            raise ValueError(f"validation_split is only supported for array data, not a {adapter.kind}; "
                             f"give validation_data instead")
        adapter, val_adapter = adapter.split(validation_cut(adapter.n, validation_split))
    feed = _Feed(adapter, steps_per_epoch)
    if arrays:
        _ensure_ready(model, data_mod.take(adapter.x, slice(0, adapter.batch_size)))
        plan = _prepare_weights(model, adapter, class_weight)
        class_weight = None
    else:
        first, it = _first_batch(adapter)
        feed.prime(it)
        _ensure_ready(model, first[0])
        plan = _Plan(model)
    if val_adapter is not None and isinstance(val_adapter, data_mod.ArrayData):
        _prepare_weights(model, val_adapter, None)
    val_feed = None if val_adapter is None else _Feed(val_adapter, validation_steps)
    state = model.compiled
    opt = state.optimizer
    params = [p for p in model.parameters() if p.requires_grad]
    custom = _custom_training(model)

    runner, world, rank = None, 1, 0
    if distributed.setup(device):
        world, rank = distributed.world_size(), distributed.rank()
        if not (arrays and plan.sequential and isinstance(adapter.x, torch.Tensor) and not custom):
            raise ValueError("distributed (DDP) training supports a Sequential model on array data with the "
                             "default train_step; generators, datasets, several inputs and custom steps are not "
                             "supported under DDP")
        if adapter.n < world:
            raise ValueError(f"cannot shard {adapter.n} samples over {world} processes: each process needs at least one")
        distributed.check_same_config({
            "model": model.get_config(), "compile": state.get_config(), "batch_size": adapter.batch_size,
            "samples": adapter.n, "x_shape": list(adapter.x.shape[1:]), "epochs": epochs, "shuffle": bool(shuffle),
            "params": sum(p.numel() for p in params),
        })
        from torch.nn.parallel import DistributedDataParallel

        runner = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        feed.world, feed.rank = world, rank
    if arrays:  # every rank cuts the same global batches (world x batch_size) from one shared order
        steps = math.ceil(adapter.n / (adapter.batch_size * world))
        if steps_per_epoch:
            steps = min(steps, steps_per_epoch)
    else:
        steps = steps_per_epoch or adapter.num_batches
    shuffle_seed = distributed.broadcast_int(int(torch.randint(0, 2**62, (1,)).item()))
    verbose = _verbosity(verbose) if distributed.is_main() else 0
    history = History()
    cbs = list(callbacks or []) + [history]  # last, so it records what other callbacks add (learning_rate)
    if verbose:
        cbs.append(ProgressLogger(verbose))
    cb = CallbackList(cbs, model, {"epochs": epochs, "steps": steps, "batch_size": getattr(adapter, "batch_size", None),
                                   "samples": getattr(adapter, "n", None), "verbose": verbose, "world_size": world})
    model.history = history
    model.stop_training = False
    scaler = None
    if getattr(state, "precision", "fp32") == "fp16" and device.type == "cuda":
        scaler = torch.amp.GradScaler("cuda")
    step_args = (plan, opt, params, runner, scaler, world, rank, class_weight, not arrays)
    cb.on_train_begin()
    global_step = 0
    for epoch in range(initial_epoch, epochs):
        model.train()
        _reset_metrics(model, plan)
        loss_sum, seen, count, logs = 0.0, 0, 0, {}  # Python numbers: the loss is read back every step anyway
        cb.on_epoch_begin(epoch)
        for step, (xb, yb, wb) in feed.epoch(shuffle_seed + epoch):
            cb.on_train_batch_begin(step)
            if custom:
                logs = _pythonify(model.train_step(_pack(xb, yb, wb)))
                batch_logs = {**logs, "size": _batch_size_of(xb)}
            else:
                where = f"at epoch {epoch + 1}, step {step + 1} (global step {global_step + 1})"
                loss_value, bs = _train_step(step_args, xb, yb, wb, where)
                loss_sum += loss_value * bs
                seen += bs
                batch_logs = {"loss": loss_value, "size": bs * world}
                if verbose == 1:
                    batch_logs.update(plan.results())
            count += 1
            global_step += 1
            cb.on_train_batch_end(step, batch_logs)
            if model.stop_training:
                break
        if count == 0:  # a used-up generator (or stream): nothing to train on any more
            warnings.warn(_RAN_OUT, stacklevel=2)
            break
        if not custom:
            # Epoch figures over all ranks' samples, so every rank's callbacks decide alike.
            totals = distributed.all_reduce_sum(torch.tensor([loss_sum, seen], dtype=torch.float64))
            logs = {"loss": float(totals[0]) / max(float(totals[1]), 1.0)}
            for _, _, m in plan.metrics:
                m.sync()
            logs.update(plan.results())
        if feed.ran_out:
            warnings.warn(_RAN_OUT, stacklevel=2)
            model.stop_training = True
        if val_feed is not None and _should_eval(epoch, validation_freq):
            val = _evaluate_feed(model, val_feed, _Plan(model))
            logs.update({f"val_{k}": v for k, v in val.items()})
        cb.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    cb.on_train_end()
    model.eval()
    return history


def _reset_metrics(model, plan) -> None:
    plan.state.loss_tracker.reset_state()
    plan.reset()


def _train_step(args, xb, yb, wb, where):
    """rnnkit's own train step: forward (logits where they serve), loss, backward, clip, update,
    metrics. Returns ``(loss, batch size)``."""
    plan, opt, params, runner, scaler, world, rank, class_weight, check = args
    if yb is None:
        raise ValueError("a training batch has no targets: batches must be (x, y) or (x, y, sample_weight)")
    ys = flat_targets(yb, plan.names, plan.k)
    ws = _batch_weights(plan, ys, wb, class_weight, check) if (check or class_weight is not None) else (
        [wb] if plan.k == 1 else flat_weights(wb, plan.names, plan.k))
    opt.torch_optimizer.zero_grad(set_to_none=True)
    loss, values, preds, masks = plan.losses(xb, ys, ws, training=True, runner=runner)
    loss_value = float(loss.detach())  # one sync per step: needed for the NaN check and progress
    if not math.isfinite(loss_value):
        raise TrainingError(f"loss became {loss_value} {where}; training stopped before applying that update. "
                            f"Try a lower learning rate or clipnorm=1.0")
    try:
        if scaler is not None:
            scaler.scale(loss).backward()
        else:
            loss.backward()
    except RuntimeError as exc:
        if world > 1:
            raise TrainingError(
                f"rank {rank}: lost contact with the other processes {where} ({str(exc).splitlines()[0]}); "
                f"the last checkpoint is intact: restart to resume from it") from exc
        raise
    opt.step(params, scaler=scaler)
    if plan.trackers:
        plan.update_trackers(values)
    plan.update_metrics(ys, preds, masks, ws)
    return loss_value, _batch_size_of(xb)


def _evaluate_feed(model, feed, plan) -> dict:
    """Loss and metrics over one pass of ``feed`` in inference mode (the model's own
    ``test_step`` when it has one)."""
    was_training = model.training
    model.eval()
    _reset_metrics(model, plan)
    custom = _custom_testing(model)
    check = not isinstance(feed.adapter, data_mod.ArrayData)
    total, seen, count, logs = None, 0, 0, {}
    with torch.no_grad():
        for _, (xb, yb, wb) in feed.epoch():
            count += 1
            if custom:
                logs = _pythonify(model.test_step(_pack(xb, yb, wb)))
                continue
            if yb is None:
                raise ValueError("an evaluation batch has no targets: batches must be (x, y) or (x, y, sample_weight)")
            ys = flat_targets(yb, plan.names, plan.k)
            ws = _batch_weights(plan, ys, wb, None, check)
            loss, values, preds, masks = plan.losses(xb, ys, ws, training=False)
            bs = _batch_size_of(xb)
            total = loss * bs if total is None else total + loss * bs
            seen += bs
            if plan.trackers:
                plan.update_trackers(values)
            plan.update_metrics(ys, preds, masks, ws)
    model.train(was_training)
    if count == 0:
        raise ValueError(f"the {feed.adapter.kind} yielded no batches to evaluate")
    if custom:
        return logs
    results = {"loss": float(total) / seen}
    results.update(plan.results())
    return results


def _ordered(model, results: dict) -> list:
    """``results`` as Keras's evaluate lists them: the loss trackers in ``model.metrics`` order,
    then the compiled metrics (in compile order for one output, by name for several)."""
    trackers = [m.name for m in model.metrics if m.name != "compile_metrics"]
    first = [k for k in trackers if k in results]
    rest = [k for k in results if k not in first]
    if len(model.compiled.outputs) > 1:
        rest = sorted(rest)
    return [results[k] for k in first + rest]


def _answer(model, results: dict, return_dict: bool):
    if return_dict:
        return results
    values = _ordered(model, results)
    return values[0] if len(values) == 1 else values


def evaluate(model, x=None, y=None, batch_size=None, verbose=0, sample_weight=None, steps=None, return_dict=False,
             **kwargs):
    if kwargs:
        raise TypeError(f"evaluate() got unexpected argument(s): {', '.join(sorted(kwargs))}")
    _require_compiled(model)
    _check_verbose(verbose)
    steps = _check_steps(steps)  # Keras: only the first `steps` batches
    adapter = _adapt(model, x, y, sample_weight, batch_size=batch_size)
    if isinstance(adapter, data_mod.ArrayData):
        if adapter.y is None:
            raise ValueError("evaluate() needs targets: y is missing")
        _ensure_ready(model, data_mod.take(adapter.x, slice(0, adapter.batch_size)))
        plan = _prepare_weights(model, adapter, None)
        feed = _Feed(adapter, steps)
    else:
        first, it = _first_batch(adapter)
        _ensure_ready(model, first[0])
        plan = _Plan(model)
        feed = _Feed(adapter, steps)
        feed.prime(it)
    results = _evaluate_feed(model, feed, plan)
    if verbose:
        print(" - ".join(f"{k}: {v:.4f}" for k, v in results.items()))
    return _answer(model, results, return_dict)


def _concat(parts):
    """Batches of outputs (tensors, lists or dicts of them) joined into NumPy arrays."""
    first = parts[0]
    if isinstance(first, dict):
        return {k: _concat([p[k] for p in parts]) for k in first}
    if isinstance(first, (list, tuple)):
        return [_concat([p[i] for p in parts]) for i in range(len(first))]
    return torch.cat([torch.as_tensor(p) for p in parts]).detach().cpu().numpy()


@torch.no_grad()
def predict(model, x, batch_size=None, verbose=0, steps=None, **kwargs):
    if kwargs:
        raise TypeError(f"predict() got unexpected argument(s): {', '.join(sorted(kwargs))}")
    _check_verbose(verbose)
    steps = _check_steps(steps)  # Keras: only the first `steps` batches
    adapter = _adapt(model, x, batch_size=batch_size)
    custom = _overrides(model, "predict_step")
    was_training = model.training
    model.eval()
    outs = []
    for _, (xb, _, _) in _Feed(adapter, steps).epoch():
        outs.append(model.predict_step(_pack(xb, None, None)) if custom else model(xb, training=False))
    model.train(was_training)
    if not outs:
        raise ValueError(f"the {adapter.kind} yielded no batches to predict")
    return _concat(outs)


def _one_batch(model, x, y, sample_weight):
    """``(x, y, sample_weight)`` of train_on_batch/test_on_batch as tensors, the model ready."""
    device = model.device
    xb = data_mod.to_tensors(x, device, "x", _cast_ints(model))
    yb = data_mod.to_tensors(y, device, "y")
    wb = data_mod.to_tensors(sample_weight, device, "sample_weight")
    data_mod.num_samples(xb, yb, wb)
    _check_inputs(model, xb)
    _ensure_ready(model, xb)
    return xb, yb, wb


def train_on_batch(model, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
    _require_compiled(model)
    xb, yb, wb = _one_batch(model, x, y, sample_weight)
    plan = _Plan(model)
    model.train()
    _reset_metrics(model, plan)
    if _custom_training(model):
        results = _pythonify(model.train_step(_pack(xb, yb, wb)))
    else:
        args = (plan, model.compiled.optimizer, [p for p in model.parameters() if p.requires_grad], None, None,
                1, 0, class_weight, True)
        loss, _ = _train_step(args, xb, yb, wb, "in train_on_batch")
        results = {"loss": loss, **plan.results()}
    model.eval()
    return _answer(model, results, return_dict)


def test_on_batch(model, x, y=None, sample_weight=None, return_dict=False):
    _require_compiled(model)
    xb, yb, wb = _one_batch(model, x, y, sample_weight)
    adapter = data_mod.ArrayData(xb, yb, wb, _batch_size_of(xb), False)
    results = _evaluate_feed(model, _Feed(adapter), _Plan(model))
    return _answer(model, results, return_dict)


# ----------------------------------------------------------------- Keras 3's hooks
class Trainer:
    """Keras 3's trainer hooks on rnnkit models (a base of ``Model``).

    ``fit``/``evaluate``/``predict`` call ``train_step(data)``/``test_step(data)``/
    ``predict_step(data)`` when a model's class overrides them (or ``compute_loss``/
    ``compute_metrics``), ``data`` being ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``
    as Keras packs it; the steps return a dict of logs. The defaults below are Keras's (PyTorch
    backend) and work with what a custom step reads: ``self.compute_loss``, ``self.metrics``,
    ``self.optimizer.apply(gradients, weights)``, ``v.value.grad``. Without overrides fit runs
    rnnkit's own step, which also hands the losses logits where it can.
    """

    # A stack of layers (`Sequential`): one input array, fed through ``__call__`` with
    # ``return_logits``/``with_mask``, built from the first batch's shape.
    _sequential = False

    def train_step(self, data):
        x, y, sample_weight = data_mod.unpack(data)
        y_pred = self(x, training=True)
        self.zero_grad()
        loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
        self.compiled.loss_tracker.update_state(loss.detach(), sample_weight=_batch_size_of(x))
        trainable_weights = list(self.trainable_weights)
        if trainable_weights:
            loss.backward()
            gradients = [v.value.grad for v in trainable_weights]
            with torch.no_grad():
                self.optimizer.apply(gradients, trainable_weights)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def test_step(self, data):
        x, y, sample_weight = data_mod.unpack(data)
        y_pred = self(x, training=False)
        loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False)
        self.compiled.loss_tracker.update_state(loss.detach(), sample_weight=_batch_size_of(x))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def predict_step(self, data):
        x, _, _ = data_mod.unpack(data)
        return self(x, training=False)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled losses of ``y_pred`` (the model's outputs) against ``y``, times the loss
        weights, plus the weight penalties; updates the per-output loss trackers."""
        _require_compiled(self)
        plan = _Plan(self)
        preds = flat_outputs(y_pred, plan.names)
        ys = flat_targets(y, plan.names, plan.k)
        ws = _batch_weights(plan, ys, sample_weight)
        total = None
        for i, spec in enumerate(plan.specs):
            if spec.loss is None:
                continue
            value = _output_loss(spec.loss, ys[i], preds[i].float(), None, ws[i], spec.loss.from_logits)
            if spec.tracker is not None:
                spec.tracker.update_state(value.detach())
            weighted = value if spec.weight is None else value * spec.weight
            total = weighted if total is None else total + weighted
        penalty = self.regularization_loss()
        return total if penalty is None else total + penalty

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Update the compiled metrics with this batch; returns `get_metrics_result`."""
        self.compiled.compile_metrics.update_state(y, y_pred, sample_weight)
        return self.get_metrics_result()

    def get_metrics_result(self) -> dict:
        out = {}
        for m in self.metrics:
            r = m.result()
            out.update(r) if isinstance(r, dict) else out.__setitem__(m.name, r)
        return out

    @property
    def metrics(self) -> list:
        """Keras's order: the loss tracker, the compiled metrics, each output's loss tracker."""
        state = getattr(self, "compiled", None)
        if state is None:
            return []
        out = [state.loss_tracker]
        if any(s.metrics or s.weighted_metrics for s in state.outputs):
            out.append(state.compile_metrics)
        out += [s.tracker for s in state.outputs if s.tracker is not None]
        return out

    @property
    def metrics_names(self) -> list[str]:
        return [m.name for m in self.metrics]

    def reset_metrics(self) -> None:
        for m in self.metrics:
            m.reset_state()

    @property
    def loss(self):
        """The ``loss`` given to compile (None before)."""
        state = getattr(self, "compiled", None)
        return None if state is None else state.loss_spec

    @property
    def compiled_metrics(self):
        state = getattr(self, "compiled", None)
        return None if state is None else state.compile_metrics

    def predict_classes(self, x, batch_size=32, verbose=0):
        """Class predictions (tf.keras's Sequential.predict_classes, removed in 2.6): the arg-max for
        several units, ``> 0.5`` for one sigmoid unit."""
        warnings.warn("`model.predict_classes()` is deprecated (removed in tf.keras 2.6); use "
                      "np.argmax(model.predict(x), axis=-1) or (model.predict(x) > 0.5).astype('int32')",
                      DeprecationWarning, stacklevel=2)
        proba = self.predict(x, batch_size=batch_size, verbose=verbose)
        if proba.shape[-1] > 1:
            return proba.argmax(axis=-1)
        return (proba > 0.5).astype("int32")
