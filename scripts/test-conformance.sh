#!/usr/bin/env bash
# Runs the Connect conformance suite (connectrpc/conformance, the version in
# scripts/conformance-version.sh) against Maxine as the server under test:
# server/test/conformance/server.ts mounts the suite's ConformanceService on
# Maxine's pipeline. Runs with MAXINE_FAST_PATH=on (Maxine's framing) and
# off (connect-es's, the reference, against config-connect-es.yaml: what
# connect-es does); fails on any failure. No known-failing lists, no skips.
# A third run serves the suite from two worker processes on a private
# redis-server (MAXINE_WORKERS=2, MAXINE_STORE=redis, Maxine's framing;
# docs/workers.md): the suite's connections land on both workers. A fourth
# serves it from two workers on the memory store (the registry in the
# primary, the workers its replicas over IPC).
# See docs/conformance.md.
#
#   scripts/test-conformance.sh                  all four runs
#   scripts/test-conformance.sh on               Maxine's framing only
#   scripts/test-conformance.sh workers          two workers on Redis only
#   scripts/test-conformance.sh workers-memory   two workers on the memory store only
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

# run MODE CONFIG [NAME=VALUE...]: the runner's summary, or its whole output when it fails.
run() {
  local mode=$1 conf=$2
  shift 2
  local out=".tmp/conformance-$mode${1:+-workers}${2:+-${2#MAXINE_STORE=}}.log"
  echo "conformance (MAXINE_FAST_PATH=$mode${1:+ $*}, $conf):"
  local rc=0
  env "$@" MAXINE_FAST_PATH=$mode "$runner" --mode server --conf "$conf" --parallel 2 --max-servers 2 \
    -- "${server[@]}" >"$out" 2>&1 || rc=$?
  if [[ $rc -ne 0 ]]; then
    cat "$out"
  else
    grep -E "^Total cases|passed, |failed as expected" "$out" | sed 's/^/  /'
  fi
  return $rc
}

# redis_start runs a private redis-server on a free loopback port (no persistence) and sets
# redis_url; the EXIT trap stops it by its PID. Missing redis-server fails the run: nothing skips.
redis_pid=""
redis_dir=""
redis_start() {
  command -v redis-server >/dev/null || { echo "redis-server not found: install it (apt-get install -y redis-server); the workers run needs it" >&2; return 1; }
  local port
  port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
  redis_dir=$(mktemp -d)
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$redis_dir" >"$redis_dir/log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 100); do
    grep -q "Ready to accept connections" "$redis_dir/log" && { redis_url="redis://127.0.0.1:$port"; return 0; }
    sleep 0.1
  done
  echo "redis-server did not start in 10 s: $(cat "$redis_dir/log")" >&2
  return 1
}
redis_stop() {
  [[ -n "$redis_pid" ]] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  [[ -n "$redis_dir" ]] && rm -rf "$redis_dir"
  redis_pid=""
  redis_dir=""
}
trap redis_stop EXIT

modes=${1:-on off workers workers-memory}
status=0
for mode in $modes; do
  case $mode in
    on) run on "$dir/config.yaml" || status=1 ;;
    # The reference framing claims only what connect-es does (config-connect-es.yaml).
    off) run off "$dir/config-connect-es.yaml" || status=1 ;;
    workers)
      if redis_start; then
        run on "$dir/config.yaml" MAXINE_WORKERS=2 MAXINE_STORE=redis MAXINE_REDIS_URL="$redis_url" || status=1
      else
        status=1
      fi
      redis_stop
      ;;
    workers-memory) run on "$dir/config.yaml" MAXINE_WORKERS=2 MAXINE_STORE=memory MAXINE_DATA_DIR=off || status=1 ;;
    *) echo "unknown mode $mode (on, off, workers, workers-memory)" >&2; exit 2 ;;
  esac
done
exit $status
