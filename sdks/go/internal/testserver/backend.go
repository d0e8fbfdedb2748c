package testserver

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// BackendHeader is the response header in which a named Backend (and a
// backend in another process) says who answered, so that a client sees
// where each call went.
const BackendHeader = "maxine-test-backend"

// Backend is a tiny real gRPC service (the standard health service) on a
// loopback port that counts the calls it gets, to see where a client's
// traffic goes.
type Backend struct {
	// Port is the port it listens on (127.0.0.1).
	Port int
	// Name is sent in BackendHeader with every answer (none when empty).
	Name string

	srv     *grpc.Server
	calls   atomic.Int64
	failing atomic.Bool
	mu      sync.Mutex
	first   time.Time
}

// StartBackend serves the health service on a free loopback port.
func StartBackend() (*Backend, error) { return StartNamedBackend("") }

// StartNamedBackend is StartBackend for a backend that names itself in
// BackendHeader.
func StartNamedBackend(name string) (*Backend, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &Backend{Port: l.Addr().(*net.TCPAddr).Port, Name: name}
	b.srv = grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if b.calls.Add(1) == 1 {
			b.mu.Lock()
			b.first = time.Now()
			b.mu.Unlock()
		}
		if b.Name != "" {
			_ = grpc.SetHeader(ctx, metadata.Pairs(BackendHeader, b.Name))
		}
		if b.failing.Load() {
			return nil, status.Error(codes.Unavailable, "backend told to fail")
		}
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(b.srv, health.NewServer())
	go func() { _ = b.srv.Serve(l) }()
	return b, nil
}

// Calls counts the calls served so far.
func (b *Backend) Calls() int64 { return b.calls.Load() }

// FirstCall is when the first call arrived (zero before).
func (b *Backend) FirstCall() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.first
}

// SetFailing makes every later call answer UNAVAILABLE (true) or be served
// again (false).
func (b *Backend) SetFailing(failing bool) { b.failing.Store(failing) }

// Stop ends the server and its connections.
func (b *Backend) Stop() { b.srv.Stop() }
