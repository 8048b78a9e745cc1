# Berg: the two commands of the quickstart are `make demo` and `make test`.
# Each installs what it needs first: `make demo` only what the stack and the demo run
# (scripts/bootstrap.sh demo), `make test` also what only the tests use (scripts/bootstrap.sh test).

UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
RUN := $(UV) run --locked

# The workspace installs two use cases (fraud, clicks), so none is "the only one installed": the demo and
# the tests run the reference one unless told otherwise (`make demo BERG_USE_CASE=clicks`). Exported, so
# `berg demo`, the stack's services and the pipeline runs they start all read the same name.
export BERG_USE_CASE ?= fraud

.PHONY: bootstrap bootstrap-demo demo test lint typecheck unit integration e2e cluster-tools cluster images up down status doctor format clean

bootstrap:  ## Everything: the demo's needs plus the tests' (Redis, PostgreSQL, kcat, helm, checkov, hadolint)
	@scripts/bootstrap.sh test

bootstrap-demo:  ## What the local stack and the demo run: Java, Maven, Prometheus, Alertmanager, uv, the venv
	@scripts/bootstrap.sh demo

demo: bootstrap-demo  ## The main job: the local stack and the lifecycle demo
	$(RUN) berg demo

test: bootstrap lint typecheck  ## Everything CI checks: lint, types, unit, integration and e2e tests
	scripts/test.sh $(RUN)

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

cluster-tools:  ## Build the cluster tier's control plane, kwok and KServe's controller (once per machine, ~20 min)
	@scripts/cluster-tools.sh

cluster: bootstrap cluster-tools  ## The cluster tier alone: the chart installed into a real API server
	$(RUN) pytest tests/cluster

images:  ## Build the seven images with podman, no registry (scripts/images.sh), then run each (tests/images)
	scripts/images.sh
	$(RUN) pytest -m images tests/images

format:
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

up: bootstrap-demo
	$(RUN) berg up

down:
	$(RUN) berg down

status:
	$(RUN) berg status

doctor: bootstrap-demo
	$(RUN) berg doctor

clean: down
	rm -rf .berg
