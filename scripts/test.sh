#!/usr/bin/env bash
# `make test`'s pytest: the lifecycle demo's end-to-end test runs beside the rest of the suite,
# each in a pytest process of its own, and both must pass.
#
# Why: the demo's test is about 20 minutes of one `berg demo`, most of it waiting on the loop's own
# clocks (the merchant job's schedule, a 2-minute alert window, scrape intervals); run after the
# rest it made `make test` about 49 minutes. Beside it, the suite is a busy machine, which every test
# must pass on anyway. Each process picks free ports for its own stacks.
#
# Usage: scripts/test.sh <command prefix that runs Python in the project environment...>
#        (the Makefile passes `uv run --locked`)
set -uo pipefail

demo_test=tests/e2e/test_demo_lifecycle.py
log_dir=$(mktemp -d)
trap 'rm -rf "$log_dir"' EXIT

# Every stack copies Kafka's jars from Maven's local repository (~/.m2); fill it once first, so two
# first stacks never download the same artifacts into it at the same time on a fresh machine.
"$@" python - <<'PY' || exit 1
import tempfile
from pathlib import Path

from berg_app.stack.kafka import fetch_kafka_jars
from berg_app.stack.layout import StateLayout
from berg_app.stack.settings import StackSettings

with tempfile.TemporaryDirectory() as state:
    fetch_kafka_jars(StackSettings(state_dir=Path(state)), StateLayout.at(Path(state)))
PY

"$@" pytest "$demo_test" >"$log_dir/demo.log" 2>&1 &
demo_pid=$!

"$@" pytest --ignore="$demo_test"
rest=$?

echo "=== waiting for $demo_test (it started with the suite) ==="
wait "$demo_pid"
demo=$?
cat "$log_dir/demo.log"
echo "=== the suite without it: exit $rest; $demo_test: exit $demo ==="
[ "$rest" -eq 0 ] && [ "$demo" -eq 0 ]
