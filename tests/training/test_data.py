"""Data adapters: generators, PyDataset, DataLoader and array structures through fit/evaluate/predict."""
import numpy as np
import pytest
import torch

from rnnkit.layers import Dense
from rnnkit.models import Sequential
from rnnkit.training.data import PyDataset

rng = np.random.default_rng(0)
X = rng.normal(size=(12, 3)).astype("float32")
Y = rng.normal(size=(12, 2)).astype("float32")


def model():
    torch.manual_seed(0)
    m = Sequential([Dense(2, input_shape=(3,))])
    m.compile("sgd", "mse", device="cpu")
    return m


class Batches(PyDataset):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.ends = 0
        self.seen = []

    def __len__(self):
        return 3

    def __getitem__(self, i):
        self.seen.append(i)
        return X[4 * i : 4 * i + 4], Y[4 * i : 4 * i + 4]

    def on_epoch_end(self):
        self.ends += 1


def test_pydataset_trains_like_the_arrays_in_order():
    a, b = model(), model()
    a.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    ds = Batches()
    b.fit(ds, epochs=2, shuffle=False, verbose=0)
    assert ds.ends == 2
    assert np.allclose(a.get_weights()[0], b.get_weights()[0], atol=1e-6)
    assert a.evaluate(X, Y) == pytest.approx(b.evaluate(Batches()), abs=1e-6)
    assert b.predict(Batches()).shape == (12, 2)


def test_pydataset_shuffle_is_the_batch_order():
    ds = Batches()
    model().fit(ds, epochs=3, shuffle=True, verbose=0)
    assert len(ds.seen) == 9  # each batch once per epoch, none read twice
    epochs = [sorted(ds.seen[i : i + 3]) for i in range(0, 9, 3)]
    assert all(e == [0, 1, 2] for e in epochs)


def test_pydataset_refuses_workers():
    with pytest.raises(ValueError, match="workers=2 is not supported"):
        Batches(workers=2)
    with pytest.raises(ValueError, match="use_multiprocessing=True is not supported"):
        Batches(use_multiprocessing=True)


def gen(n):
    for i in range(n):
        yield X[i % 3 * 4 : i % 3 * 4 + 4], Y[i % 3 * 4 : i % 3 * 4 + 4]


def test_a_generator_is_consumed_not_restarted():
    m = model()
    h = m.fit(gen(5), steps_per_epoch=2, epochs=5, verbose=0)
    assert len(h.history["loss"]) == 3  # 2 + 2 + 1 batches, then it ran out
    m = model()
    with pytest.warns(UserWarning, match="ran out of data"):
        h = m.fit(gen(3), epochs=3, verbose=0)  # one epoch is the whole generator
    assert len(h.history["loss"]) == 1


def test_generator_errors():
    m = model()
    with pytest.raises(ValueError, match="yielded no batches"):
        m.fit(gen(0), verbose=0)
    with pytest.raises(ValueError, match="do not pass batch_size="):
        m.fit(gen(2), batch_size=4, verbose=0)
    with pytest.raises(ValueError, match="do not pass y="):
        m.fit(gen(2), Y, verbose=0)
    with pytest.raises(ValueError, match="validation_split is only supported for array data"):
        m.fit(gen(2), validation_split=0.5, verbose=0)


def test_dataloader_and_validation_generator():
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.tensor(X), torch.tensor(Y)),
                                         batch_size=4)
    a, b = model(), model()
    a.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    h = b.fit(loader, epochs=2, verbose=0, validation_data=gen(2), validation_steps=1)
    assert np.allclose(a.get_weights()[0], b.get_weights()[0], atol=1e-6)
    assert len(h.history["val_loss"]) == 2


def test_integer_and_boolean_inputs_become_float():
    m = model()
    xi = (X > 0)
    m.fit(xi, Y, verbose=0)
    assert m.predict(xi.astype("int64")).dtype == np.float32
