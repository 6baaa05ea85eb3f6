#!/usr/bin/env bash
# `make colcon`: colcon build + colcon test as on a ROS 2 machine (the venv's colcon and ROS wheels), and
# fail when colcon ran no test at all (colcon falls back to unittest and reports "Ran 0 tests" as green
# when the package declares no pytest test dependency). Extra arguments go to pytest (--pytest-args).
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
export AMENT_PREFIX_PATH=$VIRTUAL_ENV ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
colcon build --base-paths .
pytest_args=()
[ $# -gt 0 ] && pytest_args=(--pytest-args "$@")
colcon test --base-paths . --event-handlers console_direct+ "${pytest_args[@]}"
result=$(colcon test-result --all --verbose) || { echo "$result"; exit 1; }
echo "$result"
summary=$(echo "$result" | grep -E '^Summary: ' | tail -1)
tests=$(echo "$summary" | sed -E 's/^Summary: ([0-9]+) tests.*/\1/')
if [ -z "$tests" ] || [ "$tests" -eq 0 ]; then
  echo "make colcon: colcon ran no test (${summary:-no summary})" >&2
  exit 1
fi
