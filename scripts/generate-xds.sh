#!/usr/bin/env bash
# Generates protobuf-es TypeScript for the Envoy xDS API that Maxine's xDS
# control plane serves (server/src/xds/, issue 18) into server/src/xds/gen:
# the aggregated discovery service and the Listener, RouteConfiguration,
# Cluster, ClusterLoadAssignment, HttpConnectionManager and Router messages,
# with every file they import. The protos come from the pinned npm package
# @grpc/grpc-js-xds (root devDependency), whose deps/ folder ships four
# trees (envoy-api, xds, googleapis, protoc-gen-validate); buf needs one
# root per module, so they are copied into a temporary buf workspace of four
# modules (only the folders the files need: protoc-gen-validate's test
# protos stay out). One exception: the package's copy of
# validate/validate.proto predates the rules its envoy-api uses
# (StringRules.ignore_empty), so buf cannot compile the Envoy files with it;
# validate.proto comes instead from protoc-gen-validate v1.3.3, the Go module
# that sdks/go's module graph already pins (go-control-plane's dependency),
# fetched like the conformance protos (scripts/generate-conformance.sh)
# through the Go module proxy. Only the server imports this code: the SDKs
# do not grow.
set -euo pipefail
cd "$(dirname "$0")/.."
deps=node_modules/@grpc/grpc-js-xds/deps
if [ ! -d "$deps/envoy-api" ]; then
  echo "generate-xds: $deps is missing: run npm ci (the protos come from the pinned @grpc/grpc-js-xds)" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/envoy-api" "$work/xds" "$work/googleapis" "$work/protoc-gen-validate"
cp -R "$deps/envoy-api/envoy" "$work/envoy-api/"
cp -R "$deps/xds/xds" "$deps/xds/udpa" "$work/xds/"
cp -R "$deps/googleapis/google" "$work/googleapis/"
pgv=$(go mod download -json "github.com/envoyproxy/protoc-gen-validate@v1.3.3" | node -e 'let s="";process.stdin.on("data",(d)=>(s+=d)).on("end",()=>process.stdout.write(JSON.parse(s).Dir))')
mkdir -p "$work/protoc-gen-validate/validate"
cp "$pgv/validate/validate.proto" "$work/protoc-gen-validate/validate/"
cat > "$work/buf.yaml" <<'YAML'
version: v2
modules:
  - path: envoy-api
  - path: xds
  - path: googleapis
  - path: protoc-gen-validate
YAML
out=$PWD/server/src/xds/gen
cat > "$work/buf.gen.yaml" <<YAML
version: v2
clean: true
plugins:
  - local: $PWD/node_modules/.bin/protoc-gen-es
    out: $out
    include_imports: true
    opt:
      - target=ts
      - import_extension=js
YAML
e=envoy-api/envoy
(cd "$work" && npx --prefix "$OLDPWD" buf generate \
  --path "$e/service/discovery/v3/ads.proto" \
  --path "$e/config/listener/v3/listener.proto" \
  --path "$e/config/route/v3/route.proto" \
  --path "$e/config/cluster/v3/cluster.proto" \
  --path "$e/config/endpoint/v3/endpoint.proto" \
  --path "$e/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto" \
  --path "$e/extensions/filters/http/router/v3/router.proto" \
  --path "$e/extensions/upstreams/http/v3/http_protocol_options.proto")
