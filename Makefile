# One target per task. Everything runs inside .venv (created by `make venv`).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BASE_PORT ?= 50050
DATA_DIR ?= .mesh
PROTO_FILES := $(shell find protos -name '*.proto' | sort)
PACKAGES := meshkit coordinator order_svc stock_svc pay_svc points_svc meshctl devtools console

.PHONY: venv lock protos protos-check fmt lint test demo up down bench screenshots clean

## venv: the package with its dev and local-stack extras, at the versions of constraints.txt
$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,local]'

venv: $(PY)

## lock: rewrite constraints.txt from the current .venv (after changing a dependency)
lock: $(PY)
	$(PY) -m devtools.lock

## protos: regenerate meshpb/ from protos/ (committed; CI checks it is fresh)
protos: $(PY)
	$(PY) -m devtools.protogen protos .

fmt: $(PY)
	$(PY) -m ruff format $(PACKAGES) tests bench
	$(PY) -m ruff check --fix $(PACKAGES) tests bench

lint: $(PY)
	$(PY) -m ruff format --check $(PACKAGES) tests bench
	$(PY) -m ruff check $(PACKAGES) tests bench
	$(PY) -m mypy

## test: the whole suite (unit + integration against real servers) plus lint and type checks
test: $(PY) lint
	$(PY) -m pytest -q -p no:cacheprovider; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; rc=0; fi; exit $$rc

## demo: the whole mesh on embedded defaults plus the scripted scenario
demo: $(PY)
	$(VENV)/bin/meshctl demo --base-port $(BASE_PORT) --data-dir $(DATA_DIR)

## up: the whole mesh in the foreground (Ctrl-C stops it)
up: $(PY)
	$(VENV)/bin/meshctl up --base-port $(BASE_PORT) --data-dir $(DATA_DIR)

down: $(PY)
	$(VENV)/bin/meshctl down --data-dir $(DATA_DIR)

bench: $(PY)
	$(PY) -m bench

## screenshots: retake the web console's screenshots in docs/console/ (browser tests against a real stack)
screenshots: $(PY)
	MESH_UPDATE_SCREENSHOTS=1 $(PY) -m pytest -q -p no:cacheprovider tests/integration/console

clean:
	rm -rf $(VENV) $(DATA_DIR) .pytest_cache .mypy_cache .ruff_cache
