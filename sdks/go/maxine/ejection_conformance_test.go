package maxine

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The Go runner of the outlier-ejection scenarios
// (testdata/conformance/ejection/*.json, described in
// testdata/conformance/README.md): each drives an outlierEjector with a
// fake clock. The TypeScript and Python runners read the same files and
// must agree.

type ejectionScenario struct {
	Name        string           `json:"name"`
	Description string           `json:"description"`
	Config      map[string]int64 `json:"config"`
	Instances   []string         `json:"instances"`
	Steps       []ejectionStep   `json:"steps"`
}

type ejectionStep struct {
	AtMs          int64            `json:"at_ms"`
	Do            string           `json:"do"`
	Instance      string           `json:"instance"`
	Outcome       string           `json:"outcome"`
	Times         *int             `json:"times"`
	Instances     []string         `json:"instances"`
	Events        []map[string]any `json:"events"`
	EjectedTotal  *int             `json:"ejected_total"`
	RestoredTotal *int             `json:"restored_total"`
	Ejected       *int             `json:"ejected"`
}

var ejectionStepFields = map[string][]string{
	"report":          {"instance", "outcome", "times"},
	"pick":            {"instance"},
	"set_instances":   {"instances"},
	"expect_picks":    {"instances"},
	"expect_events":   {"events"},
	"expect_counters": {"ejected_total", "restored_total", "ejected"},
}

// ejectionConfigFromJSON maps the scenario keys to an EjectionConfig; a
// count of 0 is Off (the zero value means the default in Go).
func ejectionConfigFromJSON(m map[string]int64) (EjectionConfig, error) {
	var c EjectionConfig
	count := func(v int64) int {
		if v == 0 {
			return Off
		}
		return int(v)
	}
	for k, v := range m {
		ms := time.Duration(v) * time.Millisecond
		switch k {
		case "consecutive_failures":
			c.ConsecutiveFailures = count(v)
		case "interval_ms":
			c.Interval = ms
		case "base_ejection_time_ms":
			c.BaseEjectionTime = ms
		case "max_ejection_time_ms":
			c.MaxEjectionTime = ms
		case "max_ejection_percent":
			c.MaxEjectionPercent = count(v)
		case "failure_percentage_threshold":
			c.FailurePercentageThreshold = count(v)
		case "failure_percentage_minimum_hosts":
			c.FailurePercentageMinimumHosts = count(v)
		case "failure_percentage_request_volume":
			c.FailurePercentageRequestVolume = int(v)
		default:
			return c, invalid("config", "unknown key %q", k)
		}
	}
	return c.resolved()
}

func ejectionEventJSON(e EjectionEvent, t0 time.Time) map[string]any {
	at := float64(e.At.Sub(t0).Milliseconds())
	if !e.Ejected {
		return map[string]any{"type": "restored", "instance": e.InstanceID, "at_ms": at}
	}
	return map[string]any{"type": "ejected", "instance": e.InstanceID, "reason": string(e.Reason),
		"ejections": float64(e.Ejections), "duration_ms": float64(e.Duration.Milliseconds()), "at_ms": at}
}

func TestEjectionConformance(t *testing.T) {
	_, self, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(self), "..", "..", "..", "testdata", "conformance", "ejection")
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) < 9 {
		t.Fatalf("scenarios in %s: %d, %v", dir, len(files), err)
	}
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var sc ejectionScenario
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&sc); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		t.Run(sc.Name, func(t *testing.T) {
			if want := strings.TrimSuffix(filepath.Base(file), ".json"); sc.Name != want {
				t.Fatalf("name %q, file %q", sc.Name, want)
			}
			runEjectionScenario(t, sc, raw)
		})
	}
}

func runEjectionScenario(t *testing.T, sc ejectionScenario, raw []byte) {
	cfg, err := ejectionConfigFromJSON(sc.Config)
	if err != nil {
		t.Fatal(err)
	}
	// the fields each step really has, to refuse one a kind does not take
	var rawSteps struct {
		Steps []map[string]json.RawMessage `json:"steps"`
	}
	if err := json.Unmarshal(raw, &rawSteps); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	var events []EjectionEvent
	o := newOutlierEjector(cfg, "svc", func() time.Time { return now }, func(e EjectionEvent) { events = append(events, e) })
	members := slices.Clone(sc.Instances)
	o.retain(members)
	seen := 0
	for i, st := range sc.Steps {
		where := func() string {
			return sc.Name + ": step " + strconv.Itoa(i) + " (" + st.Do + " at " + strconv.FormatInt(st.AtMs, 10) + " ms)"
		}
		known, ok := ejectionStepFields[st.Do]
		if !ok {
			t.Fatalf("%s: unknown step kind", where())
		}
		for f := range rawSteps.Steps[i] {
			if f != "do" && f != "at_ms" && !slices.Contains(known, f) {
				t.Fatalf("%s: field %s does not belong to this step", where(), f)
			}
		}
		at := t0.Add(time.Duration(st.AtMs) * time.Millisecond)
		if at.Before(now) {
			t.Fatalf("%s: at_ms goes back", where())
		}
		now = at
		switch st.Do {
		case "report":
			if st.Outcome != "success" && st.Outcome != "failure" {
				t.Fatalf("%s: outcome must be success or failure", where())
			}
			n := 1
			if st.Times != nil {
				n = *st.Times
			}
			for range n {
				o.report(st.Instance, st.Outcome == "success")
			}
		case "pick":
			if !slices.Contains(o.allowed(members), st.Instance) {
				t.Fatalf("%s: %s is not in the pick set %v", where(), st.Instance, o.allowed(members))
			}
			o.picked(st.Instance)
		case "set_instances":
			members = slices.Clone(st.Instances)
			o.retain(members)
		case "expect_picks":
			if got := o.allowed(members); !slices.Equal(got, st.Instances) {
				t.Fatalf("%s: picks %v, want %v", where(), got, st.Instances)
			}
		case "expect_events":
			got := []map[string]any{}
			for _, e := range events[seen:] {
				got = append(got, ejectionEventJSON(e, t0))
			}
			want := st.Events
			if want == nil {
				want = []map[string]any{}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: events\n got %v\nwant %v", where(), got, want)
			}
			seen = len(events)
		case "expect_counters":
			got := o.counters()
			want := EjectionStats{EjectedTotal: *st.EjectedTotal, RestoredTotal: *st.RestoredTotal, Ejected: *st.Ejected}
			if got != want {
				t.Fatalf("%s: counters %+v, want %+v", where(), got, want)
			}
		}
	}
}
