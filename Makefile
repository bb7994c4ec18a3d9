# One entry point for developers and CI.
SHELL := /bin/bash
export PATH := $(CURDIR)/.tools/bin:$(CURDIR)/.venv/bin:$(PATH)
PYTEST_ARGS ?=

.PHONY: install test demo lint fmt proto clean gameday

install:
	@scripts/install.sh

test: install
	.venv/bin/pytest $(PYTEST_ARGS)

SEEDS ?= 1
gameday: install
	HOMEPORT_GAMEDAY=1 HOMEPORT_GAMEDAY_SEEDS=$(SEEDS) .venv/bin/pytest tests/chaos -m gameday

demo: install
	.venv/bin/homeport demo

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	scripts/typecheck.sh --strict -p homeport

proto: install
	.venv/bin/python -m homeport.router.codegen

fmt: install
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

clean:
	-.venv/bin/homeport dev down 2>/dev/null
	rm -rf .homeport reports
