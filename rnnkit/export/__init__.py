"""Export trained models to ONNX, for any ONNX runtime, without rnnkit or PyTorch.

- `export_run(run, path)`: a run folder of any rnnkit engine (``rnnkit export RUN --format onnx OUT``).
- `export_keras_model(model, path, format="onnx")`: a Keras-API model (``model.export``).
- `export_lm_step(model, vocab, path)`: a streaming LM's one-step graph.

Every file is written atomically and carries what a user needs to run it (vocabularies, lengths)
as JSON in the ONNX ``metadata_props`` under the key ``"rnnkit"`` (`read_metadata`).
The ``onnx`` extra (``pip install 'rnnkit[onnx]'``) provides the packages.
"""
from .keras_model import export_keras_model
from .lm_step import LMStep, export_lm_step
from .onnx_file import OPSET, ExportError, read_metadata
from .runs import export_run

__all__ = ["ExportError", "LMStep", "OPSET", "export_keras_model", "export_lm_step", "export_run", "read_metadata"]
