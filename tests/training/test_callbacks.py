import csv

import numpy as np
import pytest

import rnnkit
from rnnkit import callbacks, optimizers
from rnnkit.layers import Dense


def linear_problem():
    x = np.random.rand(128, 2).astype("float32")
    y = (x @ np.array([[2.0], [-1.0]], "float32"))
    return x, y


def model_for(lr=0.05):
    m = rnnkit.Sequential([Dense(1, input_shape=(2,))])
    m.compile(optimizers.SGD(lr), "mse")
    return m


def test_early_stopping_stops_and_restores_best_weights():
    x, y = linear_problem()
    m = model_for(lr=5.0)  # diverging: val_loss gets worse every epoch after the first
    es = callbacks.EarlyStopping(monitor="loss", patience=2, restore_best_weights=True)
    h = m.fit(x, y, epochs=50, callbacks=[es], verbose=0, shuffle=False)
    assert len(h.epoch) < 50 and es.stopped_epoch > 0
    best = int(np.argmin(h.history["loss"]))
    assert es.best_epoch == best


def test_model_checkpoint_best_only_and_csv_logger(tmp_path):
    x, y = linear_problem()
    m = model_for()
    ckpt = callbacks.ModelCheckpoint(tmp_path / "best.safetensors", monitor="val_loss", save_best_only=True)
    log = callbacks.CSVLogger(tmp_path / "log.csv")
    h = m.fit(x, y, epochs=4, validation_split=0.25, callbacks=[ckpt, log], verbose=0)
    loaded = rnnkit.load_model(tmp_path / "best.safetensors")
    best = min(h.history["val_loss"])
    assert loaded.evaluate(x[96:], y[96:]) == pytest.approx(best, rel=1e-5)
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    assert float(rows[-1]["val_loss"]) == pytest.approx(h.history["val_loss"][-1])
    pattern = callbacks.ModelCheckpoint(str(tmp_path / "m-{epoch:02d}-{loss:.3f}.safetensors"), save_best_only=False)
    m.fit(x, y, epochs=2, callbacks=[pattern], verbose=0)
    assert len(list(tmp_path.glob("m-0*-*.safetensors"))) == 2


def test_reduce_lr_on_plateau_lowers_learning_rate():
    x, y = linear_problem()
    m = model_for(lr=1e-12)  # no progress at all: a plateau from the start
    cb = callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=1.0)
    h = m.fit(x, y, epochs=4, callbacks=[cb], verbose=0)
    assert m.optimizer.learning_rate == pytest.approx(1e-12 * 0.125)  # reduced after epochs 2, 3, 4
    assert h.history["learning_rate"][0] == pytest.approx(1e-12)


def test_lambda_callback_sees_every_epoch():
    x, y = linear_problem()
    seen = []
    m = model_for()
    m.fit(x, y, epochs=3, verbose=0, callbacks=[callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(e))])
    assert seen == [0, 1, 2]
