package maxine_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
	"github.com/maxine-registry/maxine/sdks/go/internal/testserver"
	"github.com/maxine-registry/maxine/sdks/go/maxine"
)

// The SDK's token and TLS options against a real TLS server: certificates
// made by scripts/make-test-certs.sh for the test, and the header-echo
// fixture (the built server plus an interceptor that prints each call's
// authorization header and mTLS identity), so the tests check what the
// client sends. The server's acceptance of tokens is tested server-side.

const spiffeID = "spiffe://maxine.test/ns/prod/sa/payments"

type echoedCall struct {
	Method        string  `json:"method"`
	Protocol      string  `json:"protocol"`
	Authorization *string `json:"authorization"`
	PeerIdentity  *string `json:"peerIdentity"`
}

// echoed lists the calls the fixture printed whose authorization header starts with prefix.
func echoed(srv *testserver.Server, prefix string) []echoedCall {
	var out []echoedCall
	for _, line := range srv.Logs() {
		var rec struct {
			Msg string `json:"msg"`
			echoedCall
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "test: call" && rec.Authorization != nil && strings.HasPrefix(*rec.Authorization, prefix) {
			out = append(out, rec.echoedCall)
		}
	}
	return out
}

type tlsServer struct {
	*testserver.Server
	dir string
}

func (s tlsServer) file(name string) string { return filepath.Join(s.dir, name) }

// startTLSServer makes certificates and runs the header-echo server with TLS
// (a copy of server.pem it can replace) and MAXINE_TLS_CLIENT_AUTH=request.
func startTLSServer(t *testing.T) tlsServer {
	t.Helper()
	dir := t.TempDir()
	if err := testserver.MakeCerts(dir); err != nil {
		t.Fatal(err)
	}
	s := tlsServer{dir: dir}
	copyFile(t, s.file("server.pem"), s.file("live.pem"))
	copyFile(t, s.file("server-key.pem"), s.file("live-key.pem"))
	env := map[string]string{
		"MAXINE_TLS_CERT":            s.file("live.pem"),
		"MAXINE_TLS_KEY":             s.file("live-key.pem"),
		"MAXINE_TLS_CA":              s.file("ca.pem"),
		"MAXINE_TLS_CLIENT_AUTH":     "request",
		"MAXINE_TLS_RELOAD_INTERVAL": "0ms",
	}
	for k, v := range sharedEnv {
		env[k] = v
	}
	srv, err := testserver.StartEntry(testserver.HeaderEcho(), env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Kill() })
	s.Server = srv
	return s
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to+".tmp", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(to+".tmp", to); err != nil {
		t.Fatal(err)
	}
}

func TestTLSSendsTokenAndClientCertificate(t *testing.T) {
	srv := startTLSServer(t)
	if !strings.HasPrefix(srv.URL, "https://") {
		t.Fatalf("URL %q: want https", srv.URL)
	}
	for _, p := range []maxine.Protocol{maxine.ProtocolGRPC, maxine.ProtocolConnect} {
		token := "go-static-" + p.String()
		c := newClient(t, srv.URL, maxine.WithProtocol(p), maxine.WithToken(token),
			maxine.WithTLSFiles(maxine.TLSFiles{CAFile: srv.file("ca.pem"), CertFile: srv.file("client.pem"), KeyFile: srv.file("client-key.pem")}))
		if _, err := c.RPC.ListServices(context.Background(), connect.NewRequest(&registryv1.ListServicesRequest{})); err != nil {
			t.Fatalf("%v: ListServices over TLS: %v", p, err)
		}
		// the fixture prints the call before serving it; its stdout is read by another goroutine
		eventually(t, 5*time.Second, "the server's line for "+token, func() bool { return len(echoed(srv.Server, "Bearer "+token)) > 0 })
		calls := echoed(srv.Server, "Bearer "+token)
		if len(calls) != 1 || calls[0].Method != "ListServices" || calls[0].Protocol != p.String() || calls[0].PeerIdentity == nil || *calls[0].PeerIdentity != spiffeID {
			t.Fatalf("%v: the server saw %+v, want one ListServices with Bearer %s and peer %s", p, calls, token, spiffeID)
		}
	}
}

func TestTokenSourceIsAskedForEveryCallAndStream(t *testing.T) {
	srv := startTLSServer(t)
	var n atomic.Int64
	c := newClient(t, srv.URL,
		maxine.WithTokenSource(func(context.Context) (string, error) { return "go-refresh-" + string(rune('a'+n.Add(1)-1)), nil }),
		maxine.WithTLSFiles(maxine.TLSFiles{CAFile: srv.file("ca.pem")}))
	ctx := context.Background()
	for range 2 {
		if _, err := c.RPC.ListServices(ctx, connect.NewRequest(&registryv1.ListServicesRequest{})); err != nil {
			t.Fatal(err)
		}
	}
	s, err := maxine.NewSession(c)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if _, err := s.Register(ctx, &registryv1.Instance{Service: "go-tokens", InstanceId: "t-1", Host: "127.0.0.1", Port: 1}, maxine.WithTTL(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the heartbeat stream's token", func() bool {
		for _, c := range echoed(srv.Server, "Bearer go-refresh-") {
			if c.Method == "Heartbeat" {
				return true
			}
		}
		return false
	})
	// every call's line is printed before the call is served, so all are read by now but the last ones may lag: wait for n
	eventually(t, 5*time.Second, "a line per token", func() bool { return int64(len(echoed(srv.Server, "Bearer go-refresh-"))) >= n.Load() })
	calls := echoed(srv.Server, "Bearer go-refresh-")
	if *calls[0].Authorization != "Bearer go-refresh-a" || *calls[1].Authorization != "Bearer go-refresh-b" {
		t.Fatalf("first tokens %q %q, want go-refresh-a then -b", *calls[0].Authorization, *calls[1].Authorization)
	}
	seen := map[string]bool{}
	for _, c := range calls {
		seen[*c.Authorization] = true
		if c.PeerIdentity != nil {
			t.Fatalf("no client certificate, yet the server saw identity %q", *c.PeerIdentity)
		}
	}
	if len(seen) != len(calls) || int64(len(calls)) != n.Load() {
		t.Fatalf("%d calls with %d distinct tokens, source asked %d times: want one fresh token per call", len(calls), len(seen), n.Load())
	}
}

func TestTokenAndTLSOptionErrors(t *testing.T) {
	_, err := maxine.NewClient("https://127.0.0.1:1", maxine.WithToken("sec\nret"))
	var ve *maxine.ValidationError
	if !errors.As(err, &ve) || ve.Field != "token" || strings.Contains(err.Error(), "sec") {
		t.Fatalf("a token with a newline: got %v, want a ValidationError on token that does not show it", err)
	}
	if _, err := maxine.NewClient("https://127.0.0.1:1", maxine.WithTLSFiles(maxine.TLSFiles{CAFile: "/nonexistent/ca.pem"})); err == nil || !strings.Contains(err.Error(), "tls.CAFile") {
		t.Fatalf("a missing CA file: got %v", err)
	}
	if _, err := maxine.NewClient("https://127.0.0.1:1", maxine.WithTLSFiles(maxine.TLSFiles{CertFile: "/x.pem"})); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Fatalf("a certificate without a key: got %v", err)
	}
	srv := startTLSServer(t)
	c := newClient(t, srv.URL, maxine.WithTLSFiles(maxine.TLSFiles{CAFile: srv.file("ca.pem")}),
		maxine.WithTokenSource(func(context.Context) (string, error) { return "", errors.New("identity provider down") }))
	_, err = c.RPC.ListServices(context.Background(), connect.NewRequest(&registryv1.ListServicesRequest{}))
	if connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), "identity provider down") {
		t.Fatalf("a failing token source: got %v, want UNAUTHENTICATED naming its error", err)
	}
}

func TestSessionSurvivesCertificateReload(t *testing.T) {
	srv := startTLSServer(t)
	ctx := context.Background()
	c := newClient(t, srv.URL, maxine.WithTLSFiles(maxine.TLSFiles{CAFile: srv.file("ca.pem")}))
	var mu sync.Mutex
	var events []maxine.SessionEvent
	s, err := maxine.NewSession(c, maxine.WithSessionEvents(func(ev maxine.SessionEvent) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if _, err := s.Register(ctx, &registryv1.Instance{Service: "go-reload", InstanceId: "r-1", Host: "127.0.0.1", Port: 1}, maxine.WithTTL(300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}

	copyFile(t, srv.file("server-2-key.pem"), srv.file("live-key.pem"))
	copyFile(t, srv.file("server-2.pem"), srv.file("live.pem"))
	if err := srv.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the reload", func() bool {
		for _, l := range srv.Logs() {
			if strings.Contains(l, "TLS certificate reloaded") && strings.Contains(l, "CN=maxine-2") {
				return true
			}
		}
		return false
	})
	ca, err := os.ReadFile(srv.file("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	conn, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(srv.Port), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	cn := conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	conn.Close()
	if cn != "maxine-2" {
		t.Fatalf("a new connection got CN %q, want maxine-2", cn)
	}

	// several TTLs later the instance is still there: the stream kept beating on its old connection
	time.Sleep(time.Second)
	fresh := newClient(t, srv.URL, maxine.WithProtocol(maxine.ProtocolConnect), maxine.WithTLSFiles(maxine.TLSFiles{CAFile: srv.file("ca.pem")}))
	if got := discoverAll(t, fresh, "", "go-reload"); len(got) != 1 || got[0].GetInstanceId() != "r-1" {
		t.Fatalf("after the reload Discover found %v, want r-1", got)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, ev := range events {
		if ev.Kind == maxine.SessionDisconnected {
			t.Fatalf("the session's stream broke across the reload: %v", ev.Err)
		}
	}
}
