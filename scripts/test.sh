#!/usr/bin/env bash
# Run the test suite in the project's venv (scripts/setup.sh first). Extra arguments go to pytest.
# Node tests talk over real DDS on loopback only, in their own ROS_DOMAIN_ID (test/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
exec .venv/bin/python -m pytest "$@"
