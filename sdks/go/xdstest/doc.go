// Package xdstest holds the tests of Maxine's xDS control plane (the
// envoy.service.discovery.v3.AggregatedDiscoveryService the server serves
// on its one port) with clients that are not Maxine's: grpc-go's own xDS
// client (google.golang.org/grpc/xds) dialing xds:///payments, and raw ADS
// streams whose resources are checked with go-control-plane's generated
// ValidateAll (Envoy's protoc-gen-validate rules).
//
// It has no code outside its tests, so that importing the Go SDK never
// pulls in grpc-go's xDS packages. Run it with
//
//	go test -race ./xdstest/
//
// after `npm run build` at the repository root (the tests run the built
// server, like the SDK's own).
package xdstest
