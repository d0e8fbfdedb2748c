#!/usr/bin/env bash
# Generates TypeScript for the conformance suite's protos
# (connectrpc.com/conformance, pinned below) into server/test/conformance/gen,
# from the Go module cache (the Go module proxy is the only source needed).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/conformance-version.sh
dir=$(go mod download -json "connectrpc.com/conformance@${CONFORMANCE_VERSION}" | node -e 'let s="";process.stdin.on("data",(d)=>(s+=d)).on("end",()=>process.stdout.write(JSON.parse(s).Dir))')
npx buf generate "$dir/proto" --template server/test/conformance/buf.gen.yaml \
  --path "$dir/proto/connectrpc/conformance/v1/service.proto" \
  --path "$dir/proto/connectrpc/conformance/v1/server_compat.proto" \
  --path "$dir/proto/connectrpc/conformance/v1/config.proto"
