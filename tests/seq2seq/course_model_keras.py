"""Reference only (not a test, never run by pytest): the Coursera model in Keras 3.

Sequence Models, week 3, "Neural machine translation with attention": Bi-LSTM(n_a)
encoder over one-hot inputs, RepeatVector(Tx) of s_prev, Concatenate([a, s_prev]),
Dense(10, tanh), Dense(1, relu), softmax over time, Dot, post-attention LSTM(n_s)
with return_state, Dense(len(machine_vocab), softmax). With the course's sizes it
prints ``TOTAL 52960``, the count ``test_model.py`` expects of rnnkit's course preset.

    /tmp/kenv/bin/python tests/seq2seq/course_model_keras.py    # any env with Keras 3
"""
import os

os.environ["CUDA_VISIBLE_DEVICES"] = ""

import keras  # noqa: E402
from keras.layers import LSTM, Activation, Bidirectional, Concatenate, Dense, Dot, Input, RepeatVector  # noqa: E402

Tx, Ty, n_a, n_s = 30, 10, 32, 64
human_vocab, machine_vocab = 37, 11

repeator = RepeatVector(Tx)
concatenator = Concatenate(axis=-1)
densor1 = Dense(10, activation="tanh")
densor2 = Dense(1, activation="relu")
activator = Activation(lambda x: keras.activations.softmax(x, axis=1))  # softmax over time
dotor = Dot(axes=1)
post_activation_LSTM_cell = LSTM(n_s, return_state=True)
output_layer = Dense(machine_vocab, activation="softmax")


def one_step_attention(a, s_prev):
    concat = concatenator([a, repeator(s_prev)])
    alphas = activator(densor2(densor1(concat)))
    return dotor([alphas, a])


X = Input(shape=(Tx, human_vocab))
s0 = Input(shape=(n_s,))
c0 = Input(shape=(n_s,))
s, c = s0, c0
a = Bidirectional(LSTM(n_a, return_sequences=True))(X)
outputs = []
for t in range(Ty):
    context = one_step_attention(a, s)
    _, s, c = post_activation_LSTM_cell(context, initial_state=[s, c])
    outputs.append(output_layer(s))
model = keras.Model(inputs=[X, s0, c0], outputs=outputs)
print("TOTAL", model.count_params())
