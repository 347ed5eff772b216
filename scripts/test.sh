#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine, then run the whole suite.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
command -v go >/dev/null 2>&1 || need_apt+=(golang-go)  # go tool pprof reads the pprof export
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "scripts/test.sh: installing ${need_apt[*]} with apt-get" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
npm ci --prefix tests/js --no-audit --no-fund --loglevel=error

# The default run leaves out the long end-to-end suites marked `heavy` (see tests/conftest.py);
# `bash scripts/test.sh --all` (or MCPPROF_TEST_ALL=1) runs every test.
select=(-m "not heavy")
if [ "${1:-}" = "--all" ]; then shift; select=(); fi
[ "${MCPPROF_TEST_ALL:-0}" = "1" ] && select=()
exec .venv/bin/python -m pytest -q -p no:cacheprovider "${select[@]}" "$@"
