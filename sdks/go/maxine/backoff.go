package maxine

import (
	"math/rand/v2"
	"time"
)

// Backoff shapes the reconnects of a Session's heartbeat stream and a
// Watcher's watch stream: "full jitter" exponential backoff, a delay drawn
// uniformly from [0, min(Max, Base * 2^attempt)), which spreads the
// reconnects of many clients that lost the same server.
type Backoff struct {
	// Base caps the first retry's delay (default 100 ms); each later cap doubles.
	Base time.Duration
	// Max is the largest cap (default 5 s).
	Max time.Duration
}

// DefaultBackoff is the Backoff used unless an option overrides it.
var DefaultBackoff = Backoff{Base: 100 * time.Millisecond, Max: 5 * time.Second}

func (b Backoff) validate(field string) error {
	if b.Base <= 0 || b.Max < b.Base {
		return invalid(field, "need 0 < Base <= Max, got Base %v, Max %v", b.Base, b.Max)
	}
	return nil
}

// Delay returns the delay before retry number attempt (counting from 0).
func (b Backoff) Delay(attempt int, r *rand.Rand) time.Duration {
	limit := b.Max
	if attempt < 40 {
		if c := b.Base << attempt; c > 0 && c < limit {
			limit = c
		}
	}
	if r == nil {
		return rand.N(limit)
	}
	return time.Duration(r.Int64N(int64(limit)))
}

// beatDelay is the wait before a session's next beat: interval within
// ±10 %, drawn anew each time, so that sessions started together (a fleet
// deploy, a reconnect storm) drift apart instead of beating in step.
func beatDelay(interval time.Duration, r *rand.Rand) time.Duration {
	spread := int64(interval) / 5
	var draw int64
	if spread > 0 {
		if r == nil {
			draw = rand.Int64N(spread)
		} else {
			draw = r.Int64N(spread)
		}
	}
	return interval - interval/10 + time.Duration(draw)
}
