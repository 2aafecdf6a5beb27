# make run   - create/refresh .venv, make sure Fashion-MNIST is installed, run the default search
# make test  - the same setup (+ PostgreSQL for the scale-out tests), then the fast test suite (what CI runs)
# make test-slow - the slow checks (pytest -m slow): end to end on real Fashion-MNIST, and fast-suite paths once more
# Extra arguments for the search: make run ARGS="hw=cpu search.n_trials=20"

PYTHON_BIN ?= python3
VENV       := .venv
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.installed
FMNIST     := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
ARGS       ?=

.PHONY: setup data postgres apt run test test-slow clean

$(PY):
	$(PYTHON_BIN) -m venv $(VENV)

# Refreshed whenever pyproject.toml changes. torch goes first and alone: `torch==2.13.0` is served as a
# local CPU wheel, and installing it before the rest keeps pip from pulling a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --disable-pip-version-check "torch==2.13.0"
	$(PY) -m pip install -q --disable-pip-version-check -e ".[dev]"
	@$(PY) -c "import torch, sys; v = torch.__version__; sys.exit(0 if v.startswith('2.13.0') and not torch.version.cuda else f'torch {v} replaced the CPU build 2.13.0: recreate .venv')"
	@# NNCF JIT-compiles its C++ quantization ops on first use (~40 s, 60 s timeout): build them once here, through
	@# the toolkit's loader, which removes a lock file left by a process killed while loading them.
	NNCF_EXTENSION_LOAD_TIMEOUT=0 $(PY) -c "from compress.quantize import load_nncf_extension as b; b()"
	@touch $@

setup: $(STAMP)

data:
	@$(MAKE) --no-print-directory apt PKGS="dataset-fashion-mnist" NEED="$(FMNIST)" \
		HINT="Fashion-MNIST is missing; run: sudo apt-get install -y dataset-fashion-mnist (or, with your own copy: make setup, then .venv/bin/python -m nas.search data.root=DIR)" STRICT=1

# The scale-out tests run workers on a real PostgreSQL server, which they start themselves from the
# Debian package's binaries (a throwaway cluster on loopback). Without root and without the package
# those tests are skipped with that reason.
postgres:
	@$(MAKE) --no-print-directory apt PKGS="postgresql" NEED="$$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | head -1)" \
		HINT="PostgreSQL is missing (sudo apt-get install -y postgresql); its tests will be skipped" STRICT=0

# apt PKGS=... NEED=<file that proves they are installed>: install as root if NEED is missing.
apt:
	@if [ -n "$(NEED)" ] && [ -e "$(NEED)" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "installing $(PKGS) (apt)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(PKGS) >/dev/null; \
	else \
		echo "$(if $(filter 1,$(STRICT)),error,warning): $(HINT)"; [ "$(STRICT)" != 1 ]; \
	fi

run: setup data
	$(PY) -m nas.search $(ARGS)

test: setup data postgres
	$(PY) -m pytest

test-slow: setup data postgres
	$(PY) -m pytest -m slow

clean:
	rm -rf $(VENV) .pytest_cache
