package maxine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
)

// errIdle ends a stream because the session holds no instance any more.
var errIdle = errors.New("idle")

// run is the session's loop: it opens the heartbeat stream while the session
// holds instances, and reopens it with backoff when it fails.
func (s *Session) run() {
	defer close(s.loop)
	attempt := 0
	var downSince time.Time
	for {
		// Wait for work: an instance to keep alive.
		for s.count() == 0 {
			select {
			case <-s.wake:
			case <-s.stop:
				return
			case <-s.ctx.Done():
				return
			}
		}
		failures, since := attempt, downSince
		answered, err := s.stream(func() {
			if !since.IsZero() {
				s.emit(SessionEvent{Kind: SessionReconnected, Attempts: failures, Downtime: time.Since(since)})
			}
		})
		if answered {
			attempt, downSince = 0, time.Time{}
		}
		if err == nil || errors.Is(err, errIdle) {
			continue
		}
		select {
		case <-s.stop:
			return
		default:
		}
		if s.ctx.Err() != nil {
			return
		}
		if downSince.IsZero() {
			downSince = time.Now()
		}
		if isFatal(err) {
			s.finish(fmt.Errorf("%w: %w", ErrSessionLost, err))
			return
		}
		if s.cfg.maxDowntime > 0 && time.Since(downSince) > s.cfg.maxDowntime {
			s.finish(fmt.Errorf("%w: no heartbeat stream for %v: %w", ErrSessionLost, time.Since(downSince).Round(time.Millisecond), err))
			return
		}
		s.emit(SessionEvent{Kind: SessionDisconnected, Err: err})
		t := time.NewTimer(s.cfg.backoff.Delay(attempt, nil))
		attempt++
		select {
		case <-t.C:
		case <-s.stop:
			t.Stop()
			return
		case <-s.ctx.Done():
			t.Stop()
			return
		}
	}
}

func (s *Session) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// interval is the beat interval: the option, or a third of the smallest TTL.
func (s *Session) interval() time.Duration {
	if s.cfg.interval > 0 {
		return s.cfg.interval
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var smallest time.Duration
	for _, e := range s.entries {
		if smallest == 0 || e.h.ttl < smallest {
			smallest = e.h.ttl
		}
	}
	return max(time.Millisecond, smallest/3)
}

// ackTimeout is how long a beat may go unanswered: the option, or two
// beat intervals.
func (s *Session) ackTimeout(interval time.Duration) time.Duration {
	if s.cfg.ackTimeout > 0 {
		return s.cfg.ackTimeout
	}
	return 2 * interval
}

// stream runs one Heartbeat call until it fails, the session holds no
// instance (errIdle), or the session stops (nil). onFirst runs when the
// first response arrives.
func (s *Session) stream(onFirst func()) (answered bool, err error) {
	// The cause of a cancel tells a failover client (WithReplicas) whether
	// the server failed us (no ack in time: DEADLINE_EXCEEDED) or we stopped.
	ctx, cancel := context.WithCancelCause(s.ctx)
	defer cancel(nil)
	st := s.client.RPC.Heartbeat(ctx)
	var pmu sync.Mutex
	pending := map[uint64]time.Time{} // send times of unanswered requests
	var gotAnswer atomic.Bool
	recvDone := make(chan error, 1)
	go func() {
		first := true
		for {
			res, err := st.Receive()
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = connect.NewError(connect.CodeUnavailable, errors.New("heartbeat: the server ended the stream"))
				}
				recvDone <- err
				return
			}
			if first {
				first = false
				onFirst()
			}
			gotAnswer.Store(true)
			pmu.Lock()
			for k := range pending {
				if k <= res.GetSequence() {
					delete(pending, k)
				}
			}
			pmu.Unlock()
			s.onResponse(res)
		}
	}()
	interval := s.interval()
	// abort ends the call at once. Closing the request side too matters:
	// net/http does not watch the context of an HTTP/2 request while its
	// body is still open, so a cancel alone leaves a hung stream hanging.
	abort := func(cause error) {
		cancel(cause)
		_ = st.CloseRequest()
	}
	first := true
	send := func(all bool) error {
		// A stream's first request carries each instance whole, so that a
		// server that lost it (a restart) registers it from the beat.
		req := s.nextRequest(all, first)
		first = false
		if req == nil {
			return nil
		}
		pmu.Lock()
		pending[req.GetSequence()] = time.Now()
		pmu.Unlock()
		// A Send stuck on a dead connection is cut after the ack timeout.
		ackTimeout := s.ackTimeout(interval)
		watchdog := time.AfterFunc(ackTimeout, func() {
			cancel(connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf("heartbeat: a beat could not be sent within %v", ackTimeout)))
		})
		defer watchdog.Stop()
		return st.Send(req)
	}
	// finish half-closes the stream and waits (bounded) for the server to end it.
	finish := func(reason error) (bool, error) {
		_ = st.CloseRequest()
		t := time.NewTimer(s.cfg.closeTimeout)
		defer t.Stop()
		select {
		case <-recvDone:
		case <-t.C:
			cancel(nil)
			<-recvDone
		}
		_ = st.CloseResponse()
		return gotAnswer.Load(), reason
	}
	fail := func() (bool, error) {
		abort(nil)
		err := <-recvDone
		_ = st.CloseResponse()
		return gotAnswer.Load(), err
	}
	if err := send(true); err != nil {
		return fail()
	}
	tick := time.NewTimer(beatDelay(interval, nil))
	defer tick.Stop()
	for {
		select {
		case <-s.wake:
			if s.count() == 0 {
				return finish(errIdle)
			}
			if err := send(false); err != nil {
				return fail()
			}
			if next := s.interval(); next < interval { // a shorter TTL joined
				interval = next
				tick.Reset(beatDelay(interval, nil))
			}
		case <-tick.C:
			ackTimeout := s.ackTimeout(interval)
			if oldest := oldestOf(&pmu, pending); !oldest.IsZero() && time.Since(oldest) > ackTimeout {
				err := connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf("heartbeat: no answer within %v", ackTimeout))
				abort(err)
				<-recvDone
				_ = st.CloseResponse()
				return gotAnswer.Load(), err
			}
			if err := send(true); err != nil {
				return fail()
			}
			interval = s.interval()
			tick.Reset(beatDelay(interval, nil))
		case err := <-recvDone:
			_ = st.CloseResponse()
			return gotAnswer.Load(), err
		case <-s.stop:
			return finish(nil)
		case <-s.ctx.Done():
			return fail()
		}
	}
}

// nextRequest builds the next HeartbeatRequest: every instance (all) or
// those with a pending beat, and assigns its sequence to their waiters.
// With whole, each beat carries its instance and lease TTL (a stream's
// first request: the server registers an instance it does not know).
func (s *Session) nextRequest(all, whole bool) *registryv1.HeartbeatRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	var beats []*registryv1.Beat
	seq := s.seq + 1
	for _, e := range s.entries {
		if !all && !e.dirty {
			continue
		}
		e.dirty = false
		for _, w := range e.waiters {
			if w.seq == 0 {
				w.seq = seq
			}
		}
		b := &registryv1.Beat{Key: e.h.key, Status: e.h.status}
		if e.h.load != nil {
			l := *e.h.load
			b.Load = &l
		}
		if whole && e.h.stored != nil {
			b.Instance, b.LeaseTtl = e.h.whole()
		}
		beats = append(beats, b)
	}
	if len(beats) == 0 {
		return nil
	}
	s.seq = seq
	return &registryv1.HeartbeatRequest{Sequence: seq, Beats: beats}
}

// onResponse applies the acks of one HeartbeatResponse.
func (s *Session) onResponse(res *registryv1.HeartbeatResponse) {
	seq := res.GetSequence()
	var unknown []*entry
	var events []SessionEvent
	s.mu.Lock()
	for _, ack := range res.GetAcks() {
		e := s.entries[keyString(ack.GetKey())]
		if e == nil {
			continue // deregistered since
		}
		switch ack.GetResult() {
		case registryv1.BeatResult_BEAT_RESULT_RENEWED, registryv1.BeatResult_BEAT_RESULT_REGISTERED:
			if t := ack.GetLeaseExpiresAt(); t != nil {
				e.h.expiresAt = t.AsTime()
			}
			settle(e, seq, nil)
			if ack.GetResult() == registryv1.BeatResult_BEAT_RESULT_REGISTERED {
				events = append(events, SessionEvent{Kind: SessionReregistered, Instance: e.h})
			}
		case registryv1.BeatResult_BEAT_RESULT_UNKNOWN:
			unknown = append(unknown, e)
		default:
			err := fmt.Errorf("maxine: heartbeat: instance %s: %s", keyString(e.h.key), cmpString(ack.GetMessage(), ack.GetResult().String()))
			settle(e, seq, err)
			events = append(events, SessionEvent{Kind: SessionError, Err: err, Instance: e.h})
		}
	}
	s.mu.Unlock()
	for _, e := range unknown {
		s.reregister(e)
	}
	for _, ev := range events {
		s.emit(ev)
	}
}

// settle ends the waits that a response to seq answers.
func settle(e *entry, seq uint64, err error) {
	kept := e.waiters[:0]
	for _, w := range e.waiters {
		if w.seq == 0 || w.seq > seq {
			kept = append(kept, w)
			continue
		}
		w.ch <- err
	}
	e.waiters = kept
}

func cmpString(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

func oldestOf(mu *sync.Mutex, pending map[uint64]time.Time) time.Time {
	mu.Lock()
	defer mu.Unlock()
	var oldest time.Time
	for _, at := range pending {
		if oldest.IsZero() || at.Before(oldest) {
			oldest = at
		}
	}
	return oldest
}
