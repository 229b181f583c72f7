"""Keras 3 side of benchmarks/seed_models.py: trains the seed models on request, reports step times.

Runs in a separate Python that has Keras 3 (and TensorFlow, or torch for
``KERAS_BACKEND=torch``); the project itself never imports Keras. The driver
starts it with ``KERAS_BACKEND`` and ``BENCH_THREADS`` (0 = the backend's
default; n = TensorFlow intra-op threads, or ``torch.set_num_threads(n)``) and
talks JSON lines over stdin/stdout:

    {"op": "build", "model": "bilstm", "batch": 32}  -> {"ok": true, "jit_compile": ...}
    {"op": "run", "model": "bilstm", "batch": 32, "steps": 40}
        -> {"ok": true, "wall": seconds/step, "cpu": process CPU seconds/step}

A run is one ``fit`` epoch of ``steps`` batches of synthetic data; the time is
taken from the end of the first batch to the end of the last, so ``fit``'s
set-up is not counted (the PyTorch candidates have none either).
"""
from __future__ import annotations

import json
import os
import sys
import time

THREADS = int(os.environ.get("BENCH_THREADS", "0"))
BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
if BACKEND == "tensorflow":
    import tensorflow as tf

    if THREADS:
        tf.config.threading.set_intra_op_parallelism_threads(THREADS)
elif BACKEND == "torch":
    import torch

    if THREADS:
        torch.set_num_threads(THREADS)

import keras  # noqa: E402
import numpy as np  # noqa: E402

VOCAB, LENGTH, CLASSES = 120, 33, 8


def build(name: str):
    layers = keras.layers
    if name == "conv":
        body = [layers.Conv1D(56, 5, activation="relu"), layers.MaxPooling1D(pool_size=4),
                layers.Bidirectional(layers.LSTM(12))]
    else:
        cell = layers.GRU if name == "bigru" else layers.LSTM
        body = [layers.Bidirectional(cell(56, return_sequences=True)), layers.Bidirectional(cell(12))]
    model = keras.Sequential([keras.Input((LENGTH,), dtype="int32"), layers.Embedding(VOCAB, 42), *body,
                              layers.Dense(CLASSES)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


class _Clock(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 0:
            self.first = (time.perf_counter(), time.process_time())
        self.last = (time.perf_counter(), time.process_time())


def main() -> None:
    rng = np.random.default_rng(0)
    models, data = {}, {}
    for line in sys.stdin:
        cmd = json.loads(line)
        key = (cmd["model"], cmd["batch"])
        try:
            if cmd["op"] == "build":
                models[key] = build(cmd["model"])
                data[key] = (rng.integers(0, VOCAB, (cmd["batch"] * 4, LENGTH)).astype("int32"),
                             rng.integers(0, CLASSES, (cmd["batch"] * 4,)).astype("int32"))
                models[key].fit(*data[key], batch_size=cmd["batch"], epochs=2, verbose=0, shuffle=False)
                reply = {"ok": True, "jit_compile": str(getattr(models[key], "jit_compile", None))}
            else:
                steps, batch = max(2, cmd["steps"]), cmd["batch"]
                x, y = data[key]
                reps = -(-steps * batch // len(x))
                x, y = np.concatenate([x] * reps)[: steps * batch], np.concatenate([y] * reps)[: steps * batch]
                clock = _Clock()
                models[key].fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False, callbacks=[clock])
                n = steps - 1
                reply = {"ok": True, "wall": (clock.last[0] - clock.first[0]) / n,
                         "cpu": (clock.last[1] - clock.first[1]) / n}
        except Exception as exc:  # reported to the driver, which prints it and drops this candidate
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
