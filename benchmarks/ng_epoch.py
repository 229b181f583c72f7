"""Ng's date-translation attention model: one training epoch on rnnkit against Keras 3 on TensorFlow.

    .venv/bin/python benchmarks/ng_epoch.py --keras-python /tmp/kerasenv/bin/python [--epochs 3]

The course's model (Bidirectional(LSTM(32)) encoder, an attention step of shared layers called
Ty=10 times, a post-attention LSTM(64) with initial_state, ten softmax outputs: 52,960
parameters) is built by the SAME code below from either ``rnnkit.keras`` or ``keras``, on the
same random one-hot data of the course's shapes (10,000 dates, Tx=30, 37 input symbols, 11
output symbols), and trained with Adam(0.005), batch 100, as the course does. The figure is
seconds per epoch after the first (the first includes graph tracing in Keras). Each engine
runs in its own process, one after the other, with the same thread count; Keras needs a
separate environment (``pip install keras tensorflow-cpu``), named by ``--keras-python``.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

TX, TY, N_A, N_S, HUMAN, MACHINE = 30, 10, 32, 64, 37, 11


def build(keras):
    layers = keras.layers
    repeator = layers.RepeatVector(TX)
    concatenator = layers.Concatenate(axis=-1)
    densor1 = layers.Dense(10, activation="tanh")
    densor2 = layers.Dense(1, activation="relu")
    activator = layers.Activation(lambda x: keras.activations.softmax(x, axis=1), name="attention_weights")
    dotor = layers.Dot(axes=1)
    post_lstm = layers.LSTM(N_S, return_state=True)
    output_layer = layers.Dense(MACHINE, activation="softmax")

    x_in = keras.Input(shape=(TX, HUMAN))
    s0 = keras.Input(shape=(N_S,), name="s0")
    c0 = keras.Input(shape=(N_S,), name="c0")
    s, c = s0, c0
    a = layers.Bidirectional(layers.LSTM(N_A, return_sequences=True))(x_in)
    outputs = []
    for _ in range(TY):
        alphas = activator(densor2(densor1(concatenator([a, repeator(s)]))))
        context = dotor([alphas, a])
        # The course passes inputs=context (Keras 2); Keras 3's LSTM.call names it `sequences`,
        # so the positional form is the one both accept.
        _, s, c = post_lstm(context, initial_state=[s, c])
        outputs.append(output_layer(s))
    model = keras.Model(inputs=[x_in, s0, c0], outputs=outputs)
    model.compile(loss="categorical_crossentropy",
                  optimizer=keras.optimizers.Adam(learning_rate=0.005, beta_1=0.9, beta_2=0.999),
                  metrics=[["accuracy"]] * TY)
    return model


def data(n: int):
    rng = np.random.default_rng(0)
    x = np.eye(HUMAN, dtype=np.float32)[rng.integers(0, HUMAN, (n, TX))]
    y = [np.eye(MACHINE, dtype=np.float32)[rng.integers(0, MACHINE, n)] for _ in range(TY)]
    zeros = np.zeros((n, N_S), dtype=np.float32)
    return [x, zeros, zeros], y


def worker(engine: str, epochs: int, n: int, threads: int) -> dict:
    if engine == "keras":
        os.environ.update(CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        keras = importlib.import_module("keras")
    else:
        import torch

        torch.set_num_threads(threads)
        keras = importlib.import_module("rnnkit.keras")
    model = build(keras)
    x, y = data(n)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.fit(x, y, epochs=1, batch_size=100, verbose=0)
        times.append(time.perf_counter() - start)
    return {"engine": engine, "params": int(model.count_params()), "epoch_s": times,
            "version": getattr(keras, "__version__", "")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keras-python", help="python of an environment with keras + tensorflow-cpu")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", choices=["rnnkit", "keras"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is not counted)")
    if args.worker:
        print(json.dumps(worker(args.worker, args.epochs, args.samples, args.threads)))
        return
    results = []
    for engine, python in (("rnnkit", sys.executable), ("keras", args.keras_python)):
        if python is None:
            print("keras: skipped (no --keras-python)")
            continue
        cmd = [python, __file__, "--worker", engine, "--epochs", str(args.epochs),
               "--samples", str(args.samples), "--threads", str(args.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    base = None
    print(f"| engine | params | first epoch s | later epochs s (median) | / rnnkit |\n|---|---|---|---|---|")
    for r in results:
        later = statistics.median(r["epoch_s"][1:])
        base = base or later
        name = r["engine"] + (f" {r['version']}" if r["version"] else "")
        print(f"| {name} | {r['params']:,} | {r['epoch_s'][0]:.1f} | {later:.1f} | {later / base:.2f} |")


if __name__ == "__main__":
    main()
