# Two entry points, both self-contained: they create (or reuse) .venv first.
# torch is pinned and installed before the package: a bare "torch" requirement
# would make pip fetch a multi-GB CUDA build.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.rnnkit-installed
export RNNKIT_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: demo test venv clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,plot,onnx,tensorboard,serve]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m rnnkit demo

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build *.egg-info
