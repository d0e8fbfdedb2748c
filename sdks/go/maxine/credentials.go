package maxine

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"connectrpc.com/connect"
)

// TokenSource returns the bearer token for one call. It is called before
// every unary call and every stream the client opens (a Session's heartbeat
// stream, a Watcher's watch, each reconnect), so it can hand out refreshed
// tokens; an error fails that call.
type TokenSource func(ctx context.Context) (string, error)

// WithToken sends "authorization: Bearer <token>" with every call.
func WithToken(token string) ClientOption {
	return func(c *clientConfig) {
		if err := checkToken(token); err != nil {
			c.err = invalid("token", "%s", err)
			return
		}
		c.token = func(context.Context) (string, error) { return token, nil }
	}
}

// WithTokenSource sends "authorization: Bearer <token>" with every call,
// asking source for the token each time (see TokenSource).
func WithTokenSource(source TokenSource) ClientOption {
	return func(c *clientConfig) {
		if source == nil {
			c.err = invalid("token source", "must not be nil")
			return
		}
		c.token = source
	}
}

// TLSFiles names the PEM files of a client's TLS settings for an https://
// server: CAFile holds the CA certificates the server's certificate must
// chain to (empty: the system roots); CertFile and KeyFile, together, are
// the client certificate for mTLS (MAXINE_TLS_CLIENT_AUTH on the server);
// ServerName, when set, is the name checked in the server's certificate
// instead of the URL's host.
type TLSFiles struct {
	CAFile     string
	CertFile   string
	KeyFile    string
	ServerName string
}

// WithTLSFiles reads f into the TLS configuration of the default HTTP
// client; NewClient reports a file that cannot be used.
func WithTLSFiles(f TLSFiles) ClientOption {
	return func(c *clientConfig) {
		cfg, err := TLSConfigFromFiles(f)
		if err != nil {
			c.err = err
			return
		}
		c.tlsConfig = cfg
	}
}

// TLSConfigFromFiles builds a *tls.Config from PEM files (see TLSFiles),
// for WithTLSConfig or an HTTP client of your own.
func TLSConfigFromFiles(f TLSFiles) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, invalid("tls.CAFile", "cannot read %s: %v", f.CAFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, invalid("tls.CAFile", "%s holds no PEM certificate", f.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, invalid("tls.CertFile", "CertFile and KeyFile go together (mTLS needs both)")
	}
	if f.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, invalid("tls.CertFile", "cannot load %s with %s: %v", f.CertFile, f.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// checkToken refuses a token that cannot go in a header. The token itself
// never appears in the error.
func checkToken(token string) error {
	if token == "" {
		return fmt.Errorf("must not be empty")
	}
	if strings.ContainsFunc(token, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("must not hold control characters (the token is not shown)")
	}
	return nil
}

// bearer is the interceptor that sets the authorization header.
type bearer struct{ source TokenSource }

func (b bearer) header(ctx context.Context) (string, error) {
	token, err := b.source(ctx)
	if err != nil {
		return "", connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("token source: %w", err))
	}
	if err := checkToken(token); err != nil {
		return "", invalid("token", "%s", err)
	}
	return "Bearer " + token, nil
}

func (b bearer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		h, err := b.header(ctx)
		if err != nil {
			return nil, err
		}
		req.Header().Set("Authorization", h)
		return next(ctx, req)
	}
}

func (b bearer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		h, err := b.header(ctx)
		if err != nil {
			return failedConn{StreamingClientConn: conn, err: err}
		}
		conn.RequestHeader().Set("Authorization", h)
		return conn
	}
}

func (b bearer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// failedConn is a stream that never opened because its token could not be had.
type failedConn struct {
	connect.StreamingClientConn
	err error
}

func (f failedConn) Send(any) error       { return f.err }
func (f failedConn) Receive(any) error    { return f.err }
func (f failedConn) CloseRequest() error  { return f.err }
func (f failedConn) CloseResponse() error { return f.StreamingClientConn.CloseResponse() }
