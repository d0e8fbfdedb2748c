package maxine

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"

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

// Client is a connection to one Maxine server: the typed RegistryService
// client (RPC) plus the Sessions and Watchers built on it. It is safe for
// concurrent use; one Client per server is enough for a process.
type Client struct {
	// RPC is the generated connect-go client, for the calls this package
	// does not wrap (Discover, ListServices, raw Register...).
	RPC registryv1connect.RegistryServiceClient

	baseURL string
	owned   *http.Transport
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
	if cfg.protocol != ProtocolGRPC && cfg.protocol != ProtocolConnect {
		return nil, invalid("protocol", "must be ProtocolGRPC or ProtocolConnect, got %d", int(cfg.protocol))
	}
	c := &Client{baseURL: strings.TrimRight(baseURL, "/")}
	hc := cfg.httpClient
	if hc == nil {
		// Dead connections must not hang a Session or a Watcher: dial with
		// a timeout, and PING a connection that went quiet.
		tr := &http.Transport{
			TLSClientConfig:   cfg.tlsConfig,
			ForceAttemptHTTP2: true,
			DialContext:       (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			HTTP2:             &http.HTTP2Config{SendPingTimeout: 15 * time.Second, PingTimeout: 10 * time.Second},
		}
		var p http.Protocols
		if u.Scheme == "http" {
			p.SetUnencryptedHTTP2(true)
		} else {
			p.SetHTTP2(true)
		}
		tr.Protocols = &p
		c.owned = tr
		hc = &http.Client{Transport: tr}
	}
	copts := []connect.ClientOption{}
	if cfg.token != nil {
		// first: the caller's own interceptors see (and may replace) the header
		copts = append(copts, connect.WithInterceptors(bearer{source: cfg.token}))
	}
	copts = append(copts, cfg.options...)
	if cfg.protocol == ProtocolGRPC {
		copts = append(copts, connect.WithGRPC())
	}
	c.RPC = registryv1connect.NewRegistryServiceClient(hc, c.baseURL, copts...)
	return c, nil
}

// BaseURL returns the server address the client was built with.
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
