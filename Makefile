# Two commands for a fresh clone: `make test` and `make demo` (README).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: install test demo models clean

$(STAMP): pyproject.toml constraints.txt CMakeLists.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -c constraints.txt -e '.[test]'
	touch $@

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

demo: $(STAMP)
	$(VENV)/bin/onnx-smoothl1 demo

# Regenerates the checked-in ready-made models (tests fail if they drift).
models: $(STAMP)
	$(PY) -m onnx_smoothl1.cli make-models models

clean:
	rm -rf $(VENV) build
