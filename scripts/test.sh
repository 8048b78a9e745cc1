#!/usr/bin/env bash
# `make test`'s pytest: the whole-loop end-to-end tests (fraud's lifecycle demo, then the clicks
# use case's loop) run one after the other beside the rest of the suite, and so does the cluster
# tier (tests/cluster); each in a pytest process of its own, and all must pass.
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

# The cluster tier (tests/cluster, marker `cluster`) needs a Kubernetes control plane built from the Go module
# proxy: about 20 minutes of both cores on a fresh machine, nothing once cached. It builds and then runs beside
# the suite, taking the CPU the suite and the loops leave idle (the loops mostly wait on their own clocks). Not
# at a lower priority: on a machine busy with other work, a niced build would starve and the lane never end.
(scripts/cluster-tools.sh && "$@" pytest tests/cluster) >"$log_dir/cluster.log" 2>&1 &
cluster_pid=$!

"$@" pytest "${loop_tests[@]/#/--ignore=}" --ignore=tests/cluster
rest=$?

echo "=== waiting for the cluster tier (it started with the suite) ==="
wait "$cluster_pid"
cluster=$?
cat "$log_dir/cluster.log"
echo "=== waiting for ${loop_tests[*]} (they started with the suite) ==="
wait "$loops_pid"
loops=$?
cat "$log_dir/loops.log"
echo "=== the suite: exit $rest; tests/cluster: exit $cluster; ${loop_tests[*]}: exit $loops ==="
[ "$rest" -eq 0 ] && [ "$cluster" -eq 0 ] && [ "$loops" -eq 0 ]
