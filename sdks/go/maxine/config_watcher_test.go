package maxine_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	configv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/config/v1"
	"github.com/maxine-registry/maxine/sdks/go/maxine"
)

type limits struct {
	Max int `json:"max"`
}

func putConfig(t *testing.T, c *maxine.Client, service, key string, value []byte) *configv1.ConfigEntry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := c.Config.Put(ctx, connect.NewRequest(&configv1.PutRequest{Service: service, Key: key, Value: value, ContentType: "application/json"}))
	if err != nil {
		t.Fatal(err)
	}
	return res.Msg.GetEntry()
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// TestConfigWatcher runs GetConfig and a ConfigWatcher against a server of
// its own (its configuration in a temporary directory): JSON decoded, each
// change in order, the last good value kept through an undecodable version,
// a delete, an outage and a restart (a change made after it arrives by the
// resume), and a cache file that gives the value while the server is down.
func TestConfigWatcher(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"MAXINE_DATA_DIR": filepath.Join(dir, "data")}
	srv := startServer(t, env)
	c := newClient(t, srv.URL)
	putConfig(t, c, "pay", "limits.json", mustJSON(limits{Max: 1}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	got, err := maxine.GetConfig[limits](ctx, c, "", "pay", "limits.json", 0, nil)
	if err != nil || got.Value.Max != 1 || got.Version != 1 {
		t.Fatalf("GetConfig = %+v, %v", got, err)
	}

	var mu sync.Mutex
	var seen []int
	var invalid []uint64
	cacheFile := filepath.Join(dir, "cache", "limits.json")
	b := maxine.Backoff{Base: 20 * time.Millisecond, Max: 100 * time.Millisecond}
	w, err := maxine.NewConfigWatcher[limits](c, "pay", "limits.json", maxine.ConfigWatchOptions[limits]{
		CacheFile: cacheFile,
		Backoff:   &b,
		OnChange:  func(v maxine.ConfigValue[limits]) { mu.Lock(); seen = append(seen, v.Value.Max); mu.Unlock() },
		OnInvalid: func(_ error, version uint64) { mu.Lock(); invalid = append(invalid, version); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if v, ok := w.Value(); !ok || v.Value.Max != 1 || v.Source != "registry" {
		t.Fatalf("Value after Ready = %+v, %v", v, ok)
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			ok := cond()
			mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s (seen %v, invalid %v)", what, seen, invalid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	putConfig(t, c, "pay", "limits.json", mustJSON(limits{Max: 2}))
	putConfig(t, c, "pay", "other", mustJSON("ignored"))
	putConfig(t, c, "pay", "limits.json", []byte("{not json"))
	waitUntil("the invalid version", func() bool { return len(invalid) == 1 })
	if v, _ := w.Value(); v.Value.Max != 2 || invalid[0] != 3 {
		t.Fatalf("after an invalid version: value %+v, invalid %v", v, invalid)
	}

	// the server stops and comes back on the same port and data directory; a change made there arrives by the resume
	port := strconv.Itoa(srv.Port)
	srv.Kill()
	if v, ok := w.Value(); !ok || v.Value.Max != 2 {
		t.Fatalf("value lost in the outage: %+v", v)
	}
	env["MAXINE_PORT"] = port
	srv2 := startServer(t, env)
	c2 := newClient(t, srv2.URL)
	putConfig(t, c2, "pay", "limits.json", mustJSON(limits{Max: 4}))
	waitUntil("the change after the restart", func() bool { return len(seen) > 0 && seen[len(seen)-1] == 4 })
	mu.Lock()
	// the snapshot's value, then each change: none lost across the restart, the invalid version skipped
	if len(seen) != 3 || seen[0] != 1 || seen[1] != 2 {
		t.Fatalf("changes = %v, want [1 2 4]", seen)
	}
	mu.Unlock()
	_ = w.Close()
	srv2.Kill()

	// with the server down, a new watcher starts from the cache file
	down, err := maxine.NewConfigWatcher[limits](c2, "pay", "limits.json", maxine.ConfigWatchOptions[limits]{CacheFile: cacheFile, Backoff: &b})
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	rctx, rcancel := context.WithTimeout(ctx, time.Second)
	defer rcancel()
	if err := down.Ready(rctx); err != nil {
		t.Fatal(err)
	}
	if v, ok := down.Value(); !ok || v.Value.Max != 4 || v.Version != 4 || v.Revision != 5 || v.Source != "cache" {
		t.Fatalf("cached value = %+v, %v", v, ok)
	}
	if _, err := os.Stat(cacheFile); err != nil {
		t.Fatal(err)
	}
}
