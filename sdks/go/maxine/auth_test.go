package maxine_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
	"github.com/maxine-registry/maxine/sdks/go/internal/testserver"
	"github.com/maxine-registry/maxine/sdks/go/maxine"
)

// The SDK's credentials accepted (and refused) end to end: the real server
// with a tokens file and a policy authenticates each call and owns the
// instances a session registers to the token's principal.

const (
	goWriterToken = "tok-go-writer-6d1f0a"
	goReaderToken = "tok-go-reader-2c9e7b"
	goRootToken   = "tok-go-root-4a8b3e"
)

func hashToken(t string) string {
	sum := sha256.Sum256([]byte(t))
	return hex.EncodeToString(sum[:])
}

// startAuthServer runs a server of the test's own with a tokens file (svc-payments: writer, dashboard: reader, root: admin) and a policy.
func startAuthServer(t *testing.T) *testserver.Server {
	t.Helper()
	dir := t.TempDir()
	tokens := "svc-payments sha256:" + hashToken(goWriterToken) + " writer\n" +
		"dashboard sha256:" + hashToken(goReaderToken) + " reader\n" +
		"root sha256:" + hashToken(goRootToken) + " admin\n"
	policy := `roles:
  writer:
    - { permissions: [register], namespaces: ["*"], services: ["payments*"] }
  reader:
    - { permissions: [read], namespaces: ["*"], services: ["*"] }
  admin:
    - { permissions: [admin], namespaces: ["*"], services: ["*"] }
`
	for name, text := range map[string]string{"tokens": tokens, "policy.yaml": policy} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return startServer(t, map[string]string{
		"MAXINE_AUTH_TOKENS_FILE": filepath.Join(dir, "tokens"),
		"MAXINE_AUTH_POLICY_FILE": filepath.Join(dir, "policy.yaml"),
	})
}

func TestAuthSessionRegistersAndBeatsAsTheTokensPrincipal(t *testing.T) {
	srv := startAuthServer(t)
	ctx := context.Background()
	var errs atomic.Int64
	s, err := maxine.NewSession(newClient(t, srv.URL, maxine.WithToken(goWriterToken)), maxine.WithSessionEvents(func(e maxine.SessionEvent) {
		if e.Err != nil {
			errs.Add(1)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if _, err := s.Register(ctx, &registryv1.Instance{Service: "payments", InstanceId: "p-1", Host: "127.0.0.1", Port: 8080}, maxine.WithTTL(300*time.Millisecond)); err != nil {
		t.Fatalf("Register with a valid token: %v", err)
	}
	time.Sleep(time.Second) // several TTLs: only the session's beats keep it
	got := discoverAll(t, newClient(t, srv.URL, maxine.WithToken(goRootToken)), "", "payments")
	if len(got) != 1 || got[0].GetInstanceId() != "p-1" || got[0].GetOwner() != "svc-payments" {
		t.Fatalf("Discover: %v, want p-1 owned by svc-payments", got)
	}
	if errs.Load() != 0 {
		t.Fatalf("the session reported %d errors", errs.Load())
	}
}

func TestAuthWrongTokenIsUnauthenticated(t *testing.T) {
	srv := startAuthServer(t)
	ctx := context.Background()
	s, err := maxine.NewSession(newClient(t, srv.URL, maxine.WithToken("tok-not-issued-9191")))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	_, err = s.Register(ctx, &registryv1.Instance{Service: "payments", InstanceId: "p-2", Host: "127.0.0.1", Port: 1})
	if connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), "the bearer token is not one this server knows") || strings.Contains(err.Error(), "tok-not-issued") {
		t.Fatalf("a wrong token: got %v, want UNAUTHENTICATED saying the token is unknown, without the token", err)
	}
	_, err = newClient(t, srv.URL).RPC.ListServices(ctx, connect.NewRequest(&registryv1.ListServicesRequest{}))
	if connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), "no credentials") {
		t.Fatalf("no token: got %v, want UNAUTHENTICATED saying no credentials", err)
	}
	_, err = newClient(t, srv.URL, maxine.WithToken(goReaderToken)).RPC.Register(ctx, connect.NewRequest(&registryv1.RegisterRequest{Instance: &registryv1.Instance{Service: "payments", InstanceId: "p-3", Host: "127.0.0.1", Port: 1}}))
	if connect.CodeOf(err) != connect.CodePermissionDenied || !strings.Contains(err.Error(), "lacks the register permission") {
		t.Fatalf("a read-only token registering: got %v, want PERMISSION_DENIED naming the permission", err)
	}
}

func TestAuthTokenSourceIsAccepted(t *testing.T) {
	srv := startAuthServer(t)
	ctx := context.Background()
	var asked atomic.Int64
	c := newClient(t, srv.URL, maxine.WithTokenSource(func(context.Context) (string, error) { asked.Add(1); return goWriterToken, nil }))
	s, err := maxine.NewSession(c)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if _, err := s.Register(ctx, &registryv1.Instance{Service: "payments-eu", InstanceId: "e-1", Host: "127.0.0.1", Port: 1}, maxine.WithTTL(300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	if asked.Load() < 2 {
		t.Fatalf("the token source was asked %d times, want Register and the Heartbeat stream", asked.Load())
	}
	got := discoverAll(t, newClient(t, srv.URL, maxine.WithToken(goReaderToken)), "", "payments-eu")
	if len(got) != 1 || got[0].GetOwner() != "svc-payments" {
		t.Fatalf("Discover: %v, want e-1 owned by svc-payments", got)
	}
}

func TestAuthReadOnlyWatcherSeesChanges(t *testing.T) {
	srv := startAuthServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var mu sync.Mutex
	var added []string
	w, err := newClient(t, srv.URL, maxine.WithToken(goReaderToken)).Watch(ctx, maxine.WithServices("payments-us"), maxine.WithOnChange(func(ch maxine.Change) {
		if ch.Type == maxine.ChangeAdded {
			mu.Lock()
			added = append(added, ch.Instance.GetInstanceId()+"@"+ch.Instance.GetOwner())
			mu.Unlock()
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Ready(ctx); err != nil {
		t.Fatalf("a read-only watcher: %v", err)
	}
	if _, err := newClient(t, srv.URL, maxine.WithToken(goWriterToken)).RPC.Register(ctx, connect.NewRequest(&registryv1.RegisterRequest{Instance: &registryv1.Instance{Service: "payments-us", InstanceId: "u-1", Host: "127.0.0.1", Port: 1}})); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the watcher's ADDED change", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(added) == 1 && added[0] == "u-1@svc-payments"
	})
}
