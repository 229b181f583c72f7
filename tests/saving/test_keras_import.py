"""Loading real Keras files (made by tests/fixtures/keras/make_keras_fixtures.py with Keras 3
and tf_keras): same predictions as Keras within 1e-5 relative error, compile config restored,
unsupported or damaged files refused clearly."""
import json
import shutil
import zipfile

import numpy as np
import pytest

import rnnkit
from rnnkit import ModelFileError

from ..conftest import FIXTURES

MODELS = FIXTURES / "keras" / "models"
SPECS = json.loads((MODELS / "models.json").read_text())["models"]
FILES = [(s, s["keras_file"], "y") for s in SPECS] + [(s, s["h5_file"], "y_h5") for s in SPECS]


@pytest.mark.parametrize("spec,filename,key", FILES, ids=[f for _, f, _ in FILES])
def test_predictions_match_keras(spec, filename, key):
    arrays = np.load(MODELS / spec["npz"], allow_pickle=False)
    model = rnnkit.load_model(MODELS / filename)
    assert model.count_params() == spec["count_params"]
    got = model.predict(arrays["x"])
    expected = arrays[key]
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # keras.models.load_model is the same function
    assert rnnkit.keras.models.load_model is rnnkit.load_model


def test_weights_come_back_in_keras_layout():
    spec = next(s for s in SPECS if s["name"] == "gru_stack")
    arrays = np.load(MODELS / spec["npz"], allow_pickle=False)
    model = rnnkit.load_model(MODELS / spec["keras_file"])
    for got, key in zip(model.get_weights(), spec["weights"]):
        np.testing.assert_array_equal(got, arrays[key])


def test_compile_config_is_restored_and_model_trains():
    spec = next(s for s in SPECS if s["name"] == "conv_pool")
    model = rnnkit.load_model(MODELS / spec["keras_file"])
    assert model.compiled is not None and model.compiled.loss.name == "sparse_categorical_crossentropy"
    assert model.optimizer.learning_rate == pytest.approx(1e-3)
    x = np.load(MODELS / spec["npz"])["x"]
    y = np.zeros(len(x), dtype="int64")
    before = model.evaluate(x, y)
    model.fit(x, y, epochs=3, verbose=0)
    assert model.evaluate(x, y) < before
    assert rnnkit.load_model(MODELS / spec["keras_file"], compile=False).compiled is None


def test_loaded_model_summary_uses_keras_names():
    model = rnnkit.load_model(MODELS / "seed_bilstm.h5")
    text = model.summary_text()
    assert 'Model: "seed_bilstm"' in text and "bidirectional_1 (Bidirection" in text


def _rewrite_config(src, dst, edit):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                cfg = json.loads(data)
                edit(cfg)
                data = json.dumps(cfg).encode()
            zout.writestr(item, data)


def test_unsupported_layer_and_option_are_named(tmp_path):
    def unknown_layer(cfg):
        cfg["config"]["layers"][1]["class_name"] = "GroupNormalization"

    def unsupported_option(cfg):
        cfg["config"]["layers"][1]["config"]["embeddings_constraint"] = {"class_name": "NonNeg"}

    for edit, pattern in ((unknown_layer, "'GroupNormalization' is not supported"),
                          (unsupported_option, "embeddings_constraint")):
        _rewrite_config(MODELS / "seed_bilstm.keras", tmp_path / "m.keras", edit)
        with pytest.raises(ModelFileError, match=pattern):
            rnnkit.load_model(tmp_path / "m.keras")


def test_damaged_keras_files_are_refused(tmp_path):
    data = (MODELS / "seed_bilstm.keras").read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.h5").write_bytes(b"this is not hdf5")
    shutil.copy(MODELS / "seed_bilstm.h5", tmp_path / "ok.h5")
    with pytest.raises(ModelFileError, match="cut.keras"):
        rnnkit.load_model(tmp_path / "cut.keras")
    with pytest.raises(ModelFileError, match="neither a Keras 3 .keras archive, an HDF5 .h5 file nor an rnnkit model file"):
        rnnkit.load_model(tmp_path / "junk.h5")
    with pytest.raises(ModelFileError, match="no such model file"):
        rnnkit.load_model(tmp_path / "missing.keras")
    rnnkit.load_model(tmp_path / "ok.h5")
