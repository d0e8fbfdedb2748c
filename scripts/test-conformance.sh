#!/usr/bin/env bash
# Runs the Connect conformance suite (connectrpc/conformance, the version in
# scripts/conformance-version.sh) against Maxine as the server under test:
# server/test/conformance/server.ts mounts the suite's ConformanceService on
# Maxine's pipeline. Runs with MAXINE_FAST_PATH=on (Maxine's framing) and
# off (connect-es's, the reference, against config-connect-es.yaml: what
# connect-es does); fails on any failure. No known-failing lists, no skips.
# See docs/conformance.md.
#
#   scripts/test-conformance.sh           both framings
#   scripts/test-conformance.sh on        Maxine's framing only
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/conformance-version.sh
dir=server/test/conformance
bin="$PWD/.tmp/bin"
runner="$bin/connectconformance"
if [[ ! -x "$runner" || "$("$runner" --version 2>/dev/null)" != *"${CONFORMANCE_VERSION#v}"* ]]; then
  echo "installing connectconformance ${CONFORMANCE_VERSION} into .tmp/bin"
  GOBIN="$bin" go install "connectrpc.com/conformance/cmd/connectconformance@${CONFORMANCE_VERSION}"
fi
# The server under test, compiled with the server's sources (tsc, no loader);
# the server imports the generated registry types from the built SDK.
[[ -d sdks/typescript/dist ]] || npm run build --workspace sdks/typescript
npx tsc -p "$dir/tsconfig.json"
server=(node .tmp/conformance/test/conformance/server.js)

# run MODE CONFIG: the runner's summary, or its whole output when it fails.
run() {
  local mode=$1 conf=$2
  local out=".tmp/conformance-$mode.log"
  echo "conformance (MAXINE_FAST_PATH=$mode, $conf):"
  local rc=0
  MAXINE_FAST_PATH=$mode "$runner" --mode server --conf "$conf" --parallel 2 --max-servers 2 \
    -- "${server[@]}" >"$out" 2>&1 || rc=$?
  if [[ $rc -ne 0 ]]; then
    cat "$out"
  else
    grep -E "^Total cases|passed, |failed as expected" "$out" | sed 's/^/  /'
  fi
  return $rc
}

modes=${1:-on off}
status=0
for mode in $modes; do
  case $mode in
    on) run on "$dir/config.yaml" || status=1 ;;
    # The reference framing claims only what connect-es does (config-connect-es.yaml).
    off) run off "$dir/config-connect-es.yaml" || status=1 ;;
    *) echo "unknown mode $mode (on, off)" >&2; exit 2 ;;
  esac
done
exit $status
