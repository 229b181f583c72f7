"""The ONNX tests need the ``onnx`` extra; without it they skip, saying so."""
import pytest

pytest.importorskip("onnx", reason="ONNX export needs the onnx extra: pip install 'rnnkit[onnx]'")
pytest.importorskip("onnxruntime", reason="the ONNX round trips need onnxruntime: pip install 'rnnkit[onnx]'")
