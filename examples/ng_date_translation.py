"""Andrew Ng's "Neural machine translation with attention" (Sequence Models, week 3), unchanged
Keras code after `import rnnkit.keras as keras`: human-readable dates ("3 May 1979",
"tuesday 10 march 2009") to ISO ("1979-05-03"). A bidirectional LSTM encoder, an attention
step built from shared layers called Ty=10 times, a post-attention LSTM: 52,960 parameters,
as the course's summary prints.

    .venv/bin/python examples/ng_date_translation.py [--epochs 20] [--train 10000]

Prints the summary, trains, and reports the exact-match accuracy on 1,000 held-out dates.
"""
import argparse
import time

import numpy as np

import rnnkit.keras as keras  # was: import tensorflow.keras as keras
from rnnkit.keras.layers import LSTM, Activation, Bidirectional, Concatenate, Dense, Dot, Input, RepeatVector
from rnnkit.seq2seq.tasks import dates_task

Tx, Ty, n_a, n_s = 30, 10, 32, 64

# ---- the course's code, as written there ------------------------------------------------
repeator = RepeatVector(Tx)
concatenator = Concatenate(axis=-1)
densor1 = Dense(10, activation="tanh")
densor2 = Dense(1, activation="relu")
activator = Activation(lambda x: keras.activations.softmax(x, axis=1), name="attention_weights")
dotor = Dot(axes=1)


def one_step_attention(a, s_prev):
    s_prev = repeator(s_prev)
    concat = concatenator([a, s_prev])
    e = densor1(concat)
    energies = densor2(e)
    alphas = activator(energies)
    context = dotor([alphas, a])
    return context


def modelf(Tx, Ty, n_a, n_s, human_vocab_size, machine_vocab_size):
    X = Input(shape=(Tx, human_vocab_size))
    s0 = Input(shape=(n_s,), name="s0")
    c0 = Input(shape=(n_s,), name="c0")
    s, c = s0, c0
    outputs = []
    a = Bidirectional(LSTM(units=n_a, return_sequences=True))(X)
    for t in range(Ty):
        context = one_step_attention(a, s)
        _, s, c = post_activation_LSTM_cell(inputs=context, initial_state=[s, c])
        out = output_layer(inputs=s)
        outputs.append(out)
    return keras.Model(inputs=[X, s0, c0], outputs=outputs)
# ------------------------------------------------------------------------------------------


def one_hot(ids: np.ndarray, size: int) -> np.ndarray:
    return np.eye(size, dtype=np.float32)[ids]


def main() -> None:
    global post_activation_LSTM_cell, output_layer
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--train", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args()

    task = dates_task(train_size=args.train, test_size=1000, tx=Tx, ty=Ty, vocab="course")
    human, machine = task.input_vocab, task.output_vocab
    post_activation_LSTM_cell = LSTM(n_s, return_state=True)
    output_layer = Dense(len(machine), activation="softmax")
    model = modelf(Tx, Ty, n_a, n_s, len(human), len(machine))
    model.summary()

    def arrays(pairs):
        x = one_hot(human.encode([p[0] for p in pairs], Tx), len(human))
        y = one_hot(machine.encode([p[1] for p in pairs], Ty), len(machine))
        return x, list(y.swapaxes(0, 1))

    x, y = arrays(task.train)
    x_test, y_test = arrays(task.test)
    zeros = lambda n: np.zeros((n, n_s), dtype=np.float32)  # noqa: E731
    opt = keras.optimizers.Adam(learning_rate=0.005, beta_1=0.9, beta_2=0.999)
    model.compile(loss="categorical_crossentropy", optimizer=opt, metrics=[["accuracy"]] * Ty)
    start = time.time()
    model.fit([x, zeros(len(x)), zeros(len(x))], y, epochs=args.epochs, batch_size=args.batch_size, verbose=2)
    took = time.time() - start
    pred = np.stack(model.predict([x_test, zeros(len(x_test)), zeros(len(x_test))], batch_size=500), 1).argmax(-1)
    exact = float((pred == np.stack(y_test, 1).argmax(-1)).all(-1).mean())
    for text, ids in list(zip((p[0] for p in task.test), pred))[:5]:
        print(f"{text!r:>32} -> {machine.decode(ids)}")
    print(f"exact match on {len(x_test)} held-out dates: {exact:.1%} after {args.epochs} epochs ({took:.0f} s)")


if __name__ == "__main__":
    main()
