# depthmarks_ros: the two README commands are `make run` and `make test`.
.PHONY: setup run test bench colcon clean

setup:
	./scripts/setup.sh

# The main job: the full pipeline on the simulated rig for a fixed time, outputs in output/run.
run: setup
	.venv/bin/python -m depthmarks_ros.cli.main run --duration 20 --output output/run

test: setup
	./scripts/test.sh

# Every benchmark, ours next to the named reference (reads ../shared/data when present; 16 min on a
# fresh 2-core machine with the shared data, 2026-12-07 17:45-18:01, main 38c9cde, load 0.3-3.1, exit 0).
bench: setup
	for b in benchmarks/bench_*.py; do echo "== $$b"; .venv/bin/python $$b || exit 1; done

# colcon build + test as on a ROS 2 machine (the venv's colcon and ROS wheels); fails when no test ran.
colcon: setup
	./scripts/colcon_test.sh

clean:
	rm -rf build install log output .pytest_cache
