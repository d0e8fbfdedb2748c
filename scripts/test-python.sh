#!/usr/bin/env bash
# Tests the Python SDK (sdks/python): makes sure sdks/python/.venv holds the
# pinned development requirements, installs ./sdks/python into it, runs
# `mypy --strict` on the hand-written package, then pytest. The tests start
# the real, built server (server/dist/main.js) on free loopback ports: run
# `npm run build` first. Works from a clean clone with PyPI reachable.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f server/dist/main.js ]; then
  echo "test-python: server/dist/main.js is missing: run \`npm run build\` first (the tests run the real server)" >&2
  exit 1
fi
command -v node >/dev/null || { echo "test-python: node not found: the tests run the real server with Node.js 20+" >&2; exit 1; }

sdks/python/tools/ensure-venv.sh
py=sdks/python/.venv/bin/python
echo "test-python: $("$py" --version), installing ./sdks/python"
"$py" -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall ./sdks/python

echo "test-python: mypy --strict (sdks/python/src/maxine)"
(cd sdks/python && .venv/bin/python -m mypy --strict)

echo "test-python: pytest"
cd sdks/python
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
