#!/usr/bin/env bash
# `make test`'s pytest: the whole-loop end-to-end tests (fraud's lifecycle demo, then the clicks
# use case's loop) run one after the other beside the rest of the suite, each side in a pytest
# process of its own, and both must pass.
#
# Why: each loop test is one `berg demo` of 10 to 20 minutes, most of it waiting on the loop's own
# clocks (the snapshot job's schedule, a 2-minute alert window, scrape intervals); run after the
# rest they made `make test` about an hour. Beside them, the suite is a busy machine, which every
# test must pass on anyway. Each process picks free ports for its own stacks.
#
# Usage: scripts/test.sh <command prefix that runs Python in the project environment...>
#        (the Makefile passes `uv run --locked`)
set -uo pipefail

loop_tests=(tests/e2e/test_demo_lifecycle.py tests/e2e/test_clicks_loop.py)
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

"$@" pytest "${loop_tests[@]}" >"$log_dir/loops.log" 2>&1 &
loops_pid=$!

"$@" pytest "${loop_tests[@]/#/--ignore=}"
rest=$?

echo "=== waiting for ${loop_tests[*]} (they started with the suite) ==="
wait "$loops_pid"
loops=$?
cat "$log_dir/loops.log"
echo "=== the suite without them: exit $rest; ${loop_tests[*]}: exit $loops ==="
[ "$rest" -eq 0 ] && [ "$loops" -eq 0 ]
