package maxine

import "time"

// The local outlier ejector: what a Watcher's pick learns from call
// outcomes. The same rules, defaults and order of evaluation as the
// TypeScript and Python SDKs (testdata/conformance/ejection proves it);
// docs/client-ejection.md explains them beside Envoy's and gRPC's. No
// timer: the interval sweeps that are due run when the ejector is next
// asked (report or pick), at the times they were due.

// EjectionConfig tunes a Watcher's local outlier ejection. The zero value
// of a field means its default (DefaultEjection); use Off for a rule's
// count or threshold to turn the rule off.
type EjectionConfig struct {
	// ConsecutiveFailures ejects an instance after this many failures in a
	// row (Envoy's consecutive_5xx). Default 5; Off turns the rule off.
	ConsecutiveFailures int
	// Interval is the period of the failure-percentage sweep and of the
	// ejection-count decay (gRFC A50's interval). Default 10 s.
	Interval time.Duration
	// BaseEjectionTime is the first ejection's length; the n-th lasts n
	// times it. Default 30 s.
	BaseEjectionTime time.Duration
	// MaxEjectionTime caps an ejection's length (at max(base, this)).
	// Default 300 s.
	MaxEjectionTime time.Duration
	// MaxEjectionPercent bounds the share of a service's instances ejected
	// at once; one may always be. Default 10; Off means 0 (one at a time).
	MaxEjectionPercent int
	// FailurePercentageThreshold ejects, at a sweep, an instance whose
	// failed share of the interval's calls is above it. Default 85; Off
	// turns the rule off.
	FailurePercentageThreshold int
	// FailurePercentageMinimumHosts: the failure-percentage rule runs only
	// with at least this many instances. Default 5; Off means 0.
	FailurePercentageMinimumHosts int
	// FailurePercentageRequestVolume: an instance needs at least this many
	// calls in the interval to be judged by percentage. Default 50.
	FailurePercentageRequestVolume int
}

// Off, as an EjectionConfig count, percentage or threshold, stands for 0
// (whose zero value means "the default"): ConsecutiveFailures: Off and
// FailurePercentageThreshold: Off turn those rules off.
const Off = -1

// DefaultEjection holds the defaults: Envoy's consecutive_5xx and gRFC
// A50's failure percentage, base and maximum ejection times and maximum
// ejection percentage.
var DefaultEjection = EjectionConfig{
	ConsecutiveFailures:            5,
	Interval:                       10 * time.Second,
	BaseEjectionTime:               30 * time.Second,
	MaxEjectionTime:                300 * time.Second,
	MaxEjectionPercent:             10,
	FailurePercentageThreshold:     85,
	FailurePercentageMinimumHosts:  5,
	FailurePercentageRequestVolume: 50,
}

// resolved fills in the defaults, maps Off to 0 and checks the ranges.
func (c EjectionConfig) resolved() (EjectionConfig, error) {
	d := DefaultEjection
	num := func(field string, v *int, def, max int) error {
		switch {
		case *v == 0:
			*v = def
		case *v == Off:
			*v = 0
		case *v < 0 || *v > max:
			return invalid("ejection."+field, "must be 0..%d (or Off), got %d", max, *v)
		}
		return nil
	}
	dur := func(field string, v *time.Duration, def time.Duration) error {
		if *v < 0 {
			return invalid("ejection."+field, "must be >= 0 (0: the default), got %v", *v)
		}
		if *v == 0 {
			*v = def
		}
		return nil
	}
	const many = 1 << 30
	for _, err := range []error{
		num("ConsecutiveFailures", &c.ConsecutiveFailures, d.ConsecutiveFailures, many),
		dur("Interval", &c.Interval, d.Interval),
		dur("BaseEjectionTime", &c.BaseEjectionTime, d.BaseEjectionTime),
		dur("MaxEjectionTime", &c.MaxEjectionTime, d.MaxEjectionTime),
		num("MaxEjectionPercent", &c.MaxEjectionPercent, d.MaxEjectionPercent, 100),
		num("FailurePercentageThreshold", &c.FailurePercentageThreshold, d.FailurePercentageThreshold, 100),
		num("FailurePercentageMinimumHosts", &c.FailurePercentageMinimumHosts, d.FailurePercentageMinimumHosts, many),
		num("FailurePercentageRequestVolume", &c.FailurePercentageRequestVolume, d.FailurePercentageRequestVolume, many),
	} {
		if err != nil {
			return c, err
		}
	}
	if c.FailurePercentageRequestVolume == 0 {
		return c, invalid("ejection.FailurePercentageRequestVolume", "must be >= 1, got Off")
	}
	return c, nil
}

// EjectionReason says which rule ejected an instance: "consecutive_failures",
// "failure_percentage" or "trial_failed".
type EjectionReason string

// The reasons of an ejection.
const (
	ReasonConsecutiveFailures EjectionReason = "consecutive_failures"
	ReasonFailurePercentage   EjectionReason = "failure_percentage"
	ReasonTrialFailed         EjectionReason = "trial_failed"
)

// EjectionEvent reports that an instance was ejected from (Ejected) or
// restored to (!Ejected) a Watcher's picks.
type EjectionEvent struct {
	Service    string
	InstanceID string
	Ejected    bool
	// Reason, Ejections (the instance's count, this one included) and
	// Duration are set for an ejection.
	Reason    EjectionReason
	Ejections int
	Duration  time.Duration
	// At is when it took effect (a sweep's time for failure_percentage).
	At time.Time
}

// EjectionStats are the ejections and restorations so far and the
// instances ejected (or on trial) now.
type EjectionStats struct {
	EjectedTotal  int
	RestoredTotal int
	Ejected       int
}

type phase uint8

const (
	healthy phase = iota
	ejected
	onTrial
)

type ejectEntry struct {
	phase        phase
	consecutive  int
	ejections    int
	until        time.Time
	trialTaken   bool
	trialTakenAt time.Time
	successes    int
	failures     int
}

// outlierEjector decides which instances of ONE service a pick may
// choose, from the outcomes of the calls the client made. It is local: it
// never changes the registry. Not safe for concurrent use: the Watcher
// holds its lock around every call.
type outlierEjector struct {
	cfg        EjectionConfig
	now        func() time.Time
	onEvent    func(EjectionEvent)
	service    string
	entries    map[string]*ejectEntry
	members    []string
	nextSweep  time.Time
	notHealthy int
	stats      EjectionStats
	// gen changes whenever the set allowed could return may change, so a
	// pick can keep its narrowed candidates until it does
	gen uint64
	// wake is the earliest instant expire has work (an ejection's end, a
	// taken trial's release); zero: none
	wake time.Time
}

// wakeAt makes expire look again at t at the latest.
func (o *outlierEjector) wakeAt(t time.Time) {
	if o.wake.IsZero() || t.Before(o.wake) {
		o.wake = t
	}
}

func newOutlierEjector(cfg EjectionConfig, service string, now func() time.Time, onEvent func(EjectionEvent)) *outlierEjector {
	return &outlierEjector{cfg: cfg, now: now, onEvent: onEvent, service: service,
		entries: map[string]*ejectEntry{}, nextSweep: now().Add(cfg.Interval)}
}

// retain sets the members, in instance_id order: state of instances no
// longer held is dropped, new ones start afresh.
func (o *outlierEjector) retain(ids []string) {
	o.advance(o.now())
	keep := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		keep[id] = struct{}{}
		if o.entries[id] == nil {
			o.entries[id] = &ejectEntry{}
		}
	}
	for id, e := range o.entries {
		if _, ok := keep[id]; !ok {
			if e.phase != healthy {
				o.notHealthy--
			}
			delete(o.entries, id)
		}
	}
	o.members = ids
}

// report records one call outcome of a member; outcomes for an ejected
// instance (late answers) are ignored.
func (o *outlierEjector) report(id string, success bool) {
	now := o.now()
	o.advance(now)
	e := o.entries[id]
	if e == nil || e.phase == ejected {
		return
	}
	if e.phase == onTrial {
		if !success {
			o.eject(id, e, now, ReasonTrialFailed, true)
			return
		}
		e.phase, e.consecutive, e.trialTaken = healthy, 0, false
		o.notHealthy--
		o.gen++
		o.stats.RestoredTotal++
		o.emit(EjectionEvent{Service: o.service, InstanceID: id, At: now})
		return
	}
	if success {
		e.successes++
		e.consecutive = 0
		return
	}
	e.failures++
	e.consecutive++
	if o.cfg.ConsecutiveFailures > 0 && e.consecutive >= o.cfg.ConsecutiveFailures {
		o.eject(id, e, now, ReasonConsecutiveFailures, false)
	}
}

// allowed returns the candidates a pick may choose: healthy ones, and
// instances whose ejection ended and whose single trial is not taken; all
// of ids when that leaves none. Candidates that are not members pass.
func (o *outlierEjector) allowed(ids []string) []string {
	o.advance(o.now())
	if o.notHealthy == 0 {
		return ids
	}
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if o.available(o.entries[id]) {
			out = append(out, id)
		}
	}
	if len(out) == 0 {
		return ids
	}
	return out
}

// picked tells the ejector a pick chose id: an instance on trial is then
// taken until an outcome is reported or an interval passes.
func (o *outlierEjector) picked(id string) {
	now := o.now()
	o.advance(now)
	if e := o.entries[id]; e != nil && e.phase == onTrial && !e.trialTaken {
		e.trialTaken, e.trialTakenAt = true, now
		o.gen++
		o.wakeAt(now.Add(o.cfg.Interval))
	}
}

func (o *outlierEjector) counters() EjectionStats {
	o.advance(o.now())
	s := o.stats
	s.Ejected = o.notHealthy
	return s
}

// available: healthy, or on trial with the trial not taken (a taken trial
// is released by expire once an interval passed with no outcome).
func (o *outlierEjector) available(e *ejectEntry) bool {
	if e == nil || e.phase == healthy {
		return true
	}
	return e.phase == onTrial && !e.trialTaken
}

// eject ejects e unless max_ejection_percent forbids it (a failed trial was
// counted already: forced).
func (o *outlierEjector) eject(id string, e *ejectEntry, at time.Time, reason EjectionReason, forced bool) {
	if !forced && o.notHealthy > 0 && 100*(o.notHealthy+1) > o.cfg.MaxEjectionPercent*len(o.members) {
		return
	}
	if e.phase == healthy {
		o.notHealthy++
	}
	e.ejections++
	e.phase, e.consecutive, e.trialTaken = ejected, 0, false
	d := o.cfg.BaseEjectionTime * time.Duration(e.ejections)
	if limit := max(o.cfg.BaseEjectionTime, o.cfg.MaxEjectionTime); d > limit || d < 0 {
		d = limit
	}
	e.until = at.Add(d)
	o.wakeAt(e.until)
	o.stats.EjectedTotal++
	o.gen++
	o.emit(EjectionEvent{Service: o.service, InstanceID: id, Ejected: true, Reason: reason, Ejections: e.ejections, Duration: d, At: at})
}

func (o *outlierEjector) emit(ev EjectionEvent) {
	if o.onEvent != nil {
		o.onEvent(ev)
	}
}

func (o *outlierEjector) advance(now time.Time) {
	for !o.nextSweep.After(now) {
		o.sweep(o.nextSweep)
		o.nextSweep = o.nextSweep.Add(o.cfg.Interval)
	}
	o.expire(now)
}

func (o *outlierEjector) expire(t time.Time) {
	if o.notHealthy == 0 || o.wake.IsZero() || t.Before(o.wake) {
		return
	}
	o.wake = time.Time{}
	for _, e := range o.entries {
		switch {
		case e.phase == ejected && !e.until.After(t):
			e.phase, e.trialTaken = onTrial, false
			o.gen++
		case e.phase == ejected:
			o.wakeAt(e.until)
		case e.phase == onTrial && e.trialTaken && t.Sub(e.trialTakenAt) >= o.cfg.Interval:
			e.trialTaken = false // no outcome within an interval: the trial is offered again
			o.gen++
		case e.phase == onTrial && e.trialTaken:
			o.wakeAt(e.trialTakenAt.Add(o.cfg.Interval))
		}
	}
}

// sweep is the interval's work (A50's timer): expiries, the
// failure-percentage rule, counts reset, ejection counts decay.
func (o *outlierEjector) sweep(t time.Time) {
	o.expire(t)
	c := o.cfg
	if c.FailurePercentageThreshold > 0 && len(o.members) >= c.FailurePercentageMinimumHosts {
		for _, id := range o.members {
			e := o.entries[id]
			if e == nil || e.phase != healthy {
				continue
			}
			volume := e.successes + e.failures
			if volume >= c.FailurePercentageRequestVolume && 100*e.failures > c.FailurePercentageThreshold*volume {
				o.eject(id, e, t, ReasonFailurePercentage, false)
			}
		}
	}
	for _, e := range o.entries {
		e.successes, e.failures = 0, 0
		if e.phase == healthy && e.ejections > 0 {
			e.ejections--
		}
	}
}
