package maxine

import (
	"context"
	"math"
	"time"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
)

// Instance is one instance a Session keeps alive, returned by
// Session.Register. It stays valid until Deregister or Session.Close; its
// status and load ride on the session's heartbeats. Its methods are safe
// for concurrent use.
type Instance struct {
	s   *Session
	key *registryv1.InstanceKey

	// guarded by s.mu
	stored       *registryv1.Instance
	status       registryv1.ServingStatus
	load         *float64
	ttl          time.Duration
	requestedTTL time.Duration
	expiresAt    time.Time
	live         bool
}

// Key names the instance as the server stored it (a server-assigned
// instance_id included).
func (h *Instance) Key() *registryv1.InstanceKey { return h.key }

// ID returns the instance_id.
func (h *Instance) ID() string { return h.key.GetInstanceId() }

// Stored returns the instance as the server last returned it from Register.
// It is shared: read it, do not modify it.
func (h *Instance) Stored() *registryv1.Instance {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return h.stored
}

// Status returns the status this handle asks for; every heartbeat carries it.
func (h *Instance) Status() registryv1.ServingStatus {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return h.status
}

// TTL returns the lease TTL the server granted.
func (h *Instance) TTL() time.Duration {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return h.ttl
}

// LeaseExpiresAt returns the lease deadline from the last renewal (zero
// before the first).
func (h *Instance) LeaseExpiresAt() time.Time {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return h.expiresAt
}

// Registered reports whether the handle is live: false once it was
// deregistered or its session closed or was lost.
func (h *Instance) Registered() bool {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return h.live
}

// SetStatus changes the instance's status with a heartbeat sent at once and
// returns when the server applied it (an UPDATED watch event follows when
// the status really changed). status must be SERVING, NOT_SERVING or
// DRAINING.
func (h *Instance) SetStatus(ctx context.Context, status registryv1.ServingStatus) error {
	switch status {
	case registryv1.ServingStatus_SERVING_STATUS_SERVING, registryv1.ServingStatus_SERVING_STATUS_NOT_SERVING,
		registryv1.ServingStatus_SERVING_STATUS_DRAINING:
	default:
		return invalid("status", "must be SERVING, NOT_SERVING or DRAINING, got %s", status)
	}
	h.s.mu.Lock()
	if !h.live {
		h.s.mu.Unlock()
		return ErrClosed
	}
	h.status = status
	h.s.mu.Unlock()
	return h.s.beatNow(ctx, h)
}

// Drain sets status DRAINING: the instance stays registered but is no
// longer picked. Deregister it once in-flight work is done.
func (h *Instance) Drain(ctx context.Context) error {
	return h.SetStatus(ctx, registryv1.ServingStatus_SERVING_STATUS_DRAINING)
}

// SetLoad reports the instance's load (finite, >= 0, lower is less loaded)
// with the next heartbeat; the server's LEAST_LOADED strategy uses it.
func (h *Instance) SetLoad(load float64) error {
	if math.IsNaN(load) || math.IsInf(load, 0) || load < 0 {
		return invalid("load", "must be a finite number >= 0, got %v", load)
	}
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	if !h.live {
		return ErrClosed
	}
	h.load = &load
	return nil
}

// Deregister removes the instance from the registry at once and stops its
// heartbeats. Deregistering twice, or an instance the server no longer
// knows, is not an error.
func (h *Instance) Deregister(ctx context.Context) error {
	return h.s.release(ctx, h)
}
