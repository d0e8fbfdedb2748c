package main

import (
	"context"
	"fmt"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
)

// typeCLA is the xDS v3 type URL of an EDS resource (ClusterLoadAssignment).
const typeCLA = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"

// xdsFanout subscribes with raw ADS streams (StreamAggregatedResources,
// state of the world), each one a node of its own asking for the EDS
// resource of one service and ACKing every response, as a proxyless gRPC
// client or Envoy does; spread over conns HTTP/2 connections. A change is a
// Register of a new instance on a connection of its own; a subscriber has
// it when a ClusterLoadAssignment lists the new instance's address (each
// change gets a port of its own, so a subscriber compares ports only: the
// client's cost per response is decoding the CLA, as any xDS client's).
type xdsFanout struct {
	addr    string
	conns   int
	service string
	watchConns
	port     atomic.Uint32 // the last change's port (0 before the first)
	targetID atomic.Value  // the last change's id
}

func (x *xdsFanout) open(ctx context.Context, n int, onEvent func(int, string)) error {
	var err error
	if x.writer, x.cc, err = dialWatchers(x.addr, x.conns); err != nil {
		return err
	}
	x.targetID.Store("")
	wctx, cancel := context.WithCancel(ctx)
	x.cancel = cancel
	ready := make(chan error, n)
	for w := 0; w < n; w++ {
		client := discoveryv3.NewAggregatedDiscoveryServiceClient(x.cc[w%len(x.cc)])
		x.wg.Add(1)
		go func(w int) {
			defer x.wg.Done()
			synced := false
			fail := func(err error) {
				if !synced {
					ready <- fmt.Errorf("xds subscriber %d: %w", w, err)
				}
			}
			stream, err := client.StreamAggregatedResources(wctx)
			if err != nil {
				fail(err)
				return
			}
			req := &discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: fmt.Sprintf("loadgen-%d", w)}, TypeUrl: typeCLA, ResourceNames: []string{x.service}}
			if err := stream.Send(req); err != nil {
				fail(err)
				return
			}
			req.Node = nil      // only the first request of a stream carries the node
			var reported uint32 // the last change's port this subscriber reported
			cla := &endpointv3.ClusterLoadAssignment{}
			for {
				res, err := stream.Recv()
				if err != nil {
					fail(err)
					return
				}
				for _, a := range res.GetResources() {
					if err := a.UnmarshalTo(cla); err != nil {
						fail(fmt.Errorf("unpack %s: %w", a.GetTypeUrl(), err))
						return
					}
					target := x.port.Load()
					if target == 0 || target == reported {
						continue
					}
					for _, l := range cla.GetEndpoints() {
						for _, e := range l.GetLbEndpoints() {
							if e.GetEndpoint().GetAddress().GetSocketAddress().GetPortValue() == target {
								reported = target
								onEvent(w, x.targetID.Load().(string))
							}
						}
					}
				}
				req.VersionInfo, req.ResponseNonce = res.GetVersionInfo(), res.GetNonce()
				if err := stream.Send(req); err != nil { // the ACK
					fail(err)
					return
				}
				if !synced {
					synced = true
					ready <- nil
				}
			}
		}(w)
	}
	return waitReady(ctx, "maxine-xds", ready, n)
}

func (x *xdsFanout) change(ctx context.Context, id string) error {
	port := uint32(1001)
	if last := x.port.Load(); last != 0 {
		port = last + 1
	}
	x.targetID.Store(id) // before the port: a subscriber that sees the port reads this id
	x.port.Store(port)
	client := registryv1.NewRegistryServiceClient(x.writer)
	_, err := client.Register(ctx, &registryv1.RegisterRequest{Instance: &registryv1.Instance{
		Service: x.service, InstanceId: id, Host: "10.9.0.1", Port: port,
	}})
	return err
}
