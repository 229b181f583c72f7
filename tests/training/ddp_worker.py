"""Worker for the data-parallel tests: run as ``torchrun ... ddp_worker.py OUT [options]``
(or plainly, as one process). Trains a small model on fixed data and writes its final
weights (rank 0) to OUT as an rnnkit model file."""
import argparse
import os

import numpy as np
import torch

import rnnkit
from rnnkit import callbacks, distributed, optimizers
from rnnkit.layers import GRU, Dense, Embedding


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--initial-epoch", type=int, default=0)
    p.add_argument("--resume-from")
    p.add_argument("--checkpoint")
    p.add_argument("--samples", type=int, default=96)
    p.add_argument("--units", type=int, default=6)
    p.add_argument("--rank1-units", type=int, help="give rank 1 a different model (a misconfigured launch)")
    p.add_argument("--die-at-epoch", type=int, help="rank 1 exits abruptly when this epoch begins")
    args = p.parse_args()
    rank = int(os.environ.get("RANK", "0"))
    if args.rank1_units and rank == 1:
        args.units = args.rank1_units

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = rng.integers(1, 30, size=(args.samples, 10))
    y = x[:, 0] % 4
    torch.manual_seed(0)
    if args.resume_from:
        model = rnnkit.load_model(args.resume_from)
    else:
        model = rnnkit.Sequential([Embedding(30, 8, input_shape=(10,)), GRU(args.units), Dense(4, activation="softmax")])
        model.compile(optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"], device="cpu")
    cbs = [callbacks.ModelCheckpoint(args.checkpoint)] if args.checkpoint else []
    if args.die_at_epoch is not None and rank == 1:
        cbs.append(callbacks.LambdaCallback(on_epoch_begin=lambda e, logs=None: e == args.die_at_epoch and os._exit(3)))
    model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, initial_epoch=args.initial_epoch,
              callbacks=cbs, verbose=0)
    if distributed.is_main():
        model.save(args.out)


if __name__ == "__main__":
    main()
