package maxine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"connectrpc.com/connect"

	configv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/config/v1"
	"github.com/maxine-registry/maxine/sdks/go/maxine"
)

// The service configuration steps of the Go conformance runner
// (testdata/conformance/README.md): put_config, delete_config,
// watch_config, expect_config, close_config_watcher.

// configState is one recorded state of a config watcher: a value, or a delete.
type configState struct {
	Value   any    `json:"value"`
	Version int    `json:"version"`
	Source  string `json:"source"`
	Deleted bool   `json:"deleted"`
}

type configRecord struct {
	w       *maxine.ConfigWatcher[any]
	mu      sync.Mutex
	records []configState
	cursor  int
}

func (c *configRecord) snapshot() []configState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]configState(nil), c.records...)
}

var expectedConfigFields = map[string]bool{"value": true, "version": true, "source": true, "deleted": true}

func (r *runner) configStep(ctx context.Context, kind string, s map[string]any) error {
	if r.config == nil {
		r.config = map[string]*configRecord{}
	}
	switch kind {
	case "put_config":
		_, hasValue := s["value"]
		_, hasRaw := s["raw"]
		if hasValue == hasRaw {
			return errors.New("put_config: give value (JSON) or raw (text), one of them")
		}
		value := []byte(nil)
		if hasRaw {
			value = []byte(str(s, "raw"))
		} else {
			value, _ = json.Marshal(s["value"])
		}
		_, err := r.unary(str(s, "server")).Config.Put(ctx, connect.NewRequest(&configv1.PutRequest{Service: str(s, "service"), Key: str(s, "key"), Value: value, ContentType: "application/json"}))
		return err
	case "delete_config":
		_, err := r.unary(str(s, "server")).Config.Delete(ctx, connect.NewRequest(&configv1.DeleteRequest{Service: str(s, "service"), Key: str(s, "key")}))
		return err
	case "watch_config":
		c, err := r.client(strs(s, "servers"))
		if err != nil {
			return err
		}
		rec := &configRecord{}
		b := conformanceBackoff
		opts := maxine.ConfigWatchOptions[any]{
			Backoff: &b,
			OnChange: func(v maxine.ConfigValue[any]) {
				rec.mu.Lock()
				rec.records = append(rec.records, configState{Value: v.Value, Version: int(v.Version), Source: v.Source})
				rec.mu.Unlock()
			},
			OnDeleted: func(version uint64) {
				rec.mu.Lock()
				rec.records = append(rec.records, configState{Version: int(version), Source: "registry", Deleted: true})
				rec.mu.Unlock()
			},
		}
		if _, ok := s["cache"]; ok {
			if r.dataDir == "" {
				r.dataDir = r.t.TempDir()
			}
			opts.CacheFile = filepath.Join(r.dataDir, "cache", str(s, "cache")+".json")
		}
		w, err := maxine.NewConfigWatcher[any](c, str(s, "service"), str(s, "key"), opts)
		if err != nil {
			return err
		}
		rec.w = w
		r.t.Cleanup(func() { _ = w.Close() })
		r.config[str(s, "watcher")] = rec
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := w.Ready(rctx); err != nil {
			return err
		}
		// a value the watcher started with (its cache file) is its first record
		rec.mu.Lock()
		if v, ok := w.Value(); ok && len(rec.records) == 0 {
			rec.records = append(rec.records, configState{Value: v.Value, Version: int(v.Version), Source: v.Source})
		}
		rec.mu.Unlock()
	case "expect_config":
		rec := r.config[str(s, "watcher")]
		if rec == nil {
			return fmt.Errorf("no config watcher %s", str(s, "watcher"))
		}
		expected := list(s, "values")
		for _, e := range expected {
			for k := range e {
				if !expectedConfigFields[k] {
					return fmt.Errorf("unknown expected field %q", k)
				}
			}
		}
		start := rec.cursor
		err := waitCond(time.Duration(num(s, "within_ms"))*time.Millisecond, func() bool { return len(rec.snapshot())-start >= len(expected) }, func() string {
			return fmt.Sprintf("%d of %d values: %v, want %v", len(rec.snapshot())-start, len(expected), rec.snapshot()[start:], expected)
		})
		if err != nil {
			return err
		}
		got := rec.snapshot()[start : start+len(expected)]
		for i, e := range expected {
			// compare as the scenario's JSON: each expected field with the recorded one
			raw, _ := json.Marshal(got[i])
			var actual map[string]any
			_ = json.Unmarshal(raw, &actual)
			for k, v := range e {
				a, _ := json.Marshal(actual[k])
				b, _ := json.Marshal(v)
				if string(a) != string(b) {
					return fmt.Errorf("values %s, want %v (field %s of value %d)", mustMarshal(got), expected, k, i)
				}
			}
		}
		rec.cursor = start + len(expected)
	case "close_config_watcher":
		rec := r.config[str(s, "watcher")]
		if rec == nil {
			return fmt.Errorf("no config watcher %s", str(s, "watcher"))
		}
		return rec.w.Close()
	}
	return nil
}

func mustMarshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
