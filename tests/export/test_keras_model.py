"""``model.export(path, format="onnx")`` (Keras 3's signature) for Sequential, functional and
subclassed models: onnxruntime's outputs equal ``predict``'s at other batch sizes and lengths
than the traced ones, masks included; the other formats and unknown arguments are refused."""
import numpy as np
import onnxruntime as ort
import pytest
import torch

import rnnkit.keras as keras
from rnnkit.export import ExportError, read_metadata

L = keras.layers


def padded_ids(rng, batch, time):
    """Token ids with every kind of masked step: pre-padding, post-padding, holes, an empty row."""
    x = rng.integers(1, 30, (batch, time))
    x[0, : time // 2] = 0
    x[1, time - 3:] = 0
    x[2, [1, 4]] = 0
    x[3] = 0
    return x


def run(path, feeds):
    return ort.InferenceSession(str(path)).run(None, feeds)


@pytest.mark.parametrize("rnn", [L.LSTM, L.GRU, L.SimpleRNN])
def test_masked_bidirectional_classifier_matches_predict(tmp_path, rnn, capsys):
    torch.manual_seed(0)
    model = keras.Sequential([keras.Input((None,), dtype="int64"), L.Embedding(30, 8, mask_zero=True),
                              L.Bidirectional(rnn(12, return_sequences=True)), rnn(6),
                              L.Dense(4, activation="softmax")])
    path = tmp_path / "clf.onnx"
    model.export(path, format="onnx")
    assert capsys.readouterr().out == f"Saved artifact at '{path}'.\n"  # Keras's message
    session = ort.InferenceSession(str(path))
    name = session.get_inputs()[0].name
    assert session.get_inputs()[0].shape == ["batch", f"{name}_dim1"]
    rng = np.random.default_rng(0)
    for batch, time in ((4, 9), (7, 23), (5, 5)):  # traced at (2, 2)
        x = padded_ids(rng, batch, time)
        np.testing.assert_allclose(session.run(None, {name: x})[0], model.predict(x, verbose=0), atol=1e-5, rtol=0)


def test_functional_two_inputs_named_after_their_keras_inputs(tmp_path):
    torch.manual_seed(0)
    ids = keras.Input((None,), dtype="int32", name="ids")
    extra = keras.Input((3,), name="features")
    h = L.GRU(8)(L.Embedding(30, 6, mask_zero=True)(ids))
    out = L.Dense(2)(L.Concatenate()([h, L.Dense(4, activation="relu")(extra)]))
    model = keras.Model([ids, extra], out)
    model.export(tmp_path / "f.onnx", format="onnx", verbose=False, opset_version=18)
    session = ort.InferenceSession(str(tmp_path / "f.onnx"))
    assert [(i.name, i.shape) for i in session.get_inputs()] == [("ids", ["batch", "ids_dim1"]),
                                                                ("features", ["batch", 3])]
    rng = np.random.default_rng(1)
    x = padded_ids(rng, 6, 11).astype(np.int32)
    f = rng.normal(size=(6, 3)).astype(np.float32)
    np.testing.assert_allclose(session.run(None, {"ids": x, "features": f})[0], model.predict([x, f], verbose=0),
                               atol=1e-5, rtol=0)
    assert read_metadata(tmp_path / "f.onnx")["inputs"]["features"] == {"shape": [None, 3], "dtype": "float32"}


def test_subclassed_model_with_an_input_signature(tmp_path):
    class Tagger(keras.Model):
        def __init__(self):
            super().__init__()
            self.embedding = L.Embedding(30, 8)
            self.lstm = L.LSTM(10, return_sequences=True)
            self.dense = L.Dense(3)

        def call(self, inputs, training=None):
            return self.dense(self.lstm(self.embedding(inputs)))

    torch.manual_seed(0)
    model = Tagger()
    with pytest.raises(ExportError, match="has not been built"):
        model.export(tmp_path / "t.onnx", format="onnx", verbose=False)
    model.export(tmp_path / "t.onnx", format="onnx", verbose=False,
                 input_signature=[keras.Input((None,), dtype="int64", name="tokens")])
    x = np.random.default_rng(2).integers(0, 30, (3, 17))
    out = run(tmp_path / "t.onnx", {"tokens": x})[0]
    assert out.shape == (3, 17, 3)
    np.testing.assert_allclose(out, model.predict(x, verbose=0), atol=1e-5, rtol=0)


def test_fixed_axes_of_the_signature_stay_fixed(tmp_path):
    model = keras.Sequential([keras.Input((5, 2)), L.LSTM(3), L.Dense(1)])
    model.export(tmp_path / "m.onnx", format="onnx", verbose=False, input_signature=[np.zeros((4, 5, 2), "float32")])
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    assert session.get_inputs()[0].shape == [4, 5, 2]


@pytest.mark.parametrize("kwargs, error, message", [
    ({}, ValueError, "format='tf_saved_model' is not available in rnnkit"),  # Keras's default format
    ({"format": "litert"}, ValueError, "format='litert' is not available in rnnkit"),
    ({"format": "savedmodel"}, ValueError, "Unrecognized format='savedmodel'"),
    ({"format": "onnx", "is_static": True}, TypeError, "takes opset_version as its only keyword; got is_static"),
    ({"format": "onnx", "opset_version": 9}, ExportError, "opset_version must be an integer from 14 to 20"),
    ({"format": "onnx", "verbose": "yes"}, TypeError, "verbose must be True, False or None"),
])
def test_refused_arguments_name_themselves(tmp_path, kwargs, error, message):
    model = keras.Sequential([keras.Input((4,)), L.Dense(2)])
    with pytest.raises(error, match=message):
        model.export(tmp_path / "m.onnx", **kwargs)
    assert not (tmp_path / "m.onnx").exists()


def test_stateful_layers_are_refused(tmp_path):
    model = keras.Sequential([keras.Input((3, 2), batch_size=2), L.LSTM(4, stateful=True)])
    with pytest.raises(ExportError, match="stateful"):
        model.export(tmp_path / "m.onnx", format="onnx", verbose=False)


def test_a_failed_export_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"previous")
    model = keras.Sequential([keras.Input((4,)), L.Dense(2)])

    def broken(*args, **kwargs):
        raise RuntimeError("tracer failed\nsecond line")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(ExportError, match="ONNX export failed: tracer failed$"):
        model.export(path, format="onnx", verbose=False)
    assert path.read_bytes() == b"previous"
