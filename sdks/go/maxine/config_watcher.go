package maxine

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"connectrpc.com/connect"

	configv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/config/v1"
)

// ConfigValue is one decoded version of a configuration key and where it
// came from: "registry" (a snapshot or a change) or "cache" (the local
// file, read at start).
type ConfigValue[T any] struct {
	Value       T
	Version     uint64
	Revision    uint64
	ContentType string
	Source      string
}

// Decoder turns a stored value into T; an error keeps the last good value.
type Decoder[T any] func(value []byte, contentType string) (T, error)

// JSONDecoder is the default Decoder: the value as JSON.
func JSONDecoder[T any](value []byte, _ string) (T, error) {
	var v T
	err := json.Unmarshal(value, &v)
	return v, err
}

// GetConfig reads a key's latest value (version 0) or a kept version and
// decodes it (JSON when decode is nil).
func GetConfig[T any](ctx context.Context, c *Client, namespace, service, key string, version uint64, decode Decoder[T]) (ConfigValue[T], error) {
	if decode == nil {
		decode = JSONDecoder[T]
	}
	res, err := c.Config.Get(ctx, connect.NewRequest(&configv1.GetRequest{Namespace: namespace, Service: service, Key: key, Version: version}))
	if err != nil {
		return ConfigValue[T]{}, err
	}
	e := res.Msg.GetEntry()
	v, err := decode(e.GetValue(), e.GetContentType())
	if err != nil {
		return ConfigValue[T]{}, fmt.Errorf("maxine: decoding %s/%s/%s version %d: %w", e.GetNamespace(), service, key, e.GetVersion(), err)
	}
	return ConfigValue[T]{Value: v, Version: e.GetVersion(), Revision: e.GetRevision(), ContentType: e.GetContentType(), Source: "registry"}, nil
}

// ConfigWatchOptions configure a ConfigWatcher; only Decoder and CacheFile
// are commonly set.
type ConfigWatchOptions[T any] struct {
	// Namespace of the service; empty means "default".
	Namespace string
	// Decoder reads a value (default JSONDecoder). A version it refuses is
	// reported to OnInvalid and the last good value kept.
	Decoder Decoder[T]
	// CacheFile, when set, holds the last good value and the revision it
	// was read at: read at start (a service starts with its configuration
	// while the registry is down) and rewritten atomically on each change.
	CacheFile string
	// Backoff shapes reconnects (default DefaultBackoff).
	Backoff *Backoff
	// OnChange is called with each new value, in order (not concurrently).
	OnChange func(ConfigValue[T])
	// OnDeleted is called when the key is deleted (the value is then gone).
	OnDeleted func(version uint64)
	// OnInvalid is called with a version the decoder refused.
	OnInvalid func(err error, version uint64)
	// OnError is called with each stream failure (retried) and a fatal one.
	OnError func(error)
}

// ConfigWatcher keeps one configuration key's value up to date over
// ConfigService.Watch: a snapshot, then each change, decoded into T. It
// keeps the last good value while the registry is unreachable or a version
// does not decode, resumes after a failure from the last revision it saw
// (the server replays exactly what it missed, or sends a fresh snapshot),
// and with CacheFile starts from the value it last saw when the registry
// does not answer. Lifecycle as Watcher: NewConfigWatcher, Start, Ready,
// Close.
type ConfigWatcher[T any] struct {
	client       *Client
	service, key string
	opts         ConfigWatchOptions[T]
	startOnce    sync.Once
	readyOnce    sync.Once
	cancel       context.CancelFunc
	done, ready  chan struct{}
	update       chan struct{}
	mu           sync.Mutex
	last         *ConfigValue[T]
	revision     uint64
	registryID   string
	fatal        error
}

// NewConfigWatcher returns a ConfigWatcher of service/key that opens no
// stream until Start (or Ready); with a CacheFile it already holds the
// cached value.
func NewConfigWatcher[T any](c *Client, service, key string, opts ConfigWatchOptions[T]) (*ConfigWatcher[T], error) {
	if service == "" || key == "" {
		return nil, invalid("NewConfigWatcher", "service and key must not be empty")
	}
	if opts.Decoder == nil {
		opts.Decoder = JSONDecoder[T]
	}
	if opts.Backoff == nil {
		b := DefaultBackoff
		opts.Backoff = &b
	}
	if err := opts.Backoff.validate("ConfigWatchOptions.Backoff"); err != nil {
		return nil, err
	}
	w := &ConfigWatcher[T]{client: c, service: service, key: key, opts: opts, done: make(chan struct{}), ready: make(chan struct{}), update: make(chan struct{}, 1)}
	if opts.CacheFile != "" {
		w.readCache()
	}
	return w, nil
}

// Start opens the stream in the background; only the first call counts.
func (w *ConfigWatcher[T]) Start(ctx context.Context) {
	w.startOnce.Do(func() {
		ctx, cancel := context.WithCancel(ctx)
		w.mu.Lock()
		w.cancel = cancel
		w.mu.Unlock()
		go w.run(ctx, cancel)
	})
}

// Ready starts the watcher if needed and waits until the key's state is
// known (the registry's snapshot, or a cached value), a fatal error, or
// the end of ctx.
func (w *ConfigWatcher[T]) Ready(ctx context.Context) error {
	w.Start(context.WithoutCancel(ctx))
	select {
	case <-w.ready:
		return nil
	case <-w.done:
		if err := w.Err(); err != nil {
			return err
		}
		return errors.New("maxine: config watcher closed before a value was known")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Value returns the last good value, and false when there is none (before
// any, or after a delete).
func (w *ConfigWatcher[T]) Value() (ConfigValue[T], bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.last == nil {
		return ConfigValue[T]{}, false
	}
	return *w.last, true
}

// Updates receives a signal after each change of the value (coalesced).
func (w *ConfigWatcher[T]) Updates() <-chan struct{} { return w.update }

// Err returns the fatal error that stopped the watcher, if one did.
func (w *ConfigWatcher[T]) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fatal
}

// Close stops the watcher and waits for its goroutine; idempotent.
func (w *ConfigWatcher[T]) Close() error {
	w.startOnce.Do(func() { close(w.done) })
	w.mu.Lock()
	cancel := w.cancel
	w.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	<-w.done
	return nil
}

func (w *ConfigWatcher[T]) run(ctx context.Context, cancel context.CancelFunc) {
	defer close(w.done)
	defer cancel()
	attempt := 0
	for {
		delivered, err := w.stream(ctx)
		if ctx.Err() != nil {
			return
		}
		if delivered {
			attempt = 0
		}
		if w.opts.OnError != nil {
			w.opts.OnError(err)
		}
		if isFatal(err) {
			w.mu.Lock()
			w.fatal = err
			w.mu.Unlock()
			return
		}
		t := time.NewTimer(w.opts.Backoff.Delay(attempt, nil))
		attempt++
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// stream runs one Watch call, resuming from the last revision seen (the
// cache's included), and returns whether it delivered a message and what
// ended it.
func (w *ConfigWatcher[T]) stream(ctx context.Context) (bool, error) {
	w.mu.Lock()
	req := &configv1.WatchRequest{Namespace: w.opts.Namespace, Services: []string{w.service}, ResumeRevision: w.revision, RegistryId: w.registryID}
	w.mu.Unlock()
	st, err := w.client.Config.Watch(ctx, connect.NewRequest(req))
	if err != nil {
		return false, err
	}
	defer st.Close()
	delivered := false
	var snapshot *configv1.ConfigEntry
	for st.Receive() {
		delivered = true
		msg := st.Msg()
		switch {
		case msg.GetSnapshot() != nil:
			for _, e := range msg.GetSnapshot().GetEntries() {
				if e.GetKey() == w.key {
					snapshot = e
				}
			}
		case msg.GetSnapshotEnd() != nil:
			end := msg.GetSnapshotEnd()
			w.mu.Lock()
			w.registryID = end.GetRegistryId()
			w.mu.Unlock()
			if snapshot != nil {
				w.accept(snapshot, end.GetRevision())
			} else {
				w.gone(end.GetRevision(), 0)
			}
			w.mu.Lock()
			w.revision = end.GetRevision()
			w.mu.Unlock()
			snapshot = nil
			w.readyOnce.Do(func() { close(w.ready) })
		case msg.GetEvent() != nil:
			ev := msg.GetEvent()
			w.mu.Lock()
			w.revision = ev.GetRevision()
			w.mu.Unlock()
			if ev.GetEntry().GetKey() != w.key {
				continue
			}
			if ev.GetType() == configv1.EventType_EVENT_TYPE_DELETED {
				w.gone(ev.GetRevision(), ev.GetEntry().GetVersion())
			} else {
				w.accept(ev.GetEntry(), ev.GetRevision())
			}
		case msg.GetProgress() != nil:
			p := msg.GetProgress()
			w.mu.Lock()
			w.registryID, w.revision = p.GetRegistryId(), p.GetRevision()
			w.mu.Unlock()
			w.readyOnce.Do(func() { close(w.ready) })
		}
	}
	if err := st.Err(); err != nil {
		return delivered, err
	}
	return delivered, connect.NewError(connect.CodeUnavailable, errors.New("config watch: the server ended the stream"))
}

func (w *ConfigWatcher[T]) accept(e *configv1.ConfigEntry, revision uint64) {
	w.mu.Lock()
	same := w.last != nil && w.last.Source == "registry" && w.last.Version == e.GetVersion()
	w.mu.Unlock()
	if same {
		return
	}
	v, err := w.opts.Decoder(e.GetValue(), e.GetContentType())
	if err != nil {
		if w.opts.OnInvalid != nil {
			w.opts.OnInvalid(err, e.GetVersion())
		}
		return
	}
	cv := ConfigValue[T]{Value: v, Version: e.GetVersion(), Revision: revision, ContentType: e.GetContentType(), Source: "registry"}
	w.mu.Lock()
	w.last = &cv
	registryID := w.registryID
	w.mu.Unlock()
	if w.opts.CacheFile != "" {
		w.writeCache(cacheRecord{RegistryID: registryID, Revision: strconv.FormatUint(revision, 10), Version: strconv.FormatUint(e.GetVersion(), 10), ContentType: e.GetContentType(), Value: base64.StdEncoding.EncodeToString(e.GetValue())})
	}
	if w.opts.OnChange != nil {
		w.opts.OnChange(cv)
	}
	w.signal()
}

func (w *ConfigWatcher[T]) gone(revision, version uint64) {
	w.mu.Lock()
	had := w.last != nil
	w.last = nil
	registryID := w.registryID
	w.mu.Unlock()
	if !had && version == 0 {
		return
	}
	if w.opts.CacheFile != "" {
		w.writeCache(cacheRecord{RegistryID: registryID, Revision: strconv.FormatUint(revision, 10), Deleted: true})
	}
	if w.opts.OnDeleted != nil {
		w.opts.OnDeleted(version)
	}
	w.signal()
}

func (w *ConfigWatcher[T]) signal() {
	select {
	case w.update <- struct{}{}:
	default:
	}
}

// cacheRecord is the cache file's content, the same in the three SDKs.
type cacheRecord struct {
	RegistryID  string `json:"registryId"`
	Revision    string `json:"revision"`
	Version     string `json:"version,omitempty"`
	ContentType string `json:"contentType,omitempty"`
	Value       string `json:"value,omitempty"`
	Deleted     bool   `json:"deleted,omitempty"`
}

func (w *ConfigWatcher[T]) readCache() {
	data, err := os.ReadFile(w.opts.CacheFile)
	if err != nil {
		return // no cache yet, or unreadable: start from the registry alone
	}
	var rec cacheRecord
	if json.Unmarshal(data, &rec) != nil {
		return
	}
	revision, err := strconv.ParseUint(rec.Revision, 10, 64)
	if err != nil {
		return
	}
	if rec.Deleted {
		w.registryID, w.revision = rec.RegistryID, revision
		w.readyOnce.Do(func() { close(w.ready) })
		return
	}
	value, err1 := base64.StdEncoding.DecodeString(rec.Value)
	version, err2 := strconv.ParseUint(rec.Version, 10, 64)
	if err1 != nil || err2 != nil {
		return
	}
	v, err := w.opts.Decoder(value, rec.ContentType)
	if err != nil {
		return // a cache the decoder refuses: start from a fresh snapshot
	}
	w.registryID, w.revision = rec.RegistryID, revision
	w.last = &ConfigValue[T]{Value: v, Version: version, Revision: revision, ContentType: rec.ContentType, Source: "cache"}
	w.readyOnce.Do(func() { close(w.ready) })
}

func (w *ConfigWatcher[T]) writeCache(rec cacheRecord) {
	data, _ := json.Marshal(rec)
	file := w.opts.CacheFile
	err := os.MkdirAll(filepath.Dir(file), 0o755)
	if err == nil {
		err = os.WriteFile(file+".tmp", data, 0o644)
	}
	if err == nil {
		err = os.Rename(file+".tmp", file)
	}
	if err != nil && w.opts.OnError != nil {
		w.opts.OnError(err)
	}
}
