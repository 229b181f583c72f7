"""rnnkit's own model files: exact round trips, optimizer state, atomic writes, corrupt files."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import ModelFileError, optimizers, regularizers
from rnnkit.layers import (
    GRU, LSTM, Activation, Bidirectional, Conv1D, Dense, Dropout, Embedding, Flatten, GlobalMaxPooling1D, Input,
    MaxPooling1D, RepeatVector, SimpleRNN, TimeDistributed,
)


def every_layer_model():
    return rnnkit.Sequential([
        Embedding(30, 6, mask_zero=True, input_shape=(10,)),
        Conv1D(5, 3, padding="causal", activation="relu"),
        Bidirectional(GRU(4, return_sequences=True, reset_after=False), merge_mode="ave"),
        Bidirectional(LSTM(3, return_sequences=True, go_backwards=True), merge_mode="mul"),
        SimpleRNN(4, return_sequences=True, activation="relu"),
        TimeDistributed(Dense(3)),
        MaxPooling1D(2, padding="same"),
        GRU(4, return_sequences=True),
        Dropout(0.1),
        Flatten(),
        Dense(5, kernel_regularizer=regularizers.l2(0.01)),
        RepeatVector(2),
        GlobalMaxPooling1D(),
        Activation("softmax"),
    ])


def test_round_trip_is_exact_for_every_layer(tmp_path):
    model = every_layer_model()
    x = np.random.randint(0, 30, (4, 10))
    x[:, :3] = 0
    path = tmp_path / "model.safetensors"
    model.save(path)
    loaded = rnnkit.load_model(path)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.summary_text() == model.summary_text()


def test_optimizer_state_resumes_training_identically(tmp_path):
    x = np.random.randint(0, 50, (64, 8))
    y = x[:, 0] % 3
    def make():
        m = rnnkit.Sequential([Embedding(50, 8, input_shape=(8,)), LSTM(6), Dense(3, activation="softmax")])
        m.compile(optimizers.Adam(0.01, clipnorm=1.0), "sparse_categorical_crossentropy", metrics=["accuracy"])
        return m
    model = make()
    model.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    model.save(tmp_path / "m.safetensors")
    loaded = rnnkit.load_model(tmp_path / "m.safetensors")
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    h1 = model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    h2 = loaded.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    assert h1.history["loss"] == pytest.approx(h2.history["loss"], rel=1e-6)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_file_is_plain_safetensors_with_json_config(tmp_path):
    from safetensors import safe_open

    model = rnnkit.Sequential([Input((3,)), Dense(2, name="head")])
    model.save(tmp_path / "m.safetensors", include_optimizer=False)
    with safe_open(tmp_path / "m.safetensors", "pt") as f:
        assert set(f.keys()) == {"head/kernel", "head/bias"}
        meta = f.metadata()
    config = json.loads(meta["model_config"])
    assert config["class_name"] == "Sequential" and config["config"]["layers"][1]["class_name"] == "Dense"


def test_crash_during_save_leaves_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    model = rnnkit.Sequential([Dense(2, input_shape=(3,))])
    model.save(path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    model.set_weights([w + 1 for w in model.get_weights()])
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temp file left behind
    rnnkit.load_model(path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "header"])
def test_corrupt_files_give_one_clear_error(tmp_path, damage):
    path = tmp_path / "m.safetensors"
    rnnkit.Sequential([Dense(2, input_shape=(3,))]).save(path)
    data = path.read_bytes()
    bad = {
        "truncate": data[: len(data) - 7],
        "garbage": b"\x00" * 100,
        "empty": b"",
        "header": data[:8] + b"{not json" + data[17:],
    }[damage]
    path.write_bytes(bad)
    with pytest.raises(ModelFileError, match="m.safetensors"):
        rnnkit.load_model(path)


def test_missing_file_and_foreign_safetensors(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(ModelFileError, match="no such model file"):
        rnnkit.load_model(tmp_path / "nope.safetensors")
    save_file({"w": torch.zeros(2)}, tmp_path / "foreign.safetensors")
    with pytest.raises(ModelFileError, match="not an rnnkit model file"):
        rnnkit.load_model(tmp_path / "foreign.safetensors")


def test_save_and_load_weights_only(tmp_path):
    a = rnnkit.Sequential([Dense(2, input_shape=(3,)), Dense(1)])
    b = rnnkit.Sequential([Dense(2, input_shape=(3,)), Dense(1)])
    b.layers[0].name, b.layers[1].name = a.layers[0].name, a.layers[1].name
    a.save_weights(tmp_path / "w.safetensors")
    b.load_weights(tmp_path / "w.safetensors")
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    c = rnnkit.Sequential([Dense(3, input_shape=(3,), name=a.layers[0].name), Dense(1, name=a.layers[1].name)])
    with pytest.raises(ModelFileError, match="has shape"):
        c.load_weights(tmp_path / "w.safetensors")


FORMAT_1 = Path(__file__).parents[1] / "fixtures" / "native" / "conv_format1.safetensors"


def test_format_1_files_still_load_with_their_optimizer_state(monkeypatch):
    # Format 1 kept Conv1D kernels in Keras's layout; the fixture was written by rnnkit at
    # that format (tests/fixtures/native/make_format1.py), with what it predicted and trained.
    # It has no checksum, so it loads only when the user opts in.
    with pytest.raises(ModelFileError, match="carries no checksum.*RNNKIT_ALLOW_UNCHECKED=1"):
        rnnkit.load_model(FORMAT_1)
    monkeypatch.setenv("RNNKIT_ALLOW_UNCHECKED", "1")
    expected = json.loads(FORMAT_1.with_suffix(".json").read_text())
    model = rnnkit.load_model(FORMAT_1)
    x, y = np.array(expected["x"]), np.array(expected["y"])
    np.testing.assert_allclose(model.predict(x), np.array(expected["pred"]), rtol=1e-5, atol=1e-6)
    losses = model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False).history["loss"]
    np.testing.assert_allclose(losses, expected["next_losses"], rtol=1e-5)


def test_format_1_weights_load_into_a_model(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNKIT_ALLOW_UNCHECKED", "1")
    expected = json.loads(FORMAT_1.with_suffix(".json").read_text())
    source = rnnkit.load_model(FORMAT_1, compile=False)
    fresh = rnnkit.Sequential.from_config(source.get_config())
    fresh.load_weights(FORMAT_1)
    np.testing.assert_allclose(fresh.predict(np.array(expected["x"])), np.array(expected["pred"]), rtol=1e-5,
                               atol=1e-6)
    (tmp_path / "other.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(ModelFileError, match="not an rnnkit weights file"):
        fresh.load_weights(tmp_path / "other.safetensors")


@pytest.mark.parametrize("name", ["best.h5", "model.keras", "m.hdf5"])
def test_a_model_saved_under_a_keras_name_loads_back(tmp_path, name):
    # The Keras 2 habit (model.save("best.h5"), ModelCheckpoint("best.h5")) writes rnnkit's own
    # format under a Keras name; load_model goes by the bytes, not the name.
    model = rnnkit.Sequential([Embedding(20, 4, input_shape=(6,)), LSTM(3), Dense(2)])
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).integers(0, 20, (8, 6))
    model.fit(x, np.zeros(8, int), epochs=1, verbose=0,
              callbacks=[rnnkit.callbacks.ModelCheckpoint(str(tmp_path / ("cb_" + name)))])
    model.save(tmp_path / name)
    for path in (tmp_path / name, tmp_path / ("cb_" + name)):
        np.testing.assert_allclose(rnnkit.load_model(path).predict(x), model.predict(x), rtol=1e-6)


def test_flipped_bytes_are_caught_by_the_checksum(tmp_path):
    model = rnnkit.Sequential([Dense(2, input_shape=(3,))])
    model.compile("adam", "mse")
    model.fit(np.ones((4, 3), "float32"), np.ones((4, 2), "float32"), verbose=0)
    path = tmp_path / "m.safetensors"
    model.save(path)
    data = path.read_bytes()
    header_end = 8 + int.from_bytes(data[:8], "little")
    weight = bytearray(data)
    weight[-3] ^= 0x10  # a bit of the last tensor's bytes: still a valid float
    key = data.replace(b'"optimizer_state"', b'"optimizer_statf"')  # state silently dropped, unchecked
    assert len(key) == len(data) and key != data
    for bad in (bytes(weight), key):
        path.write_bytes(bad)
        with pytest.raises(ModelFileError, match="corrupt model file"):
            rnnkit.load_model(path)
    model.save_weights(tmp_path / "w.safetensors")
    w = bytearray((tmp_path / "w.safetensors").read_bytes())
    w[-1] ^= 0x01
    (tmp_path / "w.safetensors").write_bytes(bytes(w))
    with pytest.raises(ModelFileError, match="corrupt weights file"):
        model.load_weights(tmp_path / "w.safetensors")
    assert header_end < len(data)


def test_format_2_files_without_a_checksum_load_only_when_asked(tmp_path, monkeypatch):
    # Format 2 (conv layout, no digest) was written for a while; such files load unchecked, and only
    # with the opt-in: otherwise rewriting a format-3 file as format 2 would skip its checksum.
    from safetensors.torch import load, save

    model = rnnkit.Sequential([Embedding(20, 4, input_shape=(6,)), Conv1D(3, 2), Flatten(), Dense(2)])
    model.save(tmp_path / "m3.safetensors")
    data = (tmp_path / "m3.safetensors").read_bytes()
    header = json.loads(data[8: 8 + int.from_bytes(data[:8], "little")])["__metadata__"]
    old = {k: v for k, v in header.items() if k != "rnnkit_sha256"} | {"rnnkit_format": "rnnkit-model/2"}
    (tmp_path / "m2.safetensors").write_bytes(save(load(data), metadata=old))
    x = np.random.default_rng(0).integers(0, 20, (3, 6))
    with pytest.raises(ModelFileError, match="format 'rnnkit-model/2' carries no checksum"):
        rnnkit.load_model(tmp_path / "m2.safetensors")
    monkeypatch.setenv("RNNKIT_ALLOW_UNCHECKED", "1")
    np.testing.assert_allclose(rnnkit.load_model(tmp_path / "m2.safetensors").predict(x), model.predict(x), rtol=1e-6)


def test_per_output_losses_weights_and_metric_arguments_survive_a_reload(tmp_path):
    # loss_weights and a loss's from_logits= were dropped on reload: the loaded model then
    # evaluated (and trained on) another loss than the one it was compiled with.
    import rnnkit.keras as keras

    a = keras.Input((4,), name="a")
    model = keras.Model(a, {"cls": keras.layers.Dense(3, name="cls")(a), "reg": keras.layers.Dense(1, name="reg")(a)})
    model.compile(optimizer="adam",
                  loss={"cls": keras.losses.SparseCategoricalCrossentropy(from_logits=True), "reg": "mse"},
                  loss_weights={"cls": 1.0, "reg": 0.5},
                  metrics={"cls": [keras.metrics.SparseTopKCategoricalAccuracy(k=2)]})
    rng = np.random.default_rng(0)
    x = rng.random((8, 4), dtype=np.float32)
    y = {"cls": np.arange(8) % 3, "reg": rng.random((8, 1), dtype=np.float32)}
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    again = rnnkit.load_model(tmp_path / "m.keras")
    assert again.evaluate(x, y, verbose=0, return_dict=True) == pytest.approx(
        model.evaluate(x, y, verbose=0, return_dict=True))
    assert again.compiled.loss_weights == {"cls": 1.0, "reg": 0.5}
