package maxine

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/net/http2"

	"github.com/maxine-registry/maxine/sdks/go/gen/maxine/config/v1/configv1connect"
	"github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1/registryv1connect"
)

// Protocol is the RPC protocol a Client speaks; a Maxine server answers
// Connect, gRPC and gRPC-Web on one port.
type Protocol int

const (
	// ProtocolGRPC speaks gRPC over HTTP/2 (the default).
	ProtocolGRPC Protocol = iota
	// ProtocolConnect speaks the Connect protocol over HTTP/2.
	ProtocolConnect
)

// String returns "grpc" or "connect".
func (p Protocol) String() string {
	switch p {
	case ProtocolGRPC:
		return "grpc"
	case ProtocolConnect:
		return "connect"
	}
	return "Protocol(" + strconv.Itoa(int(p)) + ")"
}

// ClientOption configures NewClient.
type ClientOption func(*clientConfig)

type clientConfig struct {
	protocol   Protocol
	httpClient connect.HTTPClient
	tlsConfig  *tls.Config
	options    []connect.ClientOption
	token      TokenSource
	keepalive  *Keepalive
	replicas   []string
	// err is the first option that could not be applied (a bad token, a TLS file that does not load).
	err error
}

// WithProtocol selects the RPC protocol (default ProtocolGRPC).
func WithProtocol(p Protocol) ClientOption {
	return func(c *clientConfig) { c.protocol = p }
}

// WithHTTPClient replaces the HTTP client. It must speak HTTP/2 to the
// server (the Heartbeat stream of a Session is bidirectional); by default
// NewClient builds one that uses HTTP/2 without TLS for "http://" addresses
// and HTTP/2 over TLS for "https://".
func WithHTTPClient(c connect.HTTPClient) ClientOption {
	return func(cfg *clientConfig) { cfg.httpClient = c }
}

// WithTLSConfig sets the TLS configuration of the default HTTP client, for
// "https://" addresses.
func WithTLSConfig(t *tls.Config) ClientOption {
	return func(cfg *clientConfig) { cfg.tlsConfig = t }
}

// WithConnectOptions adds connect-go client options (interceptors, codecs,
// compression) to every call.
func WithConnectOptions(opts ...connect.ClientOption) ClientOption {
	return func(cfg *clientConfig) { cfg.options = append(cfg.options, opts...) }
}

// Keepalive is how the default HTTP client finds a connection whose peer
// went silent without closing it (a stopped server, a dead network path).
type Keepalive struct {
	// Interval: a connection that received no frame for this long is sent a
	// PING (0: no PINGs). A live server's heartbeat acks and watch progress
	// keep a busy connection from needing one.
	Interval time.Duration
	// Timeout: a PING unanswered this long closes the connection; its calls
	// fail UNAVAILABLE and Sessions and Watchers reconnect.
	Timeout time.Duration
}

// DefaultKeepalive is the keepalive of the HTTP client NewClient builds.
var DefaultKeepalive = Keepalive{Interval: 10 * time.Second, Timeout: 5 * time.Second}

// WithKeepalive replaces DefaultKeepalive for the default HTTP client
// (not for one given WithHTTPClient).
func WithKeepalive(k Keepalive) ClientOption {
	return func(cfg *clientConfig) {
		if k.Interval < 0 || k.Timeout <= 0 {
			cfg.err = invalid("keepalive", "Interval must be >= 0 (0: no PINGs) and Timeout > 0, got %v and %v", k.Interval, k.Timeout)
			return
		}
		cfg.keepalive = &k
	}
}

// Client is a connection to one Maxine server: the typed RegistryService
// client (RPC) plus the Sessions and Watchers built on it. It is safe for
// concurrent use; one Client per server is enough for a process.
type Client struct {
	// RPC is the generated connect-go client, for the calls this package
	// does not wrap (Discover, ListServices, raw Register...).
	RPC registryv1connect.RegistryServiceClient
	// Config is the generated connect-go client of the service
	// configuration (maxine.config.v1.ConfigService), on the same
	// connections and options; ConfigWatcher and GetConfig are built on it.
	Config configv1connect.ConfigServiceClient

	baseURL  string
	owned    *http2.Transport
	failover *failover // with WithReplicas
}

// NewClient returns a Client of the server at baseURL, e.g.
// "http://127.0.0.1:7400" (plain HTTP/2) or "https://maxine.internal:7400".
// It does not connect until the first call.
func NewClient(baseURL string, opts ...ClientOption) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, invalid("baseURL", "must be an http:// or https:// URL with a host, got %q", baseURL)
	}
	cfg := clientConfig{}
	for _, o := range opts {
		o(&cfg)
		if cfg.err != nil {
			return nil, cfg.err
		}
	}
	var replicas []*url.URL
	if len(cfg.replicas) > 0 {
		if replicas, err = parseReplicas(baseURL, cfg.replicas); err != nil {
			return nil, err
		}
	}
	if cfg.protocol != ProtocolGRPC && cfg.protocol != ProtocolConnect {
		return nil, invalid("protocol", "must be ProtocolGRPC or ProtocolConnect, got %d", int(cfg.protocol))
	}
	c := &Client{baseURL: strings.TrimRight(baseURL, "/")}
	hc := cfg.httpClient
	if hc == nil {
		// Dead connections must not hang a Session or a Watcher: dial with
		// a timeout, and PING a connection that went quiet.
		ka := DefaultKeepalive
		if cfg.keepalive != nil {
			ka = *cfg.keepalive
		}
		tr := newTransport(u.Scheme, cfg.tlsConfig, ka)
		c.owned = tr
		hc = &http.Client{Transport: tr}
	}
	copts := []connect.ClientOption{}
	if replicas != nil {
		c.failover = &failover{urls: replicas, next: hc}
		hc = c.failover
		copts = append(copts, connect.WithInterceptors(c.failover))
	}
	if cfg.token != nil {
		// first: the caller's own interceptors see (and may replace) the header
		copts = append(copts, connect.WithInterceptors(bearer{source: cfg.token}))
	}
	copts = append(copts, cfg.options...)
	if cfg.protocol == ProtocolGRPC {
		copts = append(copts, connect.WithGRPC())
	}
	c.RPC = registryv1connect.NewRegistryServiceClient(hc, c.baseURL, copts...)
	c.Config = configv1connect.NewConfigServiceClient(hc, c.baseURL, copts...)
	return c, nil
}

// BaseURL returns the server address the client was built with (see
// Replica for where calls go with WithReplicas).
func (c *Client) BaseURL() string { return c.baseURL }

// Close releases the idle connections of the default HTTP client. Sessions
// and Watchers must be closed first; a Client given WithHTTPClient leaves
// that client alone.
func (c *Client) Close() error {
	if c.owned != nil {
		c.owned.CloseIdleConnections()
	}
	return nil
}

// newTransport is the HTTP/2 transport of a Client built without
// WithHTTPClient: HTTP/2 without TLS for "http" (h2c), over TLS with ALPN h2
// for "https". It is x/net/http2's Transport, not net/http's: net/http dials
// one connection per call waiting while none is open, so a process whose
// sessions all reconnect at once (a server restart) opens hundreds of
// connections and runs into the server's per-address limit (3,000
// concurrent first calls: 1,417 dials), while x/net/http2's pool dials once
// per address and opens another connection only when the server's
// concurrent-stream limit fills one (3,000 calls: 6 dials).
func newTransport(scheme string, tlsConfig *tls.Config, ka Keepalive) *http2.Transport {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http2.Transport{
		TLSClientConfig: tlsConfig,
		// A connection that received no frame for Interval is PINGed
		// (0: never); unanswered for Timeout, it is closed.
		ReadIdleTimeout: ka.Interval,
		PingTimeout:     ka.Timeout,
	}
	if scheme == "http" {
		tr.AllowHTTP = true
		tr.DialTLSContext = func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		}
		return tr
	}
	tr.DialTLSContext = func(ctx context.Context, network, addr string, tc *tls.Config) (net.Conn, error) {
		conn, err := (&tls.Dialer{NetDialer: dialer, Config: tc}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if p := conn.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != http2.NextProtoTLS {
			conn.Close()
			return nil, fmt.Errorf("maxine: %s did not negotiate HTTP/2 over TLS (ALPN %q)", addr, p)
		}
		return conn, nil
	}
	return tr
}
