"""The local outlier ejector: what a Watcher's pick learns from call outcomes.

The same rules, defaults and order of evaluation as the TypeScript and Go
SDKs (testdata/conformance/ejection proves it); docs/client-ejection.md
explains them beside Envoy's and gRPC's. No timer: the interval sweeps
that are due run when the ejector is next asked (report or pick), at the
times they were due. Times are whole milliseconds, so that the three SDKs
compute the same instants.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

EjectionReason = Literal["consecutive_failures", "failure_percentage", "trial_failed"]
"""EjectionReason says which rule ejected an instance."""


@dataclass(frozen=True)
class EjectionOptions:
    """EjectionOptions tune a Watcher's local outlier ejection; times are in seconds."""

    consecutive_failures: int = 5
    """consecutive_failures ejects an instance after this many failures in a row (Envoy's consecutive_5xx); 0 turns the rule off."""
    interval: float = 10.0
    """interval is the period of the failure-percentage sweep and of the ejection-count decay (gRFC A50's interval)."""
    base_ejection_time: float = 30.0
    """base_ejection_time is the first ejection's length; the n-th lasts n times it."""
    max_ejection_time: float = 300.0
    """max_ejection_time caps an ejection's length (at max(base, this))."""
    max_ejection_percent: int = 10
    """max_ejection_percent bounds the share of a service's instances ejected at once; one may always be."""
    failure_percentage_threshold: int = 85
    """failure_percentage_threshold ejects, at a sweep, an instance whose failed share of the interval's calls is above it; 0 turns the rule off."""
    failure_percentage_minimum_hosts: int = 5
    """failure_percentage_minimum_hosts: the failure-percentage rule runs only with at least this many instances."""
    failure_percentage_request_volume: int = 50
    """failure_percentage_request_volume: an instance needs at least this many calls in the interval to be judged by percentage."""

    def __post_init__(self) -> None:
        def whole(name: str, lo: int, hi: int | None = None) -> None:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo or (hi is not None and v > hi):
                rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
                raise ValueError(f"ejection.{name}: must be an integer {rng}, got {v!r}")

        def seconds(name: str, lo_ms: int) -> None:
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or round(v * 1000) < lo_ms:
                raise ValueError(f"ejection.{name}: must be >= {lo_ms / 1000} s, got {v!r}")

        whole("consecutive_failures", 0)
        seconds("interval", 1)
        seconds("base_ejection_time", 1)
        seconds("max_ejection_time", 0)
        whole("max_ejection_percent", 0, 100)
        whole("failure_percentage_threshold", 0, 100)
        whole("failure_percentage_minimum_hosts", 0)
        whole("failure_percentage_request_volume", 1)


@dataclass(frozen=True)
class EjectionEvent:
    """EjectionEvent reports that an instance was ejected from (ejected=True) or restored to a Watcher's picks.

    reason, ejections (the instance's count, this one included) and
    duration_ms are set for an ejection; at_ms is when it took effect on the
    ejector's clock (a sweep's time for failure_percentage).
    """

    service: str
    instance_id: str
    ejected: bool
    at_ms: int
    reason: EjectionReason | None = None
    ejections: int = 0
    duration_ms: int = 0


@dataclass(frozen=True)
class EjectionCounters:
    """EjectionCounters are the ejections and restorations so far and the instances ejected (or on trial) now."""

    ejected_total: int = 0
    restored_total: int = 0
    ejected: int = 0


_HEALTHY, _EJECTED, _TRIAL = 0, 1, 2


class _Entry:
    __slots__ = ("phase", "consecutive", "ejections", "until", "trial_taken_at", "successes", "failures")

    def __init__(self) -> None:
        self.phase = _HEALTHY
        self.consecutive = 0
        self.ejections = 0
        self.until = 0
        self.trial_taken_at: int | None = None
        self.successes = 0
        self.failures = 0


class OutlierEjector:
    """OutlierEjector decides which instances of ONE service a pick may choose, from call outcomes.

    It is local: it never changes the registry. retain sets the members (the
    instances the client holds); report records an outcome; allowed filters
    candidates; picked tells it which instance a pick chose (a trial is taken
    that way). now_ms is the clock in whole milliseconds.
    """

    def __init__(
        self,
        options: EjectionOptions,
        service: str,
        now_ms: Callable[[], int],
        on_event: Callable[[EjectionEvent], None] | None = None,
    ) -> None:
        self._interval = round(options.interval * 1000)
        self._base = round(options.base_ejection_time * 1000)
        self._max = round(options.max_ejection_time * 1000)
        self._o = options
        self._service = service
        self._now = now_ms
        self._on_event = on_event
        self._entries: dict[str, _Entry] = {}
        self._members: Sequence[str] = ()
        self._next_sweep = now_ms() + self._interval
        self._not_healthy = 0
        # _gen changes whenever allowed() may answer differently, so a pick can keep its narrowed candidates
        self._gen = 0
        # _wake is the earliest instant _expire has work (an ejection's end, a taken trial's release)
        self._wake: int | None = None
        self._ejected_total = 0
        self._restored_total = 0

    def retain(self, ids: Sequence[str]) -> None:
        """retain sets the members, in instance_id order: instances no longer held are dropped, new ones start afresh."""
        self._advance(self._now())
        keep = set(ids)
        for id_ in [k for k in self._entries if k not in keep]:
            if self._entries.pop(id_).phase != _HEALTHY:
                self._not_healthy -= 1
        for id_ in ids:
            if id_ not in self._entries:
                self._entries[id_] = _Entry()
        self._members = list(ids)

    def report(self, instance_id: str, success: bool) -> None:
        """report records one call outcome of a member; outcomes for an ejected instance (late answers) are ignored."""
        now = self._now()
        self._advance(now)
        e = self._entries.get(instance_id)
        if e is None or e.phase == _EJECTED:
            return
        if e.phase == _TRIAL:
            if not success:
                self._eject(instance_id, e, now, "trial_failed", forced=True)
                return
            e.phase, e.consecutive, e.trial_taken_at = _HEALTHY, 0, None
            self._not_healthy -= 1
            self._gen += 1
            self._restored_total += 1
            self._emit(EjectionEvent(self._service, instance_id, False, now))
            return
        if success:
            e.successes += 1
            e.consecutive = 0
            return
        e.failures += 1
        e.consecutive += 1
        if self._o.consecutive_failures > 0 and e.consecutive >= self._o.consecutive_failures:
            self._eject(instance_id, e, now, "consecutive_failures", forced=False)

    def allowed(self, ids: Sequence[str]) -> Sequence[str]:
        """allowed returns the candidates a pick may choose; all of ids when that would leave none.

        Healthy instances pass, and those whose ejection ended and whose single
        trial is not taken; candidates that are not members pass.
        """
        self._advance(self._now())
        if self._not_healthy == 0:
            return ids
        out = [i for i in ids if self._available(self._entries.get(i))]
        return out if out else ids

    def generation(self) -> int | None:
        """generation brings the ejector up to now: a number that changes whenever allowed() may answer differently.

        None when nothing is ejected (allowed returns its argument). A pick
        keeps its narrowed candidates while it holds.
        """
        self._advance(self._now())
        return None if self._not_healthy == 0 else self._gen

    def picked(self, instance_id: str) -> None:
        """picked tells the ejector a pick chose instance_id: one on trial is taken until an outcome (or an interval)."""
        now = self._now()
        self._advance(now)
        e = self._entries.get(instance_id)
        if e is not None and e.phase == _TRIAL and e.trial_taken_at is None:
            e.trial_taken_at = now
            self._gen += 1
            self._wake_at(now + self._interval)

    def counters(self) -> EjectionCounters:
        """counters returns the totals so far and the instances ejected or on trial now."""
        self._advance(self._now())
        return EjectionCounters(self._ejected_total, self._restored_total, self._not_healthy)

    @staticmethod
    def _available(e: _Entry | None) -> bool:
        # healthy, or on trial with the trial not taken (_expire releases a taken trial after an interval)
        return e is None or e.phase == _HEALTHY or (e.phase == _TRIAL and e.trial_taken_at is None)

    def _wake_at(self, t: int) -> None:
        if self._wake is None or t < self._wake:
            self._wake = t

    def _eject(self, instance_id: str, e: _Entry, at: int, reason: EjectionReason, forced: bool) -> None:
        # a failed trial was counted already (forced); otherwise max_ejection_percent, at least one
        n = self._not_healthy
        if not forced and n > 0 and 100 * (n + 1) > self._o.max_ejection_percent * len(self._members):
            return
        if e.phase == _HEALTHY:
            self._not_healthy += 1
        e.ejections += 1
        e.phase, e.consecutive, e.trial_taken_at = _EJECTED, 0, None
        duration = min(self._base * e.ejections, max(self._base, self._max))
        e.until = at + duration
        self._wake_at(e.until)
        self._gen += 1
        self._ejected_total += 1
        self._emit(EjectionEvent(self._service, instance_id, True, at, reason, e.ejections, duration))

    def _emit(self, event: EjectionEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)

    def _advance(self, now: int) -> None:
        while self._next_sweep <= now:
            self._sweep(self._next_sweep)
            self._next_sweep += self._interval
        self._expire(now)

    def _expire(self, t: int) -> None:
        if self._not_healthy == 0 or self._wake is None or t < self._wake:
            return
        self._wake = None
        for e in self._entries.values():
            if e.phase == _EJECTED:
                if e.until <= t:
                    e.phase, e.trial_taken_at = _TRIAL, None
                    self._gen += 1
                else:
                    self._wake_at(e.until)
            elif e.phase == _TRIAL and e.trial_taken_at is not None:
                if t - e.trial_taken_at >= self._interval:
                    e.trial_taken_at = None  # no outcome within an interval: the trial is offered again
                    self._gen += 1
                else:
                    self._wake_at(e.trial_taken_at + self._interval)

    def _sweep(self, t: int) -> None:
        """_sweep is the interval's work (A50's timer): expiries, the failure-percentage rule, counts reset, decay."""
        self._expire(t)
        o = self._o
        if o.failure_percentage_threshold > 0 and len(self._members) >= o.failure_percentage_minimum_hosts:
            for id_ in self._members:
                e = self._entries.get(id_)
                if e is None or e.phase != _HEALTHY:
                    continue
                volume = e.successes + e.failures
                if volume >= o.failure_percentage_request_volume and 100 * e.failures > o.failure_percentage_threshold * volume:
                    self._eject(id_, e, t, "failure_percentage", forced=False)
        for e in self._entries.values():
            e.successes = e.failures = 0
            if e.phase == _HEALTHY and e.ejections > 0:
                e.ejections -= 1
