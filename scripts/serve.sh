#!/usr/bin/env bash
# Install fingerspell (serving only: no TensorFlow) into .venv and start the web app on the
# bundled default model at http://127.0.0.1:5000. Extra arguments go to `fingerspell serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3-venv >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
# Two malloc arenas: after a burst of large /predict bodies memory returns to where it started
# (bench/bench_burst.py: 314 MB after against 313 MB before; glibc's default kept ~40-80 MB more).
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"
exec .venv/bin/fingerspell serve "$@"
