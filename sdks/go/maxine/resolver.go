package maxine

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc/resolver"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
)

// Scheme is the URI scheme of the grpc-go resolver: "maxine".
const Scheme = "maxine"

// ResolverBuilder is a grpc-go resolver.Builder for targets of the form
//
//	maxine:///<service>[?namespace=<ns>&tag=<t>&version=<v>&zone=<z>]
//
// e.g. "maxine:///payments?namespace=prod". Each resolved connection runs a
// Watcher of the service on the builder's Client and hands grpc-go the
// addresses (host:port) of the SERVING instances whenever the watch stream
// reports a change: no polling, and instances that leave or stop serving
// are removed from the connection's address list. It works with any
// balancer; use round_robin to spread calls over every instance:
//
//	grpc.NewClient("maxine:///payments?namespace=prod",
//		grpc.WithResolvers(maxine.NewResolverBuilder(client)),
//		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
//		grpc.WithTransportCredentials(insecure.NewCredentials()))
//
// The query's filters (tag may repeat) narrow the instances as
// WatchServicesRequest.filter does.
type ResolverBuilder struct {
	client *Client
}

// NewResolverBuilder returns a ResolverBuilder that watches through c.
// Pass it to grpc.WithResolvers, or to resolver.Register to make the
// "maxine" scheme known process-wide (see RegisterResolver).
func NewResolverBuilder(c *Client) *ResolverBuilder { return &ResolverBuilder{client: c} }

// RegisterResolver registers a ResolverBuilder of c with grpc-go for the
// whole process, so that every grpc.NewClient understands "maxine:///...".
// Like resolver.Register, call it at init time only.
func RegisterResolver(c *Client) { resolver.Register(NewResolverBuilder(c)) }

// Scheme returns "maxine".
func (b *ResolverBuilder) Scheme() string { return Scheme }

// ParseTarget splits a "maxine:///service?namespace=..." URL into the
// options of the Watcher the resolver runs for it.
func ParseTarget(u url.URL) (service string, opts []WatchOption, err error) {
	if u.Scheme != Scheme {
		return "", nil, invalid("target", "scheme must be %q, got %q", Scheme, u.Scheme)
	}
	if u.Host != "" {
		return "", nil, invalid("target", "authority must be empty (the builder's Client names the Maxine server), got %q in %q", u.Host, u.String())
	}
	service = strings.TrimPrefix(u.Path, "/")
	if service == "" && u.Opaque != "" {
		service = u.Opaque
	}
	if service == "" || strings.Contains(service, "/") {
		return "", nil, invalid("target", "must look like maxine:///<service>[?namespace=...], got %q", u.String())
	}
	q := u.Query()
	filter := &registryv1.Filter{Tags: q["tag"], Version: q.Get("version"), Zone: q.Get("zone")}
	for k := range q {
		switch k {
		case "namespace", "tag", "version", "zone":
		default:
			return "", nil, invalid("target", "unknown query parameter %q (want namespace, tag, version or zone)", k)
		}
	}
	opts = []WatchOption{WithNamespace(q.Get("namespace")), WithServices(service), WithFilter(filter)}
	return service, opts, nil
}

// Build starts watching the target's service and returns at once; grpc-go
// gets the addresses when the first snapshot arrives.
func (b *ResolverBuilder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	service, opts, err := ParseTarget(target.URL)
	if err != nil {
		return nil, err
	}
	r := &watchResolver{cc: cc, service: service, stopped: make(chan struct{})}
	// A watch stream that fails after the first snapshot keeps the last
	// addresses (the backends did not go away with it); before, grpc-go
	// learns why nothing resolves.
	opts = append(opts, WithOnWatchError(func(err error) {
		if !r.pushed.Load() {
			cc.ReportError(fmt.Errorf("maxine: watch %s: %w", service, err))
		}
	}))
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	w, err := b.client.Watch(ctx, opts...)
	if err != nil {
		cancel()
		return nil, err
	}
	r.w = w
	go r.run()
	return r, nil
}

// watchResolver feeds one grpc-go connection from one Watcher.
type watchResolver struct {
	cc      resolver.ClientConn
	service string
	w       *Watcher
	cancel  context.CancelFunc
	stopped chan struct{}
	pushed  atomic.Bool
}

func (r *watchResolver) run() {
	defer close(r.stopped)
	for {
		select {
		case <-r.w.Updates():
			r.push()
		case <-r.w.Done():
			return
		}
	}
}

// push hands grpc-go the SERVING instances' addresses, in instance_id order.
func (r *watchResolver) push() {
	var state resolver.State
	for _, inst := range r.w.Instances(r.service) {
		if inst.GetStatus() != registryv1.ServingStatus_SERVING_STATUS_SERVING {
			continue
		}
		addr := resolver.Address{Addr: net.JoinHostPort(inst.GetHost(), strconv.FormatUint(uint64(inst.GetPort()), 10))}
		state.Addresses = append(state.Addresses, addr)
		state.Endpoints = append(state.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{addr}})
	}
	if len(state.Addresses) == 0 {
		r.cc.ReportError(fmt.Errorf("maxine: service %q has no SERVING instance", r.service))
		return
	}
	r.pushed.Store(true)
	_ = r.cc.UpdateState(state)
}

// ResolveNow does nothing: the watch stream pushes every change.
func (r *watchResolver) ResolveNow(resolver.ResolveNowOptions) {}

// Close stops the watch.
func (r *watchResolver) Close() {
	r.cancel()
	_ = r.w.Close()
	<-r.stopped
}
