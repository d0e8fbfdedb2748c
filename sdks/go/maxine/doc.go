// Package maxine is the Go SDK of Maxine, a gRPC-first service registry.
//
// A [Client] talks to a Maxine server over Connect or gRPC (HTTP/2, with
// or without TLS). On top of it:
//
//   - [Session] keeps a process's instances registered over one Heartbeat
//     stream: it beats at a third of the smallest lease TTL, reconnects with
//     jittered exponential backoff, registers again any instance the server
//     forgot (after a restart, say), changes status or drains, and
//     deregisters everything on Close.
//   - [Watcher] is a live local cache of a service's instances fed by
//     WatchServices; it resumes from its last revision after a reconnect and
//     picks instances locally ([Watcher.Pick]) with the same algorithms as
//     the server's Discover, so consistent hashing agrees everywhere.
//   - [ResolverBuilder] is a grpc-go resolver for targets like
//     "maxine:///payments?namespace=prod": grpc-go clients follow the
//     service's SERVING instances as the watch stream reports them, with no
//     polling.
//
// The generated code this package builds on lives in
// github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1 (messages
// and grpc-go stubs) and its registryv1connect subpackage (connect-go).
//
// Errors from the server are *connect.Error values: use
// [connect.CodeOf] or errors.As. Errors of this package match
// [ErrClosed], [ErrSessionLost] and [*ValidationError] with errors.Is and
// errors.As.
package maxine
