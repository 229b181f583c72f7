"""``rnnkit demo``: the project's main job.

Part 1, the seed notes' walkthrough run for real: builds the notes' two models
with the Keras-compatible API, prints their summaries (the same tables as
tf.keras), trains the BiLSTM model for a few seconds on a synthetic task.
Part 2: trains a character LSTM on the built-in ``python-stdlib`` corpus for
about two minutes (progress: loss, bpc, chars/s, ETA) and prints a generated
sample. Works offline.
"""
from __future__ import annotations

import time

import numpy as np

from .checks import non_negative_float, positive_float, seed_int


def register(sub) -> None:
    p = sub.add_parser("demo", help="the seed walkthrough: build the notes' models, print summaries, train one briefly")
    p.add_argument("--seconds", type=positive_float, default=8.0, help="training budget for the BiLSTM model (default 8)")
    p.add_argument("--lm-minutes", type=non_negative_float, default=2.0,
                   help="budget of the character LSTM on python-stdlib (default 2; 0 skips it)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.set_defaults(func=run)


def synthetic_task(n: int, seed: int, length: int = 33, vocab: int = 120, classes: int = 8):
    """Token sequences whose class is the first token's id modulo ``classes``: a model
    must carry information across the whole sequence to solve it."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, vocab, size=(n, length))
    return x, x[:, 0] % classes


def run(args) -> int:
    import torch

    import rnnkit.keras as keras

    # One intra-op thread: these models are small, and on few cores OpenMP's hand-offs
    # cost more than they save (see benchmarks/README.md).
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    print("# Seed model 1: Embedding -> Bidirectional(LSTM, return_sequences) -> Bidirectional(LSTM) -> Dense\n")
    model = keras.models.Sequential([
        keras.layers.Embedding(120, 42, input_shape=(33,)),
        keras.layers.Bidirectional(keras.layers.LSTM(56, return_sequences=True)),
        keras.layers.Bidirectional(keras.layers.LSTM(12)),
        keras.layers.Dense(8),
    ])
    model.summary()
    print("\n# Seed model 2: a Conv1D + pooling front-end\n")
    conv = keras.models.Sequential([
        keras.layers.Embedding(120, 42, input_shape=(33,)),
        keras.layers.Conv1D(56, 5, activation="relu"),
        keras.layers.MaxPooling1D(pool_size=4),
        keras.layers.Bidirectional(keras.layers.LSTM(12)),
        keras.layers.Dense(8),
    ])
    conv.summary()

    print(f"\n# Training seed model 1 for ~{args.seconds:g}s: class = first token mod 8 (chance: 12.5%)\n")
    x, y = synthetic_task(4096, args.seed)
    x_val, y_val = synthetic_task(1024, args.seed + 1)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    start, epochs = time.perf_counter(), 0
    while time.perf_counter() - start < args.seconds:
        model.fit(x, y, batch_size=64, epochs=epochs + 1, initial_epoch=epochs, validation_data=(x_val, y_val), verbose=2)
        epochs += 1
    loss, acc = model.evaluate(x_val, y_val)
    print(f"\nheld-out accuracy after {epochs} epochs ({time.perf_counter() - start:.1f}s): {acc:.1%} (chance 12.5%)")
    if args.lm_minutes > 0:
        from ..lm.stream_cli import main_job

        print("\n# A character-level language model of Python source\n", flush=True)
        return main_job(minutes=args.lm_minutes, seed=args.seed)
    return 0
