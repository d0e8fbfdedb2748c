#!/usr/bin/env bash
# The README's test command (`npm ci && npm test`) must pass on a fresh
# machine: this installs the system tools the tests need when they are
# missing, from Debian's archive (curl for the README's examples,
# redis-server for the Redis-mode tests, which start their own on free
# ports, openssl for the TLS tests' certificates, tmux for the CLI's
# terminal test, chromium for the dashboard's browser tests, driven by
# playwright-core, which downloads no browser). Go tools the tests run
# (conformance runner) are installed with `go install` at pinned versions by
# their own scripts. Without root or apt-get, it says what to install and
# fails: the suites that need a tool never skip.
set -euo pipefail

need=()
command -v curl >/dev/null || need+=(curl)
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v openssl >/dev/null || need+=(openssl)
command -v tmux >/dev/null || need+=(tmux)
[ -x "${MAXINE_CHROMIUM:-/usr/bin/chromium}" ] || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0

echo "ensure-test-tools: installing ${need[*]} (apt-get)"
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "ensure-test-tools: missing ${need[*]}; install them first (Debian: sudo apt-get install -y ${need[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq "${need[@]}" >/dev/null
for tool in curl redis-server redis-cli openssl tmux; do
  command -v "$tool" >/dev/null || { echo "ensure-test-tools: $tool still missing after apt-get" >&2; exit 1; }
done
[ -x "${MAXINE_CHROMIUM:-/usr/bin/chromium}" ] || { echo "ensure-test-tools: chromium still missing after apt-get (MAXINE_CHROMIUM=${MAXINE_CHROMIUM:-/usr/bin/chromium})" >&2; exit 1; }
