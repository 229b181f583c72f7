"""Opening runs to serve: every kind by its CLI loader, and what is not a run refused in one line."""
import pytest

from rnnkit.lm.run import RunFolderError
from rnnkit.serve.app import create_app
from rnnkit.serve.registry import load_run


def test_a_folder_that_is_no_run_is_refused_naming_it(tmp_path):
    with pytest.raises(RunFolderError, match=f"{tmp_path}: not an rnnkit run folder"):
        load_run(tmp_path)


def test_generators_by_kind_and_names(models, runs):
    kinds = {name: type(m.generator).__name__ if m.generator else None for name, m in models.items()}
    assert kinds == {"char": "BatchScheduler", "wordlm": "BatchScheduler", "gru": "SoloGenerator",
                     "word": "SoloGenerator", "dates": None}
    with pytest.raises(ValueError, match="share a name"):
        create_app([models["dates"], models["dates"]])
    named = load_run(runs / "dates", name="calendar")
    assert named.id == "calendar" and named.describe()["kind"] == "seq2seq"
