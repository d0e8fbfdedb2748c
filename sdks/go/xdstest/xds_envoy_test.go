package xdstest_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	configv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/config/v1"
	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
)

// The xDS v3 type URLs of the four resource types Maxine serves.
const (
	typeListener = "type.googleapis.com/envoy.config.listener.v3.Listener"
	typeRoute    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	typeCluster  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	typeCLA      = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
)

// validator is every go-control-plane message: ValidateAll runs Envoy's
// protoc-gen-validate rules over the message and its nested messages,
// returning every violation.
type validator interface {
	proto.Message
	ValidateAll() error
}

// unpack unmarshals a resource into a fresh message of its type and runs
// ValidateAll, failing the test with the resource's name on a violation.
func unpack[T validator](t *testing.T, what string, a *anypb.Any, msg T) T {
	t.Helper()
	if err := a.UnmarshalTo(msg); err != nil {
		t.Fatalf("%s: cannot unpack %s as %T: %v", what, a.GetTypeUrl(), msg, err)
	}
	if err := msg.ValidateAll(); err != nil {
		t.Fatalf("%s: fails Envoy's validation rules: %v\n%v", what, err, msg)
	}
	return msg
}

// adsStream is a raw SotW ADS stream that ACKs every response it reads.
type adsStream struct {
	t      *testing.T
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node   *corev3.Node
}

// openADS dials m with plain grpc-go and opens StreamAggregatedResources
// as a node in zone (none when empty).
func openADS(t *testing.T, m *maxineServer, zone string) (*grpc.ClientConn, *corev3.Node) {
	t.Helper()
	cc, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", m.Port), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	node := &corev3.Node{Id: "xdstest-envoy-validation"}
	if zone != "" {
		node.Locality = &corev3.Locality{Zone: zone}
	}
	return cc, node
}

func newSotW(t *testing.T, cc *grpc.ClientConn, node *corev3.Node) *adsStream {
	t.Helper()
	s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctxT(t, 30*time.Second))
	if err != nil {
		t.Fatalf("StreamAggregatedResources: %v", err)
	}
	return &adsStream{t: t, stream: s, node: node}
}

// fetch subscribes to names of typeURL (all of them: none means wildcard)
// and reads responses of that type, ACKing each, until every name was
// answered (with wildcard: the first response); it returns the resources
// by name.
func (a *adsStream) fetch(typeURL string, names ...string) map[string]*anypb.Any {
	t := a.t
	t.Helper()
	if err := a.stream.Send(&discoveryv3.DiscoveryRequest{Node: a.node, TypeUrl: typeURL, ResourceNames: names}); err != nil {
		t.Fatalf("send %s request: %v", typeURL, err)
	}
	got := map[string]*anypb.Any{}
	for {
		res, err := a.stream.Recv()
		if err != nil {
			t.Fatalf("waiting for %s %v: %v (have %v)", typeURL, names, err, keys(got))
		}
		if res.GetTypeUrl() != typeURL {
			t.Fatalf("asked for %s, got a response of type %q", typeURL, res.GetTypeUrl())
		}
		if res.GetVersionInfo() == "" || res.GetNonce() == "" {
			t.Fatalf("%s response without version_info (%q) or nonce (%q)", typeURL, res.GetVersionInfo(), res.GetNonce())
		}
		for _, r := range res.GetResources() {
			if r.GetTypeUrl() != typeURL {
				t.Fatalf("%s response holds a resource of type %q", typeURL, r.GetTypeUrl())
			}
			got[resourceName(t, r)] = r
		}
		if err := a.stream.Send(&discoveryv3.DiscoveryRequest{Node: a.node, TypeUrl: typeURL, ResourceNames: names, VersionInfo: res.GetVersionInfo(), ResponseNonce: res.GetNonce()}); err != nil {
			t.Fatalf("ACK %s: %v", typeURL, err)
		}
		complete := true // with wildcard: the first response
		for _, n := range names {
			if got[n] == nil {
				complete = false
			}
		}
		if complete {
			return got
		}
	}
}

// resourceName reads the name a resource carries (name, or cluster_name
// for a ClusterLoadAssignment).
func resourceName(t *testing.T, a *anypb.Any) string {
	t.Helper()
	msg, err := a.UnmarshalNew()
	if err != nil {
		t.Fatalf("cannot unpack a %s: %v", a.GetTypeUrl(), err)
	}
	switch m := msg.(type) {
	case *listenerv3.Listener:
		return m.GetName()
	case *routev3.RouteConfiguration:
		return m.GetName()
	case *clusterv3.Cluster:
		return m.GetName()
	case *endpointv3.ClusterLoadAssignment:
		return m.GetClusterName()
	}
	t.Fatalf("unexpected resource type %s", a.GetTypeUrl())
	return ""
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// endpointView is what the tests check of one endpoint of a CLA.
type endpointView struct {
	zone, subZone  string
	priority       uint32
	localityWeight uint32
	health         corev3.HealthStatus
	weight         uint32
}

// endpoints maps "host:port" to what the CLA says of it.
func endpoints(cla *endpointv3.ClusterLoadAssignment) map[string]endpointView {
	out := map[string]endpointView{}
	for _, l := range cla.GetEndpoints() {
		for _, e := range l.GetLbEndpoints() {
			sa := e.GetEndpoint().GetAddress().GetSocketAddress()
			out[fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue())] = endpointView{
				zone: l.GetLocality().GetZone(), subZone: l.GetLocality().GetSubZone(), priority: l.GetPriority(),
				localityWeight: l.GetLoadBalancingWeight().GetValue(), health: e.GetHealthStatus(), weight: e.GetLoadBalancingWeight().GetValue(),
			}
		}
	}
	return out
}

// registerForValidation registers, with no backends behind them (the
// resources are only read):
//   - payments: p1 z1 weight 1 v2, p2 z1 weight 3 v1, p3 z2 weight 1 v2,
//     p4 z1 weight 1 v2 DRAINING;
//   - ring: RING_HASH on header x-user-id, from its configuration (key xds);
//   - leastreq: LEAST_REQUEST, from its instances' metadata.
func registerForValidation(t *testing.T, m *maxineServer) {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	reg := func(i *registryv1.Instance) {
		t.Helper()
		inst, err := m.session.Register(ctx, i)
		if err != nil {
			t.Fatalf("Register %s/%s: %v", i.Service, i.InstanceId, err)
		}
		if i.InstanceId == "p4" {
			if err := inst.Drain(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	reg(&registryv1.Instance{Service: "payments", InstanceId: "p1", Host: "10.0.0.1", Port: 8001, Zone: "z1", Weight: 1, Version: "2"})
	reg(&registryv1.Instance{Service: "payments", InstanceId: "p2", Host: "10.0.0.2", Port: 8002, Zone: "z1", Weight: 3, Version: "1"})
	reg(&registryv1.Instance{Service: "payments", InstanceId: "p3", Host: "10.0.0.3", Port: 8003, Zone: "z2", Weight: 1, Version: "2"})
	reg(&registryv1.Instance{Service: "payments", InstanceId: "p4", Host: "10.0.0.4", Port: 8004, Zone: "z1", Weight: 1, Version: "2"})
	if _, err := m.client.Config.Put(ctx, connect.NewRequest(&configv1.PutRequest{Service: "ring", Key: "xds", Value: []byte(`{"lbPolicy":"RING_HASH","hashHeader":"x-user-id"}`), ContentType: "application/json"})); err != nil {
		t.Fatalf("Put ring's xds configuration: %v", err)
	}
	reg(&registryv1.Instance{Service: "ring", InstanceId: "r1", Host: "10.0.1.1", Port: 9001})
	reg(&registryv1.Instance{Service: "ring", InstanceId: "r2", Host: "10.0.1.2", Port: 9002})
	reg(&registryv1.Instance{Service: "leastreq", InstanceId: "l1", Host: "10.0.2.1", Port: 9101, Metadata: map[string]string{"xds-lb-policy": "LEAST_REQUEST"}})
}

// checkServed unpacks and validates the four resources of each name and
// checks them against Maxine's mapping (docs/xds.md).
func checkServed(t *testing.T, names []string, lds, rds, cds, eds map[string]*anypb.Any) map[string]*endpointv3.ClusterLoadAssignment {
	t.Helper()
	clas := map[string]*endpointv3.ClusterLoadAssignment{}
	for _, n := range names {
		l := unpack(t, "Listener "+n, lds[n], &listenerv3.Listener{})
		hcm := unpack(t, "Listener "+n+"'s HttpConnectionManager", l.GetApiListener().GetApiListener(), &hcmv3.HttpConnectionManager{})
		if got := hcm.GetRds().GetRouteConfigName(); got != n {
			t.Fatalf("Listener %s routes to RouteConfiguration %q, want %q", n, got, n)
		}
		if hcm.GetRds().GetConfigSource().GetAds() == nil {
			t.Fatalf("Listener %s: rds.config_source is not ads: %v", n, hcm.GetRds().GetConfigSource())
		}
		filters := hcm.GetHttpFilters()
		if len(filters) == 0 || filters[len(filters)-1].GetName() != "envoy.filters.http.router" {
			t.Fatalf("Listener %s: the last http filter must be envoy.filters.http.router, got %v", n, filters)
		}
		unpack(t, "Listener "+n+"'s router filter", filters[len(filters)-1].GetTypedConfig(), &routerv3.Router{})

		r := unpack(t, "RouteConfiguration "+n, rds[n], &routev3.RouteConfiguration{})
		vh := r.GetVirtualHosts()
		if len(vh) != 1 || len(vh[0].GetDomains()) != 1 || vh[0].GetDomains()[0] != "*" || len(vh[0].GetRoutes()) != 1 {
			t.Fatalf("RouteConfiguration %s: want one virtual host for domain * with one route, got %v", n, r)
		}
		if got := vh[0].GetRoutes()[0].GetRoute().GetCluster(); got != n {
			t.Fatalf("RouteConfiguration %s routes to cluster %q, want %q", n, got, n)
		}

		c := unpack(t, "Cluster "+n, cds[n], &clusterv3.Cluster{})
		if c.GetType() != clusterv3.Cluster_EDS || c.GetEdsClusterConfig().GetServiceName() != n || c.GetEdsClusterConfig().GetEdsConfig().GetAds() == nil {
			t.Fatalf("Cluster %s: want type EDS over ADS with service_name %q, got %v", n, n, c)
		}
		// for Envoy, which would speak HTTP/1.1 to the endpoints otherwise
		opts := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
		if opts == nil {
			t.Fatalf("Cluster %s: no envoy.extensions.upstreams.http.v3.HttpProtocolOptions (HTTP/2 to the endpoints): %v", n, c)
		}
		if h := unpack(t, "Cluster "+n+"'s HttpProtocolOptions", opts, &upstreamhttpv3.HttpProtocolOptions{}); h.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
			t.Fatalf("Cluster %s: HttpProtocolOptions do not ask for HTTP/2: %v", n, h)
		}
		clas[n] = unpack(t, "ClusterLoadAssignment "+n, eds[n], &endpointv3.ClusterLoadAssignment{})
	}
	return clas
}

// TestXdsResourcesPassEnvoyValidation fetches Listener, RouteConfiguration,
// Cluster and ClusterLoadAssignment over a raw SotW ADS stream (ACKing
// every response) for a plain, a filtered, a ring-hash and a
// least-request service, runs Envoy's own validation rules (go-control-
// plane's ValidateAll) on each and on the HttpConnectionManager and Router
// inside the Listener, and checks the mapping: routes, LB policies, and the
// CLA's localities, priorities (client zone z1 first), weights and health.
func TestXdsResourcesPassEnvoyValidation(t *testing.T) {
	m := startMaxine(t)
	registerForValidation(t, m)
	cc, node := openADS(t, m, "z1")
	s := newSotW(t, cc, node)
	names := []string{"payments", "payments;version=2", "ring", "leastreq"}
	lds := s.fetch(typeListener, names...)
	rds := s.fetch(typeRoute, names...)
	cds := s.fetch(typeCluster, names...)
	eds := s.fetch(typeCLA, names...)
	clas := checkServed(t, names, lds, rds, cds, eds)

	policies := map[string]clusterv3.Cluster_LbPolicy{"payments": clusterv3.Cluster_ROUND_ROBIN, "payments;version=2": clusterv3.Cluster_ROUND_ROBIN, "ring": clusterv3.Cluster_RING_HASH, "leastreq": clusterv3.Cluster_LEAST_REQUEST}
	for n, want := range policies {
		c := unpack(t, "Cluster "+n, cds[n], &clusterv3.Cluster{})
		if c.GetLbPolicy() != want {
			t.Fatalf("Cluster %s: lb_policy %s, want %s", n, c.GetLbPolicy(), want)
		}
	}
	if c := unpack(t, "Cluster ring", cds["ring"], &clusterv3.Cluster{}); c.GetRingHashLbConfig() == nil {
		t.Fatalf("Cluster ring: RING_HASH without ring_hash_lb_config: %v", c)
	}
	ringRoute := unpack(t, "RouteConfiguration ring", rds["ring"], &routev3.RouteConfiguration{})
	hp := ringRoute.GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetHashPolicy()
	if len(hp) != 1 || hp[0].GetHeader().GetHeaderName() != "x-user-id" {
		t.Fatalf("RouteConfiguration ring: want one hash policy on header x-user-id, got %v", hp)
	}

	healthy, draining := corev3.HealthStatus_HEALTHY, corev3.HealthStatus_DRAINING
	got := endpoints(clas["payments"])
	want := map[string]struct {
		zone     string
		priority uint32
		health   corev3.HealthStatus
		weight   uint32
	}{
		"10.0.0.1:8001": {"z1", 0, healthy, 1},
		"10.0.0.2:8002": {"z1", 0, healthy, 3},
		"10.0.0.3:8003": {"z2", 1, healthy, 1},
		"10.0.0.4:8004": {"z1", 0, draining, 1},
	}
	if len(got) != len(want) {
		t.Fatalf("ClusterLoadAssignment payments: want endpoints %v, got %v", keys(want), got)
	}
	for addr, w := range want {
		e, ok := got[addr]
		if !ok || e.zone != w.zone || e.priority != w.priority || e.health != w.health || e.weight != w.weight {
			t.Fatalf("ClusterLoadAssignment payments, endpoint %s: want zone %s priority %d health %s weight %d, got %+v (present %v)", addr, w.zone, w.priority, w.health, w.weight, e, ok)
		}
	}
	// weights ride on localities too (grpc-go's round_robin reads only those):
	// one per zone and weight, weighted by weight x its healthy endpoints
	if a, b := got["10.0.0.1:8001"], got["10.0.0.2:8002"]; a.subZone == b.subZone || a.localityWeight != 1 || b.localityWeight != 3 {
		t.Fatalf("ClusterLoadAssignment payments: weights 1 and 3 in z1 want localities of their own weighted 1 and 3, got %+v and %+v", a, b)
	}
	filtered := endpoints(clas["payments;version=2"])
	if len(filtered) != 3 || filtered["10.0.0.2:8002"] != (endpointView{}) {
		t.Fatalf("ClusterLoadAssignment payments;version=2: want the three version-2 endpoints (not 10.0.0.2:8002), got %v", filtered)
	}

	// wildcard CDS (no names): every service with instances, unfiltered names only
	all := newSotW(t, cc, node).fetch(typeCluster)
	if got := keys(all); strings.Join(got, ",") != "leastreq,payments,ring" {
		t.Fatalf("wildcard CDS: want clusters leastreq, payments, ring, got %v", got)
	}
	for n, a := range all {
		unpack(t, "wildcard Cluster "+n, a, &clusterv3.Cluster{})
	}
}

// TestXdsDeltaResourcesPassEnvoyValidation does the same over
// DeltaAggregatedResources: a wildcard ("*") Listener subscription and a
// named ClusterLoadAssignment one, each resource validated; a Register then
// arrives as a delta update of the CLA, validated too.
func TestXdsDeltaResourcesPassEnvoyValidation(t *testing.T) {
	m := startMaxine(t)
	registerForValidation(t, m)
	cc, node := openADS(t, m, "z1")
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(ctxT(t, 30*time.Second))
	if err != nil {
		t.Fatalf("DeltaAggregatedResources: %v", err)
	}
	// recv reads the next response of typeURL, ACKs it and returns its resources by name.
	recv := func(typeURL string) map[string]*discoveryv3.Resource {
		t.Helper()
		res, err := stream.Recv()
		if err != nil {
			t.Fatalf("waiting for a delta %s response: %v", typeURL, err)
		}
		if res.GetTypeUrl() != typeURL || res.GetNonce() == "" {
			t.Fatalf("want a delta response of %s with a nonce, got type %q nonce %q", typeURL, res.GetTypeUrl(), res.GetNonce())
		}
		if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeURL, ResponseNonce: res.GetNonce()}); err != nil {
			t.Fatalf("ACK %s: %v", typeURL, err)
		}
		out := map[string]*discoveryv3.Resource{}
		for _, r := range res.GetResources() {
			if r.GetVersion() == "" {
				t.Fatalf("delta %s resource %q without a version", typeURL, r.GetName())
			}
			out[r.GetName()] = r
		}
		return out
	}

	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: typeListener, ResourceNamesSubscribe: []string{"*"}}); err != nil {
		t.Fatal(err)
	}
	listeners := recv(typeListener)
	if got := keys(listeners); strings.Join(got, ",") != "leastreq,payments,ring" {
		t.Fatalf("delta wildcard Listener subscription: want leastreq, payments, ring, got %v", got)
	}
	for n, r := range listeners {
		l := unpack(t, "delta Listener "+n, r.GetResource(), &listenerv3.Listener{})
		unpack(t, "delta Listener "+n+"'s HttpConnectionManager", l.GetApiListener().GetApiListener(), &hcmv3.HttpConnectionManager{})
	}

	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeCLA, ResourceNamesSubscribe: []string{"payments"}}); err != nil {
		t.Fatal(err)
	}
	first := recv(typeCLA)
	if first["payments"] == nil {
		t.Fatalf("delta CLA subscription to payments: got %v", keys(first))
	}
	before := endpoints(unpack(t, "delta ClusterLoadAssignment payments", first["payments"].GetResource(), &endpointv3.ClusterLoadAssignment{}))
	if len(before) != 4 {
		t.Fatalf("delta ClusterLoadAssignment payments: want 4 endpoints, got %v", before)
	}

	if _, err := m.session.Register(ctxT(t, 5*time.Second), &registryv1.Instance{Service: "payments", InstanceId: "p5", Host: "10.0.0.5", Port: 8005, Zone: "z2", Weight: 2}); err != nil {
		t.Fatal(err)
	}
	update := recv(typeCLA)
	if update["payments"] == nil {
		t.Fatalf("after a Register, want a delta update of CLA payments, got %v", keys(update))
	}
	after := endpoints(unpack(t, "updated delta ClusterLoadAssignment payments", update["payments"].GetResource(), &endpointv3.ClusterLoadAssignment{}))
	if e, ok := after["10.0.0.5:8005"]; !ok || len(after) != 5 || e.zone != "z2" || e.priority != 1 || e.weight != 2 {
		t.Fatalf("after registering p5 (z2, weight 2), want it in the CLA (5 endpoints, priority 1), got %v", after)
	}
	if first["payments"].GetVersion() == update["payments"].GetVersion() {
		t.Fatalf("the updated CLA kept version %q", first["payments"].GetVersion())
	}
}

// TestXdsValidationCanFail proves the check above can fail: resources
// Maxine served, made invalid in the test (an lb_policy outside the enum,
// a port above 65535, an HttpConnectionManager with no stat_prefix, a
// virtual host with no domains), fail ValidateAll naming the field.
func TestXdsValidationCanFail(t *testing.T) {
	m := startMaxine(t)
	registerForValidation(t, m)
	cc, node := openADS(t, m, "")
	s := newSotW(t, cc, node)
	cluster := unpack(t, "Cluster payments", s.fetch(typeCluster, "payments")["payments"], &clusterv3.Cluster{})
	cla := unpack(t, "ClusterLoadAssignment payments", s.fetch(typeCLA, "payments")["payments"], &endpointv3.ClusterLoadAssignment{})
	listener := unpack(t, "Listener payments", s.fetch(typeListener, "payments")["payments"], &listenerv3.Listener{})
	hcm := unpack(t, "Listener payments's HttpConnectionManager", listener.GetApiListener().GetApiListener(), &hcmv3.HttpConnectionManager{})
	route := unpack(t, "RouteConfiguration payments", s.fetch(typeRoute, "payments")["payments"], &routev3.RouteConfiguration{})

	cluster.LbPolicy = clusterv3.Cluster_LbPolicy(99)
	cla.GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: 70000}
	hcm.StatPrefix = ""
	route.GetVirtualHosts()[0].Domains = nil
	for _, c := range []struct {
		msg   validator
		field string
	}{{cluster, "LbPolicy"}, {cla, "PortValue"}, {hcm, "StatPrefix"}, {route, "Domains"}} {
		err := c.msg.ValidateAll()
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Fatalf("%T with an invalid %s: want ValidateAll to name it, got %v", c.msg, c.field, err)
		}
	}
}
