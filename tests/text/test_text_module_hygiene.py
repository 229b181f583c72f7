"""rnnkit.text and rnnkit.data stay pure Python + NumPy, and their docstring examples run."""
from __future__ import annotations

import ast
import doctest
from pathlib import Path

import pytest

import rnnkit.text
from rnnkit.text import ngrams, sequence, words

PACKAGES = [Path(rnnkit.text.__file__).parent, Path(rnnkit.text.__file__).parent.parent / "data"]
FORBIDDEN = {"torch", "keras", "tf_keras", "tensorflow"}


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_no_torch_or_keras_imports(package):
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            assert not {n.split(".")[0] for n in names} & FORBIDDEN, f"{path.name}: imports {names}"


@pytest.mark.parametrize("module", [ngrams, sequence, words], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, extraglobs={"pad_sequences": rnnkit.text.pad_sequences},
                             optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
