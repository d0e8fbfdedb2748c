package maxine

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

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
//
// With WithOutlierDetection the resolver also hands grpc-go a service
// config that wraps the child policy (round_robin by default) in grpc-go's
// outlier_detection policy, so the connection stops sending to instances
// whose calls fail (docs/client-ejection.md).
type ResolverBuilder struct {
	client        *Client
	serviceConfig string // "" unless WithOutlierDetection
}

// ResolverOption configures a ResolverBuilder.
type ResolverOption func(*ResolverBuilder)

// OutlierDetectionPolicy is grpc-go's name of its outlier detection
// load-balancing policy (gRFC A50).
const OutlierDetectionPolicy = "outlier_detection_experimental"

// WithOutlierDetection makes the resolver's service config enable grpc-go's
// outlier_detection policy around childPolicy ("" means round_robin), with
// cfg's Interval, BaseEjectionTime, MaxEjectionTime, MaxEjectionPercent and
// failure-percentage rule (zero fields take DefaultEjection's values:
// 10 s, 30 s, 300 s, 10 %, 85 % of at least 50 calls on at least 5
// instances). grpc-go has no consecutive-failures rule and no half-open
// trial: ConsecutiveFailures is ignored, and an ejected address returns at
// the first sweep after its ejection time. The policy must be registered:
// import _ "github.com/maxine-registry/maxine/sdks/go/maxine/outlierdetection".
// A service config from the resolver takes precedence over
// grpc.WithDefaultServiceConfig.
func WithOutlierDetection(cfg EjectionConfig, childPolicy string) ResolverOption {
	return func(b *ResolverBuilder) {
		sc, err := outlierServiceConfig(cfg, childPolicy)
		if err != nil {
			b.serviceConfig = "error:" + err.Error()
			return
		}
		b.serviceConfig = sc
	}
}

// outlierServiceConfig renders the service config of WithOutlierDetection.
func outlierServiceConfig(cfg EjectionConfig, childPolicy string) (string, error) {
	c, err := cfg.resolved()
	if err != nil {
		return "", err
	}
	if childPolicy == "" {
		childPolicy = "round_robin"
	}
	od := map[string]any{
		"interval":           seconds(c.Interval),
		"baseEjectionTime":   seconds(c.BaseEjectionTime),
		"maxEjectionTime":    seconds(c.MaxEjectionTime),
		"maxEjectionPercent": c.MaxEjectionPercent,
		"childPolicy":        []any{map[string]any{childPolicy: map[string]any{}}},
	}
	if c.FailurePercentageThreshold > 0 {
		od["failurePercentageEjection"] = map[string]any{
			"threshold":             c.FailurePercentageThreshold,
			"enforcementPercentage": 100,
			"minimumHosts":          c.FailurePercentageMinimumHosts,
			"requestVolume":         c.FailurePercentageRequestVolume,
		}
	}
	out, err := json.Marshal(map[string]any{"loadBalancingConfig": []any{map[string]any{OutlierDetectionPolicy: od}}})
	return string(out), err
}

func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}

// NewResolverBuilder returns a ResolverBuilder that watches through c.
// Pass it to grpc.WithResolvers, or to resolver.Register to make the
// "maxine" scheme known process-wide (see RegisterResolver).
func NewResolverBuilder(c *Client, opts ...ResolverOption) *ResolverBuilder {
	b := &ResolverBuilder{client: c}
	for _, o := range opts {
		o(b)
	}
	return b
}

// RegisterResolver registers a ResolverBuilder of c with grpc-go for the
// whole process, so that every grpc.NewClient understands "maxine:///...".
// Like resolver.Register, call it at init time only.
func RegisterResolver(c *Client, opts ...ResolverOption) {
	resolver.Register(NewResolverBuilder(c, opts...))
}

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
	if sc := b.serviceConfig; sc != "" {
		if msg, bad := strings.CutPrefix(sc, "error:"); bad {
			return nil, fmt.Errorf("maxine: WithOutlierDetection: %s", msg)
		}
		if balancer.Get(OutlierDetectionPolicy) == nil {
			return nil, fmt.Errorf("maxine: WithOutlierDetection needs grpc-go's %s policy registered: import _ %q",
				OutlierDetectionPolicy, "github.com/maxine-registry/maxine/sdks/go/maxine/outlierdetection")
		}
		parsed := cc.ParseServiceConfig(sc)
		if parsed.Err != nil {
			return nil, fmt.Errorf("maxine: WithOutlierDetection: %w", parsed.Err)
		}
		r.serviceConfig = parsed
	}
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
	// serviceConfig is sent with every address list (WithOutlierDetection)
	serviceConfig *serviceconfig.ParseResult
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
	state := resolver.State{ServiceConfig: r.serviceConfig}
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
