"""``import rnnkit.keras as keras``: the seed notes' cells run unchanged and print the notes' tables."""
import contextlib
import io
import re
from pathlib import Path

import pytest

NOTES = Path(__file__).resolve().parents[3] / "shared" / "seed" / "rnn-notes.txt"


def notes_cells():
    if not NOTES.exists():
        pytest.skip(f"seed notes not found at {NOTES}")
    text = NOTES.read_text()
    cells = re.findall(r"In \[\d\]:\n(.*?model\.summary\(\))", text, re.S)
    tables = re.findall(r"(Model: \"sequential.*?)\n\n", text, re.S)
    return cells, tables


def test_seed_cells_run_unchanged_after_swapping_the_import():
    cells, tables = notes_cells()
    assert len(cells) == 2
    namespace: dict = {}
    for cell, table in zip(cells, tables):
        code = cell.replace("import tensorflow.keras as keras", "import rnnkit.keras as keras")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, "<seed cell>", "exec"), namespace)
        printed = [l.rstrip() for l in out.getvalue().splitlines() if l.strip("_=")]
        expected = [l.rstrip() for l in table.splitlines() if l.strip("_=")]
        assert printed == expected


def test_namespace_has_what_keras_users_reach_for():
    import rnnkit.keras as keras

    for name in ["Sequential", "Input", "Model"]:
        assert hasattr(keras, name)
    assert keras.Sequential is keras.models.Sequential
    for name in ["Embedding", "LSTM", "GRU", "SimpleRNN", "Bidirectional", "Conv1D", "MaxPooling1D",
                 "AveragePooling1D", "GlobalMaxPooling1D", "GlobalAveragePooling1D", "Dense", "Dropout",
                 "Activation", "Flatten", "RepeatVector", "TimeDistributed"]:
        assert hasattr(keras.layers, name), name
    assert callable(keras.models.load_model) and callable(keras.utils.to_categorical)
    assert keras.regularizers.l2(0.01).l2 == 0.01
    assert keras.optimizers.Adam().learning_rate == 0.001
    assert hasattr(keras.callbacks, "EarlyStopping") and hasattr(keras.losses, "CategoricalCrossentropy")
