"""``keras.callbacks.TensorBoard`` during ``fit``: the event files, read back with the
tensorboard package's own reader, hold exactly the History's figures under Keras 3's tags."""
import json

import numpy as np
import pytest

pytest.importorskip("tensorboard", reason="TensorBoard logs need the tensorboard extra: pip install 'rnnkit[tensorboard]'")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

import rnnkit.keras as keras  # noqa: E402


def read(folder):
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def scalars(acc, tag):
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def as_stored(values):  # TensorBoard keeps scalars as float32
    return [float(np.float32(v)) for v in values]


def small_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6, 3)), keras.layers.LSTM(8), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6, 3)).astype("float32")
    return model, x, (x.sum((1, 2)) > 0).astype("int64")


def test_epoch_scalars_equal_the_history(tmp_path):
    model, x, y = small_model()
    reduce = keras.callbacks.ReduceLROnPlateau(monitor="loss", patience=0, factor=0.5, min_delta=10)
    history = model.fit(x, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0,
                        callbacks=[reduce, keras.callbacks.TensorBoard(tmp_path / "logs", write_steps_per_second=True)])
    train, val = read(tmp_path / "logs" / "train"), read(tmp_path / "logs" / "validation")
    h = history.history
    for name in ("loss", "accuracy", "learning_rate"):
        assert scalars(train, f"epoch_{name}") == list(zip(range(3), as_stored(h[name])))
    assert h["learning_rate"][0] > h["learning_rate"][-1]  # the reduced rate is what is logged
    for name in ("loss", "accuracy"):
        assert scalars(val, f"epoch_{name}") == list(zip(range(3), as_stored(h[f"val_{name}"])))
    # at the optimizer's step count: 30 training samples in batches of 16 are 2 steps an epoch
    assert scalars(val, "evaluation_loss_vs_iterations") == list(zip([2, 4, 6], as_stored(h["val_loss"])))
    assert all(v > 0 for _, v in scalars(train, "epoch_steps_per_second"))
    assert "batch_loss" not in train.Tags()["scalars"]  # update_freq="epoch"
    text = train.Tensors("keras/text_summary")[0].tensor_proto.string_val[0].decode()
    assert json.loads(text)["name"] == model.name  # write_graph: the model's config


def test_batch_logging_every_n_batches(tmp_path):
    model, x, y = small_model()
    batch_losses = []
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: batch_losses.append(logs["loss"]))
    model.fit(x, y, epochs=2, batch_size=8, verbose=0,
              callbacks=[record, keras.callbacks.TensorBoard(tmp_path, update_freq=2)])
    train = read(tmp_path / "train")
    # 5 batches an epoch, 10 in all: batches 2, 4, ..., 10 counted from 1 across epochs
    assert scalars(train, "batch_loss") == list(zip(range(2, 11, 2), as_stored(batch_losses[1::2])))
    assert "batch_size" not in train.Tags()["scalars"]


@pytest.mark.parametrize("kwargs, message", [
    ({"histogram_freq": 1}, "histogram_freq=1 is not supported"),
    ({"write_images": True}, "write_images=True is not supported"),
    ({"embeddings_freq": 2}, "embeddings_freq=2 is not supported"),
    ({"profile_batch": (2, 4)}, r"profile_batch=\(2, 4\) is not supported"),
    ({"embeddings_metadata": "meta.tsv"}, "embeddings_metadata='meta.tsv' is not supported"),
    ({"update_freq": "step"}, "update_freq must be 'epoch', 'batch' or a positive integer"),
    ({"update_freq": 0}, "update_freq must be"),
    ({"write_graph": "yes"}, "write_graph must be True or False"),
])
def test_unsupported_arguments_are_refused_by_name(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        keras.callbacks.TensorBoard(tmp_path, **kwargs)


def test_a_log_dir_under_a_file_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    model, x, y = small_model()
    with pytest.raises(ValueError, match="lies under .*file, which is a file"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[keras.callbacks.TensorBoard(tmp_path / "file" / "logs")])
