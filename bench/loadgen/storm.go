package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
	"github.com/maxine-registry/maxine/sdks/go/maxine"
)

// stormResult is what one reconnect-storm run measured, in milliseconds
// from the moment the caller stopped the server.
type stormResult struct {
	Sessions       int     `json:"sessions"`
	Watchers       int     `json:"watchers"`
	WatchScope     string  `json:"watch_scope"`
	Client         string  `json:"client"`
	SetupSec       float64 `json:"setup_s"`
	BackMs         float64 `json:"back_ms"`         // the restarted server answered a call
	ReregisteredMs float64 `json:"reregistered_ms"` // the new server holds every session's instance
	ConvergedMs    float64 `json:"converged_ms"`    // every watcher holds every instance it watches, under the new registry id
	Reregistered   int64   `json:"reregistered"`
	LostSessions   int64   `json:"lost_sessions"` // sessions that gave up (Done) — must be 0
	// After GO: how the sessions came back. Attempts counts sessions by the
	// failed attempts before their reconnect; Errors counts failures by kind
	// (disconnects and handled errors, by RPC code).
	Attempts      map[int]int    `json:"reconnect_attempts"`
	Errors        map[string]int `json:"errors"`
	DowntimeP50Ms float64        `json:"downtime_p50_ms"` // a session's time without a working stream
	DowntimeP99Ms float64        `json:"downtime_p99_ms"`
	DowntimeMaxMs float64        `json:"downtime_max_ms"`
}

// stormCommand opens n SDK Sessions (one instance each, like n service
// processes, spread over the services) and w SDK Watchers (each on one
// service, or namespace-wide with -watch-scope namespace), prints READY, and waits for
// a line "GO" on stdin, which the caller writes just before it stops the
// server and starts a new one on the same port. It then times the
// recovery: the new server answering, every instance re-registered by its
// session, every watcher's view complete again under the new registry.
func stormCommand(ctx context.Context, args []string) (any, error) {
	fs := flag.NewFlagSet("storm", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:7400", "server address (loopback only)")
	n := fs.Int("sessions", 10000, "SDK sessions, one instance each")
	w := fs.Int("watchers", 100, "namespace-wide SDK watchers")
	perClient := fs.Int("per-client", 500, "sessions sharing one Client (one HTTP/2 connection pool)")
	services := fs.Int("services", 100, "services the instances are spread over")
	timeout := fs.Duration("timeout", 60*time.Second, "give up on convergence after this long")
	scope := fs.String("watch-scope", "service", "service: watcher i watches service i % services (how SDK watchers are used: one service's instances to pick from); namespace: every watcher watches every instance")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	url := "http://" + *addr
	res := &stormResult{Sessions: *n, Watchers: *w, Client: "Go SDK (maxine.Session, maxine.Watcher), gRPC protocol"}
	setup := time.Now()

	clients := make([]*maxine.Client, (*n+*perClient-1) / *perClient + 1)
	for i := range clients {
		c, err := maxine.NewClient(url)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		clients[i] = c
	}
	var reregistered, lost atomic.Int64
	var (
		going     atomic.Bool // GO was received: events are counted
		evMu      sync.Mutex
		attempts  = map[int]int{}
		errCounts = map[string]int{}
		downtimes []float64
	)
	sessions := make([]*maxine.Session, *n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	var setupErr atomic.Value
	for i := 0; i < *n; i++ {
		s, err := maxine.NewSession(clients[i / *perClient], maxine.WithSessionEvents(func(ev maxine.SessionEvent) {
			if ev.Kind == maxine.SessionReregistered {
				reregistered.Add(1)
			}
			if !going.Load() {
				return
			}
			evMu.Lock()
			defer evMu.Unlock()
			switch ev.Kind {
			case maxine.SessionReconnected:
				attempts[ev.Attempts]++
				downtimes = append(downtimes, float64(ev.Downtime.Microseconds())/1000)
			case maxine.SessionDisconnected, maxine.SessionError:
				errCounts[ev.Kind.String()+": "+connect.CodeOf(ev.Err).String()]++
			}
		}))
		if err != nil {
			return nil, err
		}
		sessions[i] = s
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			_, err := s.Register(ctx, &registryv1.Instance{
				Service: fmt.Sprintf("storm-%d", i%*services), InstanceId: fmt.Sprintf("i%d", i), Host: "10.9.0.1", Port: uint32(1000 + i%60000),
			}, maxine.WithTTL(10*time.Second))
			if err != nil {
				setupErr.Store(err)
			}
		}(i)
	}
	wg.Wait()
	if err, _ := setupErr.Load().(error); err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for _, s := range sessions {
			_ = s.Close(cctx)
		}
	}()
	for _, s := range sessions {
		go func(s *maxine.Session) {
			<-s.Done()
			if s.Err() != nil {
				lost.Add(1)
			}
		}(s)
	}
	if *scope != "service" && *scope != "namespace" {
		return nil, fmt.Errorf("-watch-scope must be service or namespace, got %q", *scope)
	}
	res.WatchScope = *scope
	// want is how many instances watcher i sees when converged.
	want := func(i int) int {
		if *scope == "namespace" {
			return *n
		}
		count := 0
		for j := i % *services; j < *n; j += *services {
			count++
		}
		return count
	}
	watchers := make([]*maxine.Watcher, *w)
	for i := range watchers {
		var opts []maxine.WatchOption
		if *scope == "service" {
			opts = append(opts, maxine.WithServices(fmt.Sprintf("storm-%d", i%*services)))
		}
		wt, err := clients[len(clients)-1].Watch(ctx, opts...)
		if err != nil {
			return nil, err
		}
		defer wt.Close()
		if err := wt.Ready(ctx); err != nil {
			return nil, err
		}
		watchers[i] = wt
	}
	complete := func(registryID string) bool {
		for i, wt := range watchers {
			if wt.RegistryID() != registryID || len(wt.Instances("")) != want(i) {
				return false
			}
		}
		return true
	}
	before, err := clients[0].RPC.ListServices(ctx, connect.NewRequest(&registryv1.ListServicesRequest{}))
	if err != nil {
		return nil, err
	}
	oldID := before.Msg.GetRegistryId()
	for !complete(oldID) {
		time.Sleep(50 * time.Millisecond)
	}
	res.SetupSec = time.Since(setup).Seconds()

	fmt.Fprintln(stderr, "READY")
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil || line != "GO\n" {
		return nil, fmt.Errorf("expected GO on stdin, got %q (%v)", line, err)
	}
	going.Store(true)
	start := time.Now()
	since := func() float64 { return float64(time.Since(start).Microseconds()) / 1000 }
	deadline := time.After(*timeout)

	// The new server answers (a new registry id: it kept nothing).
	var newID string
	for newID == "" {
		r, err := clients[0].RPC.ListServices(ctx, connect.NewRequest(&registryv1.ListServicesRequest{}))
		if err == nil && r.Msg.GetRegistryId() != oldID {
			newID = r.Msg.GetRegistryId()
			res.BackMs = since()
			break
		}
		select {
		case <-deadline:
			return nil, fmt.Errorf("the restarted server did not answer within %v", *timeout)
		case <-time.After(10 * time.Millisecond):
		}
	}
	// Every instance is back when the new server holds all of them (asked
	// every 20 ms). The sessions' SessionReregistered events are counted
	// too, but a session whose registering beat was answered on a stream
	// that then failed finds its instance known on the next stream
	// (RENEWED) and reports no event.
	for held := 0; held < *n; {
		r, err := clients[0].RPC.ListServices(ctx, connect.NewRequest(&registryv1.ListServicesRequest{}))
		if err == nil && r.Msg.GetRegistryId() == newID {
			held = 0
			for _, sv := range r.Msg.GetServices() {
				held += int(sv.GetInstanceCount())
			}
		}
		if held >= *n {
			break
		}
		select {
		case <-deadline:
			return nil, fmt.Errorf("the new server held %d of %d instances after %v (%d sessions reported a re-registration)", held, *n, *timeout, reregistered.Load())
		case <-time.After(20 * time.Millisecond):
		}
	}
	res.ReregisteredMs = since()
	for !complete(newID) {
		select {
		case <-deadline:
			return nil, fmt.Errorf("watchers did not converge within %v", *timeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
	res.ConvergedMs = since()
	res.Reregistered = reregistered.Load()
	res.LostSessions = lost.Load()
	evMu.Lock()
	res.Attempts, res.Errors = attempts, errCounts
	if len(downtimes) > 0 {
		sort.Float64s(downtimes)
		res.DowntimeP50Ms = downtimes[len(downtimes)/2]
		res.DowntimeP99Ms = downtimes[len(downtimes)*99/100]
		res.DowntimeMaxMs = downtimes[len(downtimes)-1]
	}
	evMu.Unlock()
	return res, nil
}
