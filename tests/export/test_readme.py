"""The README's generation snippet, exactly as written there, runs on an exported run with
onnxruntime and NumPy alone and writes 200 characters of the run's vocabulary after the prime."""
import re
import subprocess
import sys
from pathlib import Path

from rnnkit.cli.main import main
from tests.tiny_runs import STREAM, corpus_text

README = Path(__file__).resolve().parents[2] / "README.md"


def snippet() -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- onnx-generate .*?-->\n```python\n(.*?)```", text, re.S)
    assert found, "README.md has no onnx-generate snippet"
    return found.group(1)


def test_readme_snippet_generates_from_the_exported_file(tmp_path):
    code = snippet()
    assert "import rnnkit" not in code and "torch" not in code
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(corpus_text())
    assert main(["lm", "train", "--corpus", str(corpus), "--out", str(tmp_path / "shakes"), "--steps", "5",
                 *STREAM]) == 0
    assert main(["export", str(tmp_path / "shakes"), "--format", "onnx", str(tmp_path / "shakes.onnx")]) == 0
    # -I: isolated (no checkout on the path), and rnnkit and torch made unimportable
    guard = "import sys; sys.modules['rnnkit'] = sys.modules['torch'] = None\n"
    done = subprocess.run([sys.executable, "-I", "-c", guard + code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    text = done.stdout[:-1]  # print's newline
    assert text.startswith("ROMEO:") and len(text) == len("ROMEO:") + 200
    assert set(text) <= set(corpus.read_text())
