package maxine_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
	"github.com/maxine-registry/maxine/sdks/go/internal/testserver"
	"github.com/maxine-registry/maxine/sdks/go/maxine"
)

// The Go runner of the SDK conformance scenarios (testdata/conformance/*.json,
// described in its README.md): each scenario is a subtest, driving this
// SDK's Session and Watcher against the real server. The TypeScript and
// Python runners read the same files and must agree.

// conformanceEnv are the runners' base server settings (the README's).
var conformanceEnv = map[string]string{"MAXINE_GRACE": "1s", "MAXINE_LEASE_TTL_MIN": "100ms", "MAXINE_SHUTDOWN_GRACE": "300ms"}

var conformanceBackoff = maxine.Backoff{Base: 50 * time.Millisecond, Max: 250 * time.Millisecond}

// conformanceFields lists, per step kind, the fields it takes: a kind or a
// field not listed fails the scenario.
var conformanceFields = map[string][]string{
	"start_redis":         {},
	"start_server":        {"server", "store"},
	"stop_server":         {"server"},
	"kill_server":         {"server"},
	"restart_server":      {"server"},
	"register":            {"server", "service", "instance", "port", "ttl_ms"},
	"deregister":          {"server", "service", "instance"},
	"set_operator_status": {"server", "service", "instance", "status"},
	"open_session":        {"session", "servers"},
	"session_register":    {"session", "service", "instance", "port", "ttl_ms"},
	"close_session":       {"session"},
	"spawn_session":       {"process", "server", "service", "instance", "ttl_ms"},
	"kill_process":        {"process"},
	"watch":               {"watcher", "servers", "services"},
	"expect_events":       {"watcher", "events", "within_ms", "not_before_ms", "any_order", "from_snapshot"},
	"expect_no_events":    {"watcher", "for_ms"},
	"skip_events":         {"watcher"},
	"expect_view":         {"watcher", "instances", "within_ms", "server"},
	"expect_discover":     {"server", "service", "instances", "within_ms"},
	// service configuration (conformance_config_test.go)
	"put_config":           {"server", "service", "key", "value", "raw"},
	"delete_config":        {"server", "service", "key"},
	"watch_config":         {"watcher", "servers", "service", "key", "cache"},
	"expect_config":        {"watcher", "values", "within_ms"},
	"close_config_watcher": {"watcher"},
}

var expectedFields = []string{"type", "service", "instance", "status", "operator_status", "removal_reason"}

type scenario struct {
	Name        string            `json:"name"`
	Description string            `json:"description"`
	Env         map[string]string `json:"env"`
	Steps       []map[string]any  `json:"steps"`
}

func conformanceDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "testdata", "conformance")
}

func loadScenarios(t *testing.T) []scenario {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(conformanceDir(), "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	var out []scenario
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var sc scenario
		if err := json.Unmarshal(data, &sc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if sc.Name+".json" != filepath.Base(f) {
			t.Fatalf("%s: name must be the file's, got %q", f, sc.Name)
		}
		out = append(out, sc)
	}
	return out
}

// TestConformance runs every scenario of testdata/conformance.
func TestConformance(t *testing.T) {
	scenarios := loadScenarios(t)
	if len(scenarios) < 6 {
		t.Fatalf("%d scenarios in %s, want at least 6", len(scenarios), conformanceDir())
	}
	for _, sc := range scenarios {
		t.Run(sc.Name, func(t *testing.T) {
			r := &runner{t: t, sc: sc, servers: map[string]*serverSlot{}, sessions: map[string]*maxine.Session{},
				watchers: map[string]*watchRecord{}, processes: map[string]*exec.Cmd{}}
			if err := r.run(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestConformanceUnknownStepFails: a step kind or a field the runner does
// not know fails the scenario; it is never skipped.
func TestConformanceUnknownStepFails(t *testing.T) {
	for _, step := range []map[string]any{{"do": "teleport"}, {"do": "start_redis", "cluster": true}} {
		r := &runner{t: t, sc: scenario{Name: "x", Steps: []map[string]any{step}}}
		err := r.run()
		if err == nil || !strings.Contains(err.Error(), "unknown") {
			t.Fatalf("%v: %v, want an error naming the unknown kind or field", step, err)
		}
	}
}

type serverSlot struct {
	srv  *testserver.Server
	port int
	env  map[string]string
}

type recorded struct {
	change   maxine.Change
	registry string
	at       time.Time
}

type watchRecord struct {
	w         *maxine.Watcher
	mu        sync.Mutex
	changes   []recorded
	cursor    int
	violation string
}

func (w *watchRecord) snapshot() []recorded {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.changes)
}

type runner struct {
	t         *testing.T
	sc        scenario
	redis     *testserver.Redis
	servers   map[string]*serverSlot
	sessions  map[string]*maxine.Session
	watchers  map[string]*watchRecord
	processes map[string]*exec.Cmd
	config    map[string]*configRecord
	dataDir   string
	lastEnd   time.Time
}

func (r *runner) run() error {
	r.lastEnd = time.Now()
	for i, step := range r.sc.Steps {
		kind, _ := step["do"].(string)
		where := fmt.Sprintf("%s step %d (%s)", r.sc.Name, i+1, kind)
		fields, ok := conformanceFields[kind]
		if !ok {
			return fmt.Errorf("%s: unknown step kind %q", where, kind)
		}
		var unknown []string
		for k := range step {
			if k != "do" && !slices.Contains(fields, k) {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return fmt.Errorf("%s: unknown field(s) %s", where, strings.Join(unknown, ", "))
		}
		if err := r.step(kind, step); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		r.lastEnd = time.Now()
	}
	return nil
}

func (r *runner) step(kind string, s map[string]any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p) // a missing or mistyped field
		}
	}()
	t := r.t
	ctx := ctxT(t, 30*time.Second)
	switch kind {
	case "start_redis":
		if r.redis != nil {
			return errors.New("one Redis per scenario")
		}
		redis, err := testserver.StartRedis()
		if err != nil {
			return err
		}
		r.redis = redis
		t.Cleanup(redis.Stop)
	case "start_server":
		name := str(s, "server")
		if r.servers[name] != nil {
			return fmt.Errorf("server %s exists", name)
		}
		env := map[string]string{}
		for _, m := range []map[string]string{conformanceEnv, r.sc.Env} {
			for k, v := range m {
				env[k] = v
			}
		}
		switch store, _ := s["store"].(string); store {
		case "", "memory":
		case "redis":
			if r.redis == nil {
				return errors.New("store redis needs a start_redis step first")
			}
			env["MAXINE_STORE"], env["MAXINE_REDIS_URL"] = "redis", r.redis.URL
		default:
			return fmt.Errorf("store: \"memory\" or \"redis\", got %q", store)
		}
		port, err := testserver.FreePort()
		if err != nil {
			return err
		}
		env["MAXINE_PORT"] = strconv.Itoa(port)
		// each server keeps its service configuration in a directory of the scenario's own (kept across a restart)
		if r.dataDir == "" {
			r.dataDir = t.TempDir()
		}
		env["MAXINE_DATA_DIR"] = filepath.Join(r.dataDir, "server-"+name)
		slot := &serverSlot{port: port, env: env}
		r.servers[name] = slot
		t.Cleanup(func() {
			if slot.srv != nil {
				slot.srv.Kill()
			}
		})
		return r.startServer(slot)
	case "stop_server":
		slot, err := r.running(str(s, "server"))
		if err != nil {
			return err
		}
		err = slot.srv.Stop()
		slot.srv = nil
		return err
	case "kill_server":
		slot, err := r.running(str(s, "server"))
		if err != nil {
			return err
		}
		slot.srv.Kill()
		slot.srv = nil
	case "restart_server":
		slot := r.servers[str(s, "server")]
		if slot == nil || slot.srv != nil {
			return fmt.Errorf("server %s is not stopped", str(s, "server"))
		}
		return r.startServer(slot)
	case "register":
		req := &registryv1.RegisterRequest{Instance: &registryv1.Instance{
			Service: str(s, "service"), InstanceId: str(s, "instance"), Host: "127.0.0.1", Port: uint32(num(s, "port")),
		}}
		if _, has := s["ttl_ms"]; has {
			req.LeaseTtl = durationpb.New(time.Duration(num(s, "ttl_ms")) * time.Millisecond)
		}
		_, err := r.unary(str(s, "server")).RPC.Register(ctx, connect.NewRequest(req))
		return err
	case "deregister":
		_, err := r.unary(str(s, "server")).RPC.Deregister(ctx, connect.NewRequest(&registryv1.DeregisterRequest{Key: &registryv1.InstanceKey{
			Service: str(s, "service"), InstanceId: str(s, "instance"),
		}}))
		return err
	case "set_operator_status":
		status, ok := registryv1.OperatorStatus_value[str(s, "status")]
		if !ok {
			return fmt.Errorf("status: unknown OperatorStatus %q", str(s, "status"))
		}
		_, err := r.unary(str(s, "server")).RPC.SetOperatorStatus(ctx, connect.NewRequest(&registryv1.SetOperatorStatusRequest{
			Key: &registryv1.InstanceKey{Service: str(s, "service"), InstanceId: str(s, "instance")}, Status: registryv1.OperatorStatus(status),
		}))
		return err
	case "open_session":
		c, err := r.client(strs(s, "servers"))
		if err != nil {
			return err
		}
		sess, err := maxine.NewSession(c, maxine.WithSessionBackoff(conformanceBackoff))
		if err != nil {
			return err
		}
		r.sessions[str(s, "session")] = sess
		t.Cleanup(func() { _ = sess.Close(context.Background()) })
	case "session_register":
		sess := r.sessions[str(s, "session")]
		if sess == nil {
			return fmt.Errorf("no session %s", str(s, "session"))
		}
		_, err := sess.Register(ctx, &registryv1.Instance{Service: str(s, "service"), InstanceId: str(s, "instance"), Host: "127.0.0.1", Port: uint32(num(s, "port"))},
			maxine.WithTTL(time.Duration(num(s, "ttl_ms"))*time.Millisecond))
		return err
	case "close_session":
		sess := r.sessions[str(s, "session")]
		if sess == nil {
			return fmt.Errorf("no session %s", str(s, "session"))
		}
		return sess.Close(ctx)
	case "spawn_session":
		return r.spawnSession(s)
	case "kill_process":
		cmd := r.processes[str(s, "process")]
		if cmd == nil {
			return fmt.Errorf("no process %s", str(s, "process"))
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			return err
		}
		_ = cmd.Wait()
	case "watch":
		return r.watch(s)
	case "expect_events":
		return r.expectEvents(s)
	case "expect_no_events":
		rec, err := r.record(str(s, "watcher"))
		if err != nil {
			return err
		}
		before := len(rec.snapshot())
		time.Sleep(time.Duration(num(s, "for_ms")) * time.Millisecond) // proves that nothing happens within the time: a sleep by design
		if extra := rec.snapshot()[before:]; len(extra) > 0 {
			return fmt.Errorf("changes within %v ms: %v", s["for_ms"], describeAll(extra))
		}
		return rec.checkRevisions()
	case "skip_events":
		rec, err := r.record(str(s, "watcher"))
		if err != nil {
			return err
		}
		rec.cursor = len(rec.snapshot())
	case "expect_view":
		return r.expectView(s)
	case "expect_discover":
		c := r.unary(str(s, "server"))
		want := strs(s, "instances")
		var got []string
		return waitCond(time.Duration(num(s, "within_ms"))*time.Millisecond, func() bool {
			got = nil
			res, err := c.RPC.Discover(ctx, connect.NewRequest(&registryv1.DiscoverRequest{Service: str(s, "service"), IncludeAll: true}))
			if err != nil {
				return false
			}
			for _, i := range res.Msg.GetInstances() {
				got = append(got, i.GetInstanceId())
			}
			return slices.Equal(got, want)
		}, func() string { return fmt.Sprintf("Discover lists %q, want %q", got, want) })
	case "put_config", "delete_config", "watch_config", "expect_config", "close_config_watcher":
		return r.configStep(ctx, kind, s)
	default:
		return fmt.Errorf("unknown step kind %q", kind)
	}
	return nil
}

func (r *runner) startServer(slot *serverSlot) error {
	srv, err := testserver.Start(slot.env)
	if err != nil {
		return err
	}
	slot.srv = srv
	return nil
}

func (r *runner) running(name string) (*serverSlot, error) {
	slot := r.servers[name]
	if slot == nil || slot.srv == nil {
		return nil, fmt.Errorf("server %s is not running", name)
	}
	return slot, nil
}

func (r *runner) url(name string) (string, error) {
	slot := r.servers[name]
	if slot == nil {
		return "", fmt.Errorf("no server %s", name)
	}
	return "http://127.0.0.1:" + strconv.Itoa(slot.port), nil
}

// client is a Client of those servers (several: failover between replicas), closed with the scenario.
func (r *runner) client(names []string) (*maxine.Client, error) {
	var urls []string
	for _, n := range names {
		u, err := r.url(n)
		if err != nil {
			return nil, err
		}
		urls = append(urls, u)
	}
	if len(urls) == 0 {
		return nil, errors.New("servers: name at least one")
	}
	var opts []maxine.ClientOption
	if len(urls) > 1 {
		opts = append(opts, maxine.WithReplicas(urls[1:]...))
	}
	c, err := maxine.NewClient(urls[0], opts...)
	if err != nil {
		return nil, err
	}
	r.t.Cleanup(func() { _ = c.Close() })
	return c, nil
}

func (r *runner) unary(name string) *maxine.Client {
	c, err := r.client([]string{name})
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

func (r *runner) record(name string) (*watchRecord, error) {
	rec := r.watchers[name]
	if rec == nil {
		return nil, fmt.Errorf("no watcher %s", name)
	}
	return rec, nil
}

func (r *runner) watch(s map[string]any) error {
	c, err := r.client(strs(s, "servers"))
	if err != nil {
		return err
	}
	rec := &watchRecord{}
	// The aligned lifecycle: create (not started), subscribe, start, wait for the first snapshot with a bound.
	w, err := c.NewWatcher(maxine.WithServices(strs(s, "services")...), maxine.WithWatchBackoff(conformanceBackoff),
		maxine.WithOnChange(func(ch maxine.Change) {
			registry := rec.w.RegistryID()
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if n := len(rec.changes); n > 0 {
				last := rec.changes[n-1]
				if last.registry == registry && ch.Revision < last.change.Revision && rec.violation == "" {
					rec.violation = fmt.Sprintf("revision went down within registry %s: %d then %d", registry, last.change.Revision, ch.Revision)
				}
			}
			rec.changes = append(rec.changes, recorded{change: ch, registry: registry, at: time.Now()})
		}))
	if err != nil {
		return err
	}
	rec.w = w
	r.watchers[str(s, "watcher")] = rec
	r.t.Cleanup(func() { _ = w.Close() })
	w.Start(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return w.Ready(ctx)
}

func (rec *watchRecord) checkRevisions() error {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.violation != "" {
		return errors.New(rec.violation)
	}
	return nil
}

func (r *runner) expectEvents(s map[string]any) error {
	rec, err := r.record(str(s, "watcher"))
	if err != nil {
		return err
	}
	expected := list(s, "events")
	start := rec.cursor
	if err := waitCond(time.Duration(num(s, "within_ms"))*time.Millisecond, func() bool { return len(rec.snapshot())-start >= len(expected) }, func() string {
		return fmt.Sprintf("%d of %d changes: %v, want %v", len(rec.snapshot())-start, len(expected), describeAll(rec.snapshot()[start:]), expected)
	}); err != nil {
		return err
	}
	got := rec.snapshot()[start : start+len(expected)]
	described := make([]map[string]string, len(got))
	for i, g := range got {
		described[i] = describeChange(g.change)
	}
	ok := true
	if b, _ := s["any_order"].(bool); b {
		for _, e := range expected {
			ok = ok && slices.ContainsFunc(described, func(d map[string]string) bool { return matchesExpected(e, d) })
		}
		for _, d := range described {
			ok = ok && slices.ContainsFunc(expected, func(e map[string]any) bool { return matchesExpected(e, d) })
		}
	} else {
		for i, e := range expected {
			ok = ok && matchesExpected(e, described[i])
		}
	}
	for _, e := range expected {
		for k := range e {
			if !slices.Contains(expectedFields, k) {
				return fmt.Errorf("unknown expected field %q", k)
			}
		}
	}
	if !ok {
		return fmt.Errorf("changes %v, want %v", described, expected)
	}
	snapshot, _ := s["from_snapshot"].(bool)
	for i := 1; i < len(got); i++ {
		a, b := got[i-1], got[i]
		bad := b.registry == a.registry && b.change.Revision <= a.change.Revision
		if snapshot {
			bad = b.change.Revision != a.change.Revision || b.registry != a.registry
		}
		if bad {
			revs := make([]uint64, len(got))
			for j, g := range got {
				revs[j] = g.change.Revision
			}
			return fmt.Errorf("revisions %v: want increasing, or one snapshot's (all equal) with from_snapshot", revs)
		}
	}
	if _, has := s["not_before_ms"]; has {
		after := got[0].at.Sub(r.lastEnd)
		if after < time.Duration(num(s, "not_before_ms"))*time.Millisecond {
			return fmt.Errorf("the first change came %v after the previous step, want >= %v ms", after, s["not_before_ms"])
		}
	}
	rec.cursor = start + len(expected)
	return rec.checkRevisions()
}

func (r *runner) expectView(s map[string]any) error {
	rec, err := r.record(str(s, "watcher"))
	if err != nil {
		return err
	}
	expected := list(s, "instances")
	view := func() []map[string]string {
		var out []map[string]string
		for _, i := range rec.w.Instances("") {
			out = append(out, describeInstance(i))
		}
		return out
	}
	ok := func() bool {
		v := view()
		if len(v) != len(expected) {
			return false
		}
		for i, e := range expected {
			if !matchesExpected(e, v[i]) {
				return false
			}
		}
		return true
	}
	within := time.Duration(num(s, "within_ms")) * time.Millisecond
	if _, has := s["server"]; has {
		// the view must come from the server's registry, not be one held from before a restart
		if len(expected) == 0 {
			return errors.New("server: needs instances (their service's Discover names the registry)")
		}
		c := r.unary(str(s, "server"))
		service, _ := expected[0]["service"].(string)
		registry := ""
		if err := waitCond(within, func() bool {
			res, err := c.RPC.Discover(context.Background(), connect.NewRequest(&registryv1.DiscoverRequest{Service: service, IncludeAll: true}))
			if err != nil {
				return false
			}
			registry = res.Msg.GetRegistryId()
			return rec.w.RegistryID() == registry && ok()
		}, func() string {
			return fmt.Sprintf("the view %v of registry %s, want %v of %s", view(), rec.w.RegistryID(), expected, registry)
		}); err != nil {
			return err
		}
	}
	if err := waitCond(within, ok, func() string { return fmt.Sprintf("the view %v, want %v", view(), expected) }); err != nil {
		return err
	}
	return rec.checkRevisions()
}

// spawnSession runs this test binary as a child (helper "hold") that holds
// one instance in a Session until it is killed.
func (r *runner) spawnSession(s map[string]any) error {
	u, err := r.url(str(s, "server"))
	if err != nil {
		return err
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MAXINE_TEST_HELPER=hold", "MAXINE_URL="+u, "MAXINE_TEST_SERVICE="+str(s, "service"),
		"MAXINE_TEST_INSTANCE="+str(s, "instance"), "MAXINE_TEST_TTL_MS="+strconv.Itoa(num(s, "ttl_ms")))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	r.processes[str(s, "process")] = cmd
	r.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "registered" {
				ready <- nil
				return
			}
		}
		ready <- errors.New("the session process ended before it registered")
	}()
	select {
	case err := <-ready:
		return err
	case <-time.After(10 * time.Second):
		return errors.New("the session process did not register within 10 s")
	}
}

// helperHold is the "hold" helper child: it registers MAXINE_TEST_INSTANCE of
// MAXINE_TEST_SERVICE with MAXINE_TEST_TTL_MS in a Session, prints
// "registered" and waits to be killed.
func helperHold() int {
	s, ok := helperNewSession()
	if !ok {
		return 1
	}
	ttl, err := strconv.Atoi(os.Getenv("MAXINE_TEST_TTL_MS"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "MAXINE_TEST_TTL_MS:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inst := &registryv1.Instance{Service: os.Getenv("MAXINE_TEST_SERVICE"), InstanceId: os.Getenv("MAXINE_TEST_INSTANCE"), Host: "127.0.0.1", Port: 9000}
	if _, err := s.Register(ctx, inst, maxine.WithTTL(time.Duration(ttl)*time.Millisecond)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("registered")
	time.Sleep(time.Minute) // the test kills this process; a minute bounds it if not
	return 3
}

func describeChange(c maxine.Change) map[string]string {
	d := describeInstance(c.Instance)
	d["type"] = c.Type.String()
	d["removal_reason"] = c.RemovalReason.String()
	return d
}

func describeInstance(i *registryv1.Instance) map[string]string {
	return map[string]string{
		"service": i.GetService(), "instance": i.GetInstanceId(),
		"status": i.GetStatus().String(), "operator_status": i.GetOperatorStatus().String(),
	}
}

func describeAll(rs []recorded) []map[string]string {
	out := make([]map[string]string, len(rs))
	for i, r := range rs {
		out[i] = describeChange(r.change)
	}
	return out
}

// matchesExpected compares what a scenario expects (only the fields it names) with what happened.
func matchesExpected(e map[string]any, actual map[string]string) bool {
	for k, v := range e {
		if s, ok := v.(string); !ok || actual[k] != s {
			return false
		}
	}
	return true
}

func waitCond(d time.Duration, cond func() bool, what func() string) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("within %v: %s", d, what())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// The scenario's field readers: a missing or mistyped field panics with its
// name, which fails the scenario (the scenario files are the suite's code).
func str(s map[string]any, k string) string {
	v, ok := s[k].(string)
	if !ok {
		panic(fmt.Sprintf("%s: must be a string, got %v", k, s[k]))
	}
	return v
}

func num(s map[string]any, k string) int {
	v, ok := s[k].(float64)
	if !ok {
		panic(fmt.Sprintf("%s: must be a number, got %v", k, s[k]))
	}
	return int(v)
}

func strs(s map[string]any, k string) []string {
	raw, ok := s[k].([]any)
	if !ok {
		panic(fmt.Sprintf("%s: must be a list of strings, got %v", k, s[k]))
	}
	out := make([]string, len(raw))
	for i, x := range raw {
		if out[i], ok = x.(string); !ok {
			panic(fmt.Sprintf("%s: must be a list of strings, got %v", k, s[k]))
		}
	}
	return out
}

func list(s map[string]any, k string) []map[string]any {
	raw, ok := s[k].([]any)
	if !ok {
		panic(fmt.Sprintf("%s: must be a list, got %v", k, s[k]))
	}
	out := make([]map[string]any, len(raw))
	for i, x := range raw {
		if out[i], ok = x.(map[string]any); !ok {
			panic(fmt.Sprintf("%s: must be a list of objects, got %v", k, s[k]))
		}
	}
	return out
}
