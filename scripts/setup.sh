#!/usr/bin/env bash
# Set up depthmarks_ros from nothing, idempotently:
#   1. the few Debian packages the Python wheels need (libusb for open3d, libGL/glib for OpenCV);
#   2. a virtual environment in .venv (Python 3.11: the ROS 2 kilted wheels are cp311);
#   3. every Python dependency, pinned (requirements.txt + constraints.txt), including ROS 2
#      kilted core from PyPI. Re-running does nothing unless the pins changed;
#   4. this package itself (a copy, not editable: `pip install --no-deps .`): the console scripts
#      `depthmarks` and one per node in $VENV/bin, the same under $VENV/lib/depthmarks_ros/ (where
#      launch_ros looks for a package's executables), launch/, config/ and package.xml under
#      $VENV/share/depthmarks_ros and the ament index marker, so that with
#      AMENT_PREFIX_PATH=$VENV `ros2 run`/launch_ros and ament_index find the package. Re-installed
#      whenever the package's files changed (a content hash; `depthmarks` warns while the installed
#      copy is older than the checkout, e.g. run by hand after a git pull). Code run from the checkout
#      (`python -m depthmarks_ros...`, the tests: repo root first on sys.path) uses the checkout.
# Beside a real apt ROS 2 install, run with DEPTHMARKS_SYSTEM_ROS=1: the venv then sees the
# system's rclpy and message packages (--system-site-packages) and the ros-* wheels are skipped;
# see docs/INSTALL.md (rosdep + colcon).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
SYSTEM_ROS=${DEPTHMARKS_SYSTEM_ROS:-0}

APT_PACKAGES=(libusb-1.0-0 libgl1 libglib2.0-0)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in python3.11 python3; do
    if command -v "$c" >/dev/null && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then PY=$c; break; fi
  done
fi
[ -n "$PY" ] || { echo "setup: Python 3.11 is required (the ROS 2 kilted wheels are cp311)" >&2; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  if [ "$SYSTEM_ROS" = 1 ]; then "$PY" -m venv --system-site-packages "$VENV"; else "$PY" -m venv "$VENV"; fi
fi

reqs=requirements.txt
if [ "$SYSTEM_ROS" = 1 ]; then
  reqs=$(mktemp); grep -v -E '^ros-' requirements.txt > "$reqs"
fi
want=$( (cat "$reqs" constraints.txt; echo "system_ros=$SYSTEM_ROS") | sha256sum | cut -d' ' -f1)
stamp="$VENV/.depthmarks-setup"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing pinned Python packages into $VENV (first time: a few minutes)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip==24.3.1
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$reqs" -c constraints.txt
  echo "$want" > "$stamp"
fi

# 4. the package itself
# its stamp: the content hash of what the install copies and a cheap signature of those files, taken before
# the install (depthmarks_ros/cli/install_check.py, run by path: the standard library only, so it needs no
# installed copy; `depthmarks` reads the stamp to warn when this copy differs from the checkout: run by hand
# after a git pull, before setup)
check=("$VENV/bin/python" -P depthmarks_ros/cli/install_check.py)   # -P: its folder not on sys.path
pkg_line=$("${check[@]}" .)
pkg_stamp=$("${check[@]}" --stamp-path "$VENV")
installed=$(cat "$pkg_stamp" 2>/dev/null || true)
if [ "${installed%% *}" != "${pkg_line%% *}" ] || [ ! -x "$VENV/bin/depthmarks" ]; then
  echo "setup: installing depthmarks_ros into $VENV"
  rm -rf build/lib build/bdist.*      # setuptools never prunes build/lib: a file deleted from the checkout would ship again
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation .
  "$VENV/bin/python" scripts/link_executables.py "$VENV"
  echo "$pkg_line" > "$pkg_stamp"
elif [ "$installed" != "$pkg_line" ]; then
  echo "$pkg_line" > "$pkg_stamp"       # the same content, its files touched (or an older stamp): the new signature
fi
echo "setup: ready ($VENV)"
