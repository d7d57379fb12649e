# The README's commands. `make test` is what CI runs (.ci/run).
.PHONY: setup lint test unit integration e2e crds

setup:
	scripts/setup.sh

lint:
	uv run --frozen ruff check operator tests bench scripts
	uv run --frozen ruff format --check operator tests bench scripts
	uv run --frozen mypy

unit:
	uv run --frozen pytest tests/unit -q

integration:
	uv run --frozen pytest tests/integration -q

e2e:
	uv run --frozen pytest tests/e2e -q

test: setup lint
	# Integration tests run real processes on a 2-core machine: a failure is retried twice, and one that
	# reproduces still fails the run. -rR names the retried tests in the summary.
	uv run --frozen pytest tests -q -rR --reruns 2 --reruns-delay 2

crds:
	uv run --frozen python scripts/gen_crds.py
	uv run --frozen python scripts/sync_chart_crds.py
