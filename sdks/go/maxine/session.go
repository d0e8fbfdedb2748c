package maxine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
)

// SessionOption configures NewSession.
type SessionOption func(*sessionConfig)

type sessionConfig struct {
	interval     time.Duration
	ackTimeout   time.Duration
	backoff      Backoff
	closeTimeout time.Duration
	maxDowntime  time.Duration
	onEvent      func(SessionEvent)
}

// WithHeartbeatInterval overrides the beat interval (default: a third of
// the smallest lease TTL of the session's instances).
func WithHeartbeatInterval(d time.Duration) SessionOption {
	return func(c *sessionConfig) { c.interval = d }
}

// WithAckTimeout is how long a heartbeat may go unanswered before the
// stream is dropped and reopened (default: two beat intervals).
func WithAckTimeout(d time.Duration) SessionOption {
	return func(c *sessionConfig) { c.ackTimeout = d }
}

// WithSessionBackoff shapes reconnects after the heartbeat stream fails
// (default DefaultBackoff).
func WithSessionBackoff(b Backoff) SessionOption {
	return func(c *sessionConfig) { c.backoff = b }
}

// WithCloseTimeout bounds each step of Close: the deregistrations, then the
// stream's end (default 2 s).
func WithCloseTimeout(d time.Duration) SessionOption {
	return func(c *sessionConfig) { c.closeTimeout = d }
}

// WithMaxDowntime makes the session give up (Done closes, Err wraps
// ErrSessionLost) when it had no working heartbeat stream for longer than
// d. The default, 0, retries for ever: the server forgets the instances
// anyway, and the session registers them again once it gets through.
func WithMaxDowntime(d time.Duration) SessionOption {
	return func(c *sessionConfig) { c.maxDowntime = d }
}

// WithSessionEvents calls fn for each SessionEvent, from the session's
// goroutines: fn must return quickly and must not call Close.
func WithSessionEvents(fn func(SessionEvent)) SessionOption {
	return func(c *sessionConfig) { c.onEvent = fn }
}

// SessionEventKind is the kind of a SessionEvent.
type SessionEventKind int

const (
	// SessionDisconnected: the heartbeat stream failed (Err); a reconnect is scheduled.
	SessionDisconnected SessionEventKind = iota + 1
	// SessionReconnected: a new stream answered after a failure (Attempts, Downtime).
	SessionReconnected
	// SessionReregistered: the server did not know Instance (as after a
	// server restart) and it was registered again: by the stream's first
	// beat, which carries the whole instance (BEAT_RESULT_REGISTERED), or
	// by a Register call after a beat came back UNKNOWN.
	SessionReregistered
	// SessionError: a failure the session handles itself (a failed
	// re-registration, a rejected beat, a failed deregistration on Close).
	SessionError
)

// String returns the kind's name.
func (k SessionEventKind) String() string {
	switch k {
	case SessionDisconnected:
		return "disconnected"
	case SessionReconnected:
		return "reconnected"
	case SessionReregistered:
		return "reregistered"
	case SessionError:
		return "error"
	}
	return "unknown"
}

// SessionEvent reports what a Session did on its own.
type SessionEvent struct {
	// Kind is the kind of event.
	Kind SessionEventKind
	// Err is the failure, for SessionDisconnected and SessionError.
	Err error
	// Instance is the instance concerned, when there is one.
	Instance *Instance
	// Attempts counts the failed attempts before a SessionReconnected.
	Attempts int
	// Downtime is how long the session had no working stream, for SessionReconnected.
	Downtime time.Duration
}

type waiter struct {
	seq uint64 // the request that carries the beat; 0 until sent
	ch  chan error
}

type entry struct {
	h             *Instance
	waiters       []*waiter
	dirty         bool // beat at the next send, not only at the next tick
	reregistering bool
}

// Session keeps a process's instances alive over ONE Heartbeat stream. It
// beats every instance at a third of the smallest lease TTL, reopens the
// stream with jittered backoff when it fails and beats everything at once on
// the new stream (within the server's grace this causes no watch event),
// registers again any instance the server forgot (as after a server
// restart: the new stream's first beat carries each instance whole, and an
// UNKNOWN ack leads to a Register), and on Close deregisters its instances before ending the
// stream. Its methods are safe for concurrent use.
type Session struct {
	client *Client
	cfg    sessionConfig
	ctx    context.Context // the session's lifetime: cancelled when it stops
	cancel context.CancelFunc
	wake   chan struct{}
	stop   chan struct{} // closed by Close once the instances are deregistered
	loop   chan struct{} // closed when the run loop returned
	done   chan struct{}

	mu        sync.Mutex
	entries   map[string]*entry
	seq       uint64
	closing   bool
	err       error
	doneOnce  sync.Once
	closeOnce sync.Once
	inflight  sync.WaitGroup
}

// NewSession starts a Session on c. It holds no instance and opens no
// stream until Register.
func NewSession(c *Client, opts ...SessionOption) (*Session, error) {
	cfg := sessionConfig{backoff: DefaultBackoff, closeTimeout: 2 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.backoff.validate("WithSessionBackoff"); err != nil {
		return nil, err
	}
	if cfg.interval < 0 {
		return nil, invalid("WithHeartbeatInterval", "must be >= 0, got %v", cfg.interval)
	}
	if cfg.ackTimeout < 0 {
		return nil, invalid("WithAckTimeout", "must be >= 0, got %v", cfg.ackTimeout)
	}
	if cfg.closeTimeout <= 0 {
		return nil, invalid("WithCloseTimeout", "must be > 0, got %v", cfg.closeTimeout)
	}
	if cfg.maxDowntime < 0 {
		return nil, invalid("WithMaxDowntime", "must be >= 0, got %v", cfg.maxDowntime)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Session{
		client: c, cfg: cfg, ctx: ctx, cancel: cancel,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), loop: make(chan struct{}), done: make(chan struct{}),
		entries: map[string]*entry{},
	}
	go s.run()
	return s, nil
}

// RegisterOption configures one Session.Register.
type RegisterOption func(*registerConfig)

type registerConfig struct{ ttl time.Duration }

// WithTTL asks for a lease TTL (default: the server's, 10 s unless
// configured). The session beats at a third of it.
func WithTTL(d time.Duration) RegisterOption {
	return func(c *registerConfig) { c.ttl = d }
}

// Done is closed when the session stopped: after Close, or when it was lost
// for good (see Err).
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns why the session was lost (wrapping ErrSessionLost and the
// cause), or nil while it runs and after a plain Close.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Instances returns the handles the session keeps alive.
func (s *Session) Instances() []*Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Instance, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, e.h)
	}
	return out
}

// Register stores inst with Register and returns once a heartbeat on the
// session's stream renewed it: from then on it lives as long as the stream
// (plus the server's grace). Registering a key the session already holds
// updates it and returns the same handle. The server requires service, host
// and port; an empty instance_id makes it assign one.
func (s *Session) Register(ctx context.Context, inst *registryv1.Instance, opts ...RegisterOption) (*Instance, error) {
	cfg := registerConfig{}
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case inst == nil:
		return nil, invalid("instance", "must not be nil")
	case inst.GetService() == "":
		return nil, invalid("instance.service", "must not be empty")
	case inst.GetHost() == "":
		return nil, invalid("instance.host", "must not be empty")
	case inst.GetPort() < 1 || inst.GetPort() > 65535:
		return nil, invalid("instance.port", "must be 1..65535, got %d", inst.GetPort())
	case cfg.ttl < 0:
		return nil, invalid("WithTTL", "must be >= 0 (0: the server's default), got %v", cfg.ttl)
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	req := &registryv1.RegisterRequest{Instance: inst}
	if cfg.ttl > 0 {
		req.LeaseTtl = durationpb.New(cfg.ttl)
	}
	res, err := s.client.RPC.Register(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	stored := res.Msg.GetInstance()
	ttl := res.Msg.GetLeaseTtl().AsDuration()
	if res.Msg.GetLeaseTtl() == nil {
		ttl = cmp(cfg.ttl, 10*time.Second)
	}
	key := &registryv1.InstanceKey{Namespace: stored.GetNamespace(), Service: stored.GetService(), InstanceId: stored.GetInstanceId()}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	e := s.entries[keyString(key)]
	// Under an operator's override (maxine drain) the answer's status is the
	// override's, not this process's: beats report what it asked for.
	reported := stored.GetStatus()
	if stored.GetOperatorStatus() != registryv1.OperatorStatus_OPERATOR_STATUS_UNSPECIFIED {
		reported = inst.GetStatus()
	}
	if e == nil {
		status := reported
		if status == registryv1.ServingStatus_SERVING_STATUS_UNSPECIFIED {
			status = registryv1.ServingStatus_SERVING_STATUS_SERVING
		}
		e = &entry{h: &Instance{s: s, key: key, status: status, live: true}}
		s.entries[keyString(key)] = e
	}
	e.h.stored, e.h.ttl, e.h.requestedTTL = stored, ttl, cfg.ttl
	if st := reported; st != registryv1.ServingStatus_SERVING_STATUS_UNSPECIFIED {
		e.h.status = st // beats must not undo the status this Register set
	}
	s.mu.Unlock()
	if err := s.beatNow(ctx, e.h); err != nil {
		return nil, err
	}
	return e.h, nil
}

func cmp(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Close deregisters every instance, ends the heartbeat stream and waits
// until nothing of the session runs. It is idempotent; the error joins the
// deregistrations that failed (the instances then leave after the server's
// grace). ctx bounds the whole of Close, each step being also bounded by
// WithCloseTimeout.
func (s *Session) Close(ctx context.Context) error {
	var result error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		waitWithin(ctx, s.cfg.closeTimeout, func() { s.inflight.Wait() })
		s.mu.Lock()
		entries := s.entries
		s.entries = map[string]*entry{}
		for _, e := range entries {
			e.h.live = false
			failWaiters(e, ErrClosed)
		}
		s.mu.Unlock()
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, e := range entries {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.deregister(ctx, e.h.key); err != nil {
					mu.Lock()
					result = errors.Join(result, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(s.stop)
		select {
		case <-s.loop:
		case <-ctx.Done():
			s.cancel()
			<-s.loop
		}
		s.cancel()
		s.finish(nil)
	})
	<-s.done
	return result
}

func (s *Session) deregister(ctx context.Context, key *registryv1.InstanceKey) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.closeTimeout)
	defer cancel()
	_, err := s.client.RPC.Deregister(ctx, connect.NewRequest(&registryv1.DeregisterRequest{Key: key}))
	if connect.CodeOf(err) == connect.CodeNotFound {
		return nil
	}
	if err != nil {
		return fmt.Errorf("maxine: deregister %s: %w", keyString(key), err)
	}
	return nil
}

// finish closes Done once, recording err (nil for Close).
func (s *Session) finish(err error) {
	s.doneOnce.Do(func() {
		s.mu.Lock()
		if err != nil {
			s.err = err
			s.closing = true
			for k, e := range s.entries {
				e.h.live = false
				failWaiters(e, err)
				delete(s.entries, k)
			}
		}
		s.mu.Unlock()
		close(s.done)
	})
}

func (s *Session) open() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if s.closing {
		return ErrClosed
	}
	return nil
}

// beatNow asks for a beat of h on the current (or next) stream and waits
// until the server renewed it.
func (s *Session) beatNow(ctx context.Context, h *Instance) error {
	w := &waiter{ch: make(chan error, 1)}
	s.mu.Lock()
	e := s.entries[keyString(h.key)]
	if e == nil || e.h != h || !h.live {
		s.mu.Unlock()
		return ErrClosed
	}
	e.waiters = append(e.waiters, w)
	e.dirty = true
	s.mu.Unlock()
	s.poke()
	select {
	case err := <-w.ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Session) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// release is Instance.Deregister.
func (s *Session) release(ctx context.Context, h *Instance) error {
	s.mu.Lock()
	e := s.entries[keyString(h.key)]
	if e == nil || e.h != h {
		s.mu.Unlock()
		return nil
	}
	// First: a beat after the Deregister would get UNKNOWN and register it again.
	delete(s.entries, keyString(h.key))
	h.live = false
	failWaiters(e, ErrClosed)
	s.mu.Unlock()
	s.poke() // the loop ends the stream when no instance is left
	_, err := s.client.RPC.Deregister(ctx, connect.NewRequest(&registryv1.DeregisterRequest{Key: h.key}))
	if connect.CodeOf(err) == connect.CodeNotFound {
		return nil
	}
	return err
}

func failWaiters(e *entry, err error) {
	for _, w := range e.waiters {
		w.ch <- err
	}
	e.waiters = nil
}

func (s *Session) emit(ev SessionEvent) {
	if s.cfg.onEvent != nil {
		s.cfg.onEvent(ev)
	}
}

// reregister registers e's instance again after an UNKNOWN ack.
func (s *Session) reregister(e *entry) {
	s.mu.Lock()
	if e.reregistering || s.closing {
		s.mu.Unlock()
		return
	}
	e.reregistering = true
	h := e.h
	inst, ttl := h.whole()
	req := &registryv1.RegisterRequest{Instance: inst, LeaseTtl: ttl}
	s.inflight.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.inflight.Done()
		ctx, cancel := context.WithTimeout(s.ctx, cmp(h.ttl, 10*time.Second))
		defer cancel()
		res, err := s.client.RPC.Register(ctx, connect.NewRequest(req))
		s.mu.Lock()
		e.reregistering = false
		current := s.entries[keyString(h.key)] == e
		if err == nil && current {
			h.stored = res.Msg.GetInstance()
			if res.Msg.GetLeaseTtl() != nil {
				h.ttl = res.Msg.GetLeaseTtl().AsDuration()
			}
			e.dirty = true
		}
		s.mu.Unlock()
		switch {
		case err != nil:
			s.emit(SessionEvent{Kind: SessionError, Err: fmt.Errorf("maxine: re-register %s: %w", keyString(h.key), err), Instance: h})
		case !current: // deregistered meanwhile
			_ = s.deregister(s.ctx, h.key)
		default:
			s.poke()
			s.emit(SessionEvent{Kind: SessionReregistered, Instance: h})
		}
	}()
}

func keyString(k *registryv1.InstanceKey) string {
	return k.GetNamespace() + "/" + k.GetService() + "/" + k.GetInstanceId()
}

func waitWithin(ctx context.Context, d time.Duration, fn func()) {
	ch := make(chan struct{})
	go func() {
		fn()
		close(ch)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
	}
}

// whole is what registers h again (a Register, or a stream's first beat):
// its stored instance with its current status, and the lease TTL it asked
// for (nil: the server's default). Callers hold s.mu.
func (h *Instance) whole() (*registryv1.Instance, *durationpb.Duration) {
	inst := proto.Clone(h.stored).(*registryv1.Instance)
	inst.Status = h.status
	var ttl *durationpb.Duration
	if h.requestedTTL > 0 {
		ttl = durationpb.New(h.requestedTTL)
	}
	return inst, ttl
}
