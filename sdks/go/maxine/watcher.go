package maxine

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"connectrpc.com/connect"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
)

// WatchOption configures Client.Watch.
type WatchOption func(*watchConfig)

type watchConfig struct {
	namespace string
	services  []string
	filter    *registryv1.Filter
	backoff   Backoff
	onChange  func(Change)
	onSync    func(SyncInfo)
	onError   func(error)
	rand      *rand.Rand
	// local outlier ejection (outlier_ejector.go)
	ejection    EjectionConfig
	ejectionOff bool
	onEjection  func(EjectionEvent)
	now         func() time.Time
}

// WithNamespace sets the namespace to watch (default "default").
func WithNamespace(ns string) WatchOption {
	return func(c *watchConfig) { c.namespace = ns }
}

// WithServices names the services to watch; none (the default) watches
// every service of the namespace.
func WithServices(services ...string) WatchOption {
	return func(c *watchConfig) { c.services = append(c.services, services...) }
}

// WithFilter narrows the watched instances; an instance that stops matching
// is reported as removed.
func WithFilter(f *registryv1.Filter) WatchOption {
	return func(c *watchConfig) { c.filter = f }
}

// WithWatchBackoff shapes reconnects after the watch stream fails
// (default DefaultBackoff).
func WithWatchBackoff(b Backoff) WatchOption {
	return func(c *watchConfig) { c.backoff = b }
}

// WithOnChange calls fn for every change of the view, in revision order,
// from the watcher's goroutine: fn must return quickly and must not call
// Close. A snapshot that replaced the view (a reset) is reported as the
// changes it implied.
func WithOnChange(fn func(Change)) WatchOption {
	return func(c *watchConfig) { c.onChange = fn }
}

// WithOnSync calls fn each time the view equals a snapshot (the first one,
// or a reset), after the changes it implied; same rules as WithOnChange.
func WithOnSync(fn func(SyncInfo)) WatchOption {
	return func(c *watchConfig) { c.onSync = fn }
}

// WithOnWatchError calls fn with every stream failure the watcher retries,
// and with the fatal error that stopped it; same rules as WithOnChange.
func WithOnWatchError(fn func(error)) WatchOption {
	return func(c *watchConfig) { c.onError = fn }
}

// WithRand sets the source of RANDOM and WEIGHTED picks (default: the
// global source); the watcher serialises its use.
func WithRand(r *rand.Rand) WatchOption {
	return func(c *watchConfig) { c.rand = r }
}

// WithEjection tunes the local outlier ejection that Report feeds (see
// docs/client-ejection.md; zero fields take DefaultEjection's values). It
// only changes this watcher's picks, never the registry.
func WithEjection(c EjectionConfig) WatchOption {
	return func(w *watchConfig) { w.ejection, w.ejectionOff = c, false }
}

// WithoutEjection turns local outlier ejection off: Report does nothing.
func WithoutEjection() WatchOption {
	return func(w *watchConfig) { w.ejectionOff = true }
}

// WithOnEjection calls fn when local outlier ejection takes an instance
// out of the watcher's picks or restores it, after the Report or Pick that
// caused it returned its lock: fn must return quickly.
func WithOnEjection(fn func(EjectionEvent)) WatchOption {
	return func(w *watchConfig) { w.onEjection = fn }
}

// WithClock sets the clock outlier ejection runs on (default time.Now), so
// tests can move time without sleeping.
func WithClock(now func() time.Time) WatchOption {
	return func(w *watchConfig) { w.now = now }
}

// Watcher keeps a live local view of a service's (or several services')
// instances from WatchServices. It applies the snapshot and then each event
// in revision order, resumes after a failure from the last revision and
// registry_id it saw (the server replays what it missed, or sends a reset
// snapshot whose differences are reported as changes), and picks instances
// locally with the server's algorithms. Its methods are safe for concurrent
// use.
//
// Lifecycle (the same in the three SDKs): create (NewWatcher), Start
// (idempotent), Ready (starts it if needed and waits for the first
// snapshot, bounded by its ctx), use, Close (idempotent). Client.Watch is
// NewWatcher followed by Start.
type Watcher struct {
	client    *Client
	cfg       watchConfig
	startOnce sync.Once
	cancel    context.CancelFunc // set by Start, under mu
	done      chan struct{}
	ready     chan struct{}
	update    chan struct{}

	mu       sync.Mutex
	view     *instanceView
	cache    map[string]*candidates
	ejectors map[string]*outlierEjector
	pending  []EjectionEvent // ejection events to deliver once mu is released
	fatal    error
	// the current stream named the view's holdings; a server refused them (none are named again)
	sentHeld, heldRefused bool
	readyOnce             sync.Once
	randMu                sync.Mutex
}

// Watch starts a Watcher and returns at once; use Ready to wait for the
// first snapshot. It runs until Close, or until ctx ends, or until a fatal
// error (an invalid request, say: see Err). It is NewWatcher then Start(ctx).
func (c *Client) Watch(ctx context.Context, opts ...WatchOption) (*Watcher, error) {
	w, err := c.NewWatcher(opts...)
	if err != nil {
		return nil, err
	}
	w.Start(ctx)
	return w, nil
}

// NewWatcher checks the options and returns a Watcher that opens no stream
// until Start (or Ready), so that everything a caller sets up around it
// (the callbacks' state, a reference to the watcher itself) is in place
// before the first change arrives.
func (c *Client) NewWatcher(opts ...WatchOption) (*Watcher, error) {
	cfg := watchConfig{backoff: DefaultBackoff, now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	if !cfg.ejectionOff {
		resolved, err := cfg.ejection.resolved()
		if err != nil {
			return nil, err
		}
		cfg.ejection = resolved
	}
	if err := cfg.backoff.validate("WithWatchBackoff"); err != nil {
		return nil, err
	}
	for i, s := range cfg.services {
		if s == "" {
			return nil, invalid("WithServices", "service %d must not be empty", i)
		}
	}
	return &Watcher{
		client: c, cfg: cfg,
		done: make(chan struct{}), ready: make(chan struct{}), update: make(chan struct{}, 1),
		view: newInstanceView(), cache: map[string]*candidates{}, ejectors: map[string]*outlierEjector{},
	}, nil
}

// Start opens the watch stream in the background and returns at once; the
// watcher then runs until Close, until ctx ends, or until a fatal error.
// Only the first call (of Start, Ready or Close) counts: later calls do
// nothing.
func (w *Watcher) Start(ctx context.Context) {
	w.startOnce.Do(func() {
		ctx, cancel := context.WithCancel(ctx)
		w.mu.Lock()
		w.cancel = cancel
		w.mu.Unlock()
		go w.run(ctx, cancel)
	})
}

// Ready starts the watcher if it was not started (to run until Close) and
// waits until the first snapshot was applied. It returns the fatal error if
// the watcher stopped first, ErrClosed if it was closed, or ctx's error
// (the watcher going on).
func (w *Watcher) Ready(ctx context.Context) error {
	w.Start(context.Background())
	select {
	case <-w.ready:
		return nil
	case <-w.done:
		select {
		case <-w.ready:
			return nil
		default:
		}
		if err := w.Err(); err != nil {
			return err
		}
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Updates returns a channel that receives a value after the view changed
// (coalesced: one pending value stands for any number of changes). Read the
// new state with Instances or Pick. It is the hook the grpc-go resolver
// uses; a Watcher has one such channel, so use it from one consumer.
func (w *Watcher) Updates() <-chan struct{} { return w.update }

// Done is closed when the watcher stopped (Close, ctx ended, fatal error).
func (w *Watcher) Done() <-chan struct{} { return w.done }

// Err returns the fatal error that stopped the watcher, or nil.
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fatal
}

// Revision returns the revision the view is up to date at (0 before the
// first snapshot).
func (w *Watcher) Revision() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.view.revision
}

// RegistryID names the registry Revision belongs to.
func (w *Watcher) RegistryID() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.view.registryID
}

// Instances returns the view of service in instance_id order (every status),
// or of every watched service when service is "". The instances are shared:
// read them, do not modify them.
func (w *Watcher) Instances(service string) []*registryv1.Instance {
	w.mu.Lock()
	defer w.mu.Unlock()
	if service != "" {
		return w.view.sorted(service)
	}
	var all []*registryv1.Instance
	for _, s := range w.view.serviceNames() {
		all = append(all, w.view.sorted(s)...)
	}
	return all
}

// Get returns one instance of the view, or nil.
func (w *Watcher) Get(service, instanceID string) *registryv1.Instance {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.view.services[service][instanceID]
}

// Pick chooses a SERVING instance of the watched service locally, with no
// network call: ROUND_ROBIN (also UNSPECIFIED) in instance_id order,
// RANDOM, WEIGHTED, or CONSISTENT_HASH and RENDEZVOUS, which need hashKey
// and choose what the server's Discover would. It returns ErrNoInstance
// when there is no SERVING instance. The watcher must watch exactly one
// service; otherwise use PickFrom.
func (w *Watcher) Pick(strategy registryv1.Strategy, hashKey string) (*registryv1.Instance, error) {
	if len(w.cfg.services) != 1 {
		return nil, invalid("Pick", "the watcher watches %d services, not one; use PickFrom", len(w.cfg.services))
	}
	return w.PickFrom(w.cfg.services[0], strategy, hashKey)
}

// PickFrom is Pick for one of the services of a watcher that watches
// several.
func (w *Watcher) PickFrom(service string, strategy registryv1.Strategy, hashKey string) (*registryv1.Instance, error) {
	w.mu.Lock()
	c, ej := w.candidatesLocked(service)
	mayTakeTrial := false
	if ej != nil {
		ej.advance(ej.now())
		mayTakeTrial = ej.notHealthy > 0
		c = c.allowedBy(ej)
	}
	pending := w.takePendingLocked()
	w.mu.Unlock()
	inst, err := w.pickAmong(c, strategy, hashKey)
	if mayTakeTrial && err == nil {
		w.mu.Lock()
		ej.picked(inst.GetInstanceId())
		pending = append(pending, w.takePendingLocked()...)
		w.mu.Unlock()
	}
	w.deliver(pending)
	return inst, err
}

func (w *Watcher) pickAmong(c *candidates, strategy registryv1.Strategy, hashKey string) (*registryv1.Instance, error) {
	if w.cfg.rand != nil && (strategy == registryv1.Strategy_STRATEGY_RANDOM || strategy == registryv1.Strategy_STRATEGY_WEIGHTED) {
		w.randMu.Lock()
		defer w.randMu.Unlock()
	}
	return c.pick(strategy, hashKey, w.cfg.rand)
}

// candidatesLocked returns service's SERVING candidates and its ejector
// (nil with ejection off), brought up to date with the view; w.mu is held.
func (w *Watcher) candidatesLocked(service string) (*candidates, *outlierEjector) {
	prev := w.cache[service]
	c := prev
	if v := w.view.versions[service]; c == nil || c.version != v {
		c = newCandidates(v, w.view.sorted(service), prev)
		w.cache[service] = c
	}
	if w.cfg.ejectionOff {
		return c, nil
	}
	ej := w.ejectors[service]
	if ej == nil {
		ej = newOutlierEjector(w.cfg.ejection, service, w.cfg.now, func(e EjectionEvent) { w.pending = append(w.pending, e) })
		w.ejectors[service] = ej
		ej.retain(c.ids)
	} else if c != prev && (prev == nil || !same(prev.ids, c.ids)) {
		ej.retain(c.ids)
	}
	return c, ej
}

// Report tells the watcher's pick how a call to an instance went: success
// if it answered (whatever the answer), failure if it could not serve
// (unavailable, timed out, reset). Failures eject the instance from this
// watcher's picks under the rules of docs/client-ejection.md; the registry
// is never told. An instance that is not a SERVING one of the view is
// ignored, as is everything with WithoutEjection.
func (w *Watcher) Report(service, instanceID string, success bool) {
	w.mu.Lock()
	if _, ej := w.candidatesLocked(service); ej != nil {
		ej.report(instanceID, success)
	}
	pending := w.takePendingLocked()
	w.mu.Unlock()
	w.deliver(pending)
}

// EjectionStats returns the ejections and restorations so far and the
// instances ejected now, of one service, or of every service for "".
func (w *Watcher) EjectionStats(service string) EjectionStats {
	w.mu.Lock()
	var s EjectionStats
	for name, ej := range w.ejectors {
		if service == "" || name == service {
			c := ej.counters()
			s.EjectedTotal += c.EjectedTotal
			s.RestoredTotal += c.RestoredTotal
			s.Ejected += c.Ejected
		}
	}
	pending := w.takePendingLocked()
	w.mu.Unlock()
	w.deliver(pending)
	return s
}

// takePendingLocked returns the ejection events waiting for delivery; w.mu is held.
func (w *Watcher) takePendingLocked() []EjectionEvent {
	p := w.pending
	w.pending = nil
	return p
}

// deliver hands ejection events to WithOnEjection's callback, outside w.mu.
func (w *Watcher) deliver(events []EjectionEvent) {
	if w.cfg.onEjection != nil {
		for _, e := range events {
			w.cfg.onEjection(e)
		}
	}
}

// Close stops the watch stream and any backoff timer and waits until the
// watcher's goroutine returned; a watcher that was never started will not
// start. It is idempotent and always returns nil.
func (w *Watcher) Close() error {
	w.startOnce.Do(func() { close(w.done) }) // never started: nothing runs
	w.mu.Lock()
	cancel := w.cancel
	w.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	<-w.done
	return nil
}

func (w *Watcher) run(ctx context.Context, cancel context.CancelFunc) {
	defer close(w.done)
	defer cancel()
	attempt := 0
	for {
		delivered, err := w.stream(ctx)
		w.mu.Lock()
		w.view.abandonSnapshot()
		w.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if delivered {
			attempt = 0
		}
		w.mu.Lock()
		refused := w.sentHeld && connect.CodeOf(err) == connect.CodeInvalidArgument
		if refused {
			// a server whose MAXINE_WATCH_MAX_HELD is lower than what the view holds: resume without holdings from now on
			w.heldRefused = true
		}
		w.mu.Unlock()
		if refused {
			continue
		}
		if isFatal(err) {
			w.mu.Lock()
			w.fatal = err
			w.mu.Unlock()
			w.report(err)
			return
		}
		w.report(err)
		t := time.NewTimer(w.cfg.backoff.Delay(attempt, nil))
		attempt++
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (w *Watcher) report(err error) {
	if w.cfg.onError != nil {
		w.cfg.onError(err)
	}
}

// stream runs one WatchServices call to its end and returns the error that
// ended it and whether it delivered a message.
func (w *Watcher) stream(ctx context.Context) (bool, error) {
	w.mu.Lock()
	req := &registryv1.WatchServicesRequest{Namespace: w.cfg.namespace, Services: w.cfg.services, Filter: w.cfg.filter}
	if w.view.synced {
		req.ResumeRevision, req.RegistryId = w.view.revision, w.view.registryID
		// name what the view holds, so that a server that cannot replay sends only the differences
		if !w.heldRefused {
			req.Held = w.view.holdings()
		}
	}
	w.sentHeld = req.Held != nil
	w.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := w.client.RPC.WatchServices(ctx, connect.NewRequest(req))
	if err != nil {
		return false, err
	}
	defer st.Close()
	delivered := false
	for st.Receive() {
		delivered = true
		w.mu.Lock()
		changes, synced := w.view.apply(st.Msg())
		w.mu.Unlock()
		for _, ch := range changes {
			if w.cfg.onChange != nil {
				w.cfg.onChange(ch)
			}
		}
		if synced != nil && w.cfg.onSync != nil {
			w.cfg.onSync(*synced)
		}
		if synced != nil {
			w.readyOnce.Do(func() { close(w.ready) })
		}
		if len(changes) > 0 || synced != nil {
			select {
			case w.update <- struct{}{}:
			default:
			}
		}
	}
	if err := st.Err(); err != nil {
		return delivered, err
	}
	return delivered, connect.NewError(connect.CodeUnavailable, errors.New("watch: the server ended the stream"))
}
