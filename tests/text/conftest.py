"""Fixtures for rnnkit.text tests: the Keras reference outputs (``data_dir`` comes from tests/conftest.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def text_fixtures() -> Path:
    """Folder of the files written by tests/fixtures/text/make_text_fixtures.py (with tf_keras)."""
    return Path(__file__).resolve().parents[1] / "fixtures" / "text"


@pytest.fixture(scope="session")
def keras_ref(text_fixtures) -> dict:
    """Contents of keras_text.json: inputs and tf_keras outputs of every reference case."""
    return json.loads((text_fixtures / "keras_text.json").read_text(encoding="utf-8"))
