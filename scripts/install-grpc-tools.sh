#!/usr/bin/env bash
# Installs the Go tools the operator-tool tests run (server/test/grpc-tools.test.ts,
# cli/test/readme-operating.test.ts), each at a pinned version, built from
# source (tmux, for cli/test/terminal.test.ts, comes from scripts/ensure-test-tools.sh):
#   .tmp/bin/grpcurl            go install github.com/fullstorydev/grpcurl/cmd/grpcurl
#   .tmp/bin/grpc-health-probe  go install github.com/grpc-ecosystem/grpc-health-probe
# Safe to run again: a tool already at its version is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
GRPCURL_VERSION=v1.9.4
GRPC_HEALTH_PROBE_VERSION=v0.4.63
bin="$PWD/.tmp/bin"
mkdir -p "$bin"

# install NAME MODULE VERSION: go install into .tmp/bin unless the stamp says it is there at VERSION
install() {
  local name=$1 module=$2 version=$3 stamp="$bin/.$1.version"
  if [[ -x "$bin/$name" && "$(cat "$stamp" 2>/dev/null)" == "$version" ]]; then return; fi
  echo "installing $name $version into .tmp/bin (go install)"
  GOBIN="$bin" go install "$module@$version"
  echo "$version" >"$stamp"
}
install grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl "$GRPCURL_VERSION"
install grpc-health-probe github.com/grpc-ecosystem/grpc-health-probe "$GRPC_HEALTH_PROBE_VERSION"

