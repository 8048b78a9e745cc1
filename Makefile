# Berg: the two commands of the quickstart are `make demo` and `make test`.
# Each installs what it needs first (scripts/bootstrap.sh).

UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
RUN := $(UV) run --locked

.PHONY: bootstrap demo test lint typecheck unit integration e2e up down status doctor format clean

bootstrap:
	@scripts/bootstrap.sh

demo: bootstrap  ## The main job: the local stack and the lifecycle demo
	$(RUN) berg demo

test: bootstrap lint typecheck  ## Everything CI checks: lint, types, unit, integration and e2e tests
	$(RUN) pytest

lint:
	$(RUN) ruff check .
	$(RUN) ruff format --check .

typecheck:
	$(RUN) mypy

unit: bootstrap
	$(RUN) pytest -m unit

integration: bootstrap
	$(RUN) pytest -m integration

e2e: bootstrap
	$(RUN) pytest -m e2e

format:
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

up: bootstrap
	$(RUN) berg up

down:
	$(RUN) berg down

status:
	$(RUN) berg status

doctor: bootstrap
	$(RUN) berg doctor

clean: down
	rm -rf .berg
