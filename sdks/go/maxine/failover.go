package maxine

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"

	"connectrpc.com/connect"
)

// WithReplicas adds the addresses of more replicas of one registry (Redis
// mode) after the baseURL given to NewClient, in order of preference. Every
// call goes to the current replica; a call that fails because of the server
// (FailoverCodes; a call the caller cancelled counts only when it gave up on
// the server, as a Session does when its heartbeats go unanswered: a cancel
// cause with such a code) moves the client on to the next replica, round the
// list. The failed call itself still fails: Sessions and Watchers retry with
// backoff, so their next stream opens on the next replica (the session
// re-binds its instances there within the grace, the watcher resumes from
// its last revision). The same rule as the TypeScript SDK's baseUrl list.
func WithReplicas(baseURLs ...string) ClientOption {
	return func(cfg *clientConfig) {
		if len(baseURLs) == 0 {
			cfg.err = invalid("replicas", "must name at least one address")
			return
		}
		cfg.replicas = append(cfg.replicas, baseURLs...)
	}
}

// FailoverCodes are the errors that move a client with replicas to the
// next one: the server is gone, draining, broken or not answering.
var FailoverCodes = map[connect.Code]bool{
	connect.CodeUnavailable:      true,
	connect.CodeUnknown:          true,
	connect.CodeInternal:         true,
	connect.CodeAborted:          true,
	connect.CodeDeadlineExceeded: true,
}

// failover routes each call to the current replica and moves on when one
// fails. It is two halves of one thing: an interceptor that picks the
// replica when a call starts and watches how it ends, and an HTTP client
// that sends the call's request to the replica the interceptor picked.
type failover struct {
	urls    []*url.URL
	current atomic.Int64
	moves   atomic.Int64
	next    connect.HTTPClient
	mu      sync.Mutex // serialises moves, so concurrent failures of one replica move once
}

type replicaKey struct{}

func parseReplicas(base string, more []string) ([]*url.URL, error) {
	urls := make([]*url.URL, 0, 1+len(more))
	for i, raw := range append([]string{base}, more...) {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			field := "baseURL"
			if i > 0 {
				field = "replicas"
			}
			return nil, invalid(field, "must be an http:// or https:// URL with a host and no path, got %q", raw)
		}
		if u.Scheme != urls0Scheme(urls, u) {
			return nil, invalid("replicas", "must all use the scheme of baseURL (%s), got %q", urls[0].Scheme, raw)
		}
		urls = append(urls, u)
	}
	return urls, nil
}

func urls0Scheme(urls []*url.URL, u *url.URL) string {
	if len(urls) == 0 {
		return u.Scheme
	}
	return urls[0].Scheme
}

// Do sends req to the replica its call started on.
func (f *failover) Do(req *http.Request) (*http.Response, error) {
	i, ok := req.Context().Value(replicaKey{}).(int64)
	if !ok {
		i = f.current.Load()
	}
	u := f.urls[i]
	if req.URL.Host != u.Host {
		to := *req.URL
		to.Scheme, to.Host = u.Scheme, u.Host
		req.URL, req.Host = &to, u.Host
	}
	return f.next.Do(req)
}

// failed moves on from replica i when err (or, for a cancelled call, the
// cause the caller gave) says the server failed.
func (f *failover) failed(ctx context.Context, i int64, err error) {
	if err == nil || errors.Is(err, io.EOF) {
		return
	}
	if ctx.Err() != nil {
		cause := context.Cause(ctx)
		var ce *connect.Error
		if !errors.As(cause, &ce) {
			return // the caller stopped: not the server's fault
		}
		err = cause
	}
	if !FailoverCodes[connect.CodeOf(err)] {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.current.Load() != i {
		return // a concurrent call already moved on
	}
	f.current.Store((i + 1) % int64(len(f.urls)))
	f.moves.Add(1)
}

func (f *failover) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		i := f.current.Load()
		res, err := next(context.WithValue(ctx, replicaKey{}, i), req)
		f.failed(ctx, i, err)
		return res, err
	}
}

func (f *failover) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		i := f.current.Load()
		return &failoverConn{StreamingClientConn: next(context.WithValue(ctx, replicaKey{}, i), spec), f: f, ctx: ctx, i: i}
	}
}

func (f *failover) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// failoverConn watches a stream's receives for the error that ends it.
type failoverConn struct {
	connect.StreamingClientConn
	f    *failover
	ctx  context.Context
	i    int64
	once sync.Once
}

func (c *failoverConn) Receive(msg any) error {
	err := c.StreamingClientConn.Receive(msg)
	if err != nil && !errors.Is(err, io.EOF) {
		c.once.Do(func() { c.f.failed(c.ctx, c.i, err) })
	}
	return err
}

// Replica returns the address the client's next call goes to: baseURL, or
// one of WithReplicas once calls failed over.
func (c *Client) Replica() string {
	if c.failover == nil {
		return c.baseURL
	}
	u := c.failover.urls[c.failover.current.Load()]
	return u.Scheme + "://" + u.Host
}

// Failovers counts how often the client moved to the next replica.
func (c *Client) Failovers() int64 {
	if c.failover == nil {
		return 0
	}
	return c.failover.moves.Load()
}
