"""Picker: local instance selection with the server's algorithms, no network call."""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from dataclasses import dataclass

from .balancer import HashRing, Random, cumulative_weights, pick_cumulative, rendezvous_encoded
from .instance_view import InstanceView
from .messages import Instance, ServingStatus, Strategy
from .outlier_ejector import EjectionCounters, EjectionEvent, EjectionOptions, OutlierEjector

# Plain ints: attribute access on a protobuf enum wrapper is a slow lookup by name.
_UNSPECIFIED = int(Strategy.STRATEGY_UNSPECIFIED)
_ROUND_ROBIN = int(Strategy.STRATEGY_ROUND_ROBIN)
_RANDOM = int(Strategy.STRATEGY_RANDOM)
_WEIGHTED = int(Strategy.STRATEGY_WEIGHTED)
_LEAST_LOADED = int(Strategy.STRATEGY_LEAST_LOADED)
_CONSISTENT_HASH = int(Strategy.STRATEGY_CONSISTENT_HASH)
_RENDEZVOUS = int(Strategy.STRATEGY_RENDEZVOUS)
_SERVING = int(ServingStatus.SERVING_STATUS_SERVING)


@dataclass
class _Candidates:
    version: int
    items: list[Instance]
    ids: list[str]
    ring: HashRing | None = None
    encoded: list[bytes] | None = None
    cumulative: list[int] | None = None
    # these candidates as ejection narrowed them, at a generation of the service's ejector
    narrow: tuple[int, _Candidates] | None = None


@dataclass(frozen=True)
class PickerEjection:
    """PickerEjection turns on outlier ejection in a Picker: options, the clock (whole ms), where events go."""

    options: EjectionOptions
    now_ms: Callable[[], int]
    on_event: Callable[[EjectionEvent], None] | None = None


class Picker:
    """Picker chooses one SERVING instance of a service from an InstanceView.

    It uses the same algorithms and the same instance_id order as the server's
    Discover, so CONSISTENT_HASH and RENDEZVOUS pick what Discover would pick
    for the same key and instances. Candidate lists and hash rings are cached
    per service until the set of SERVING instances changes, so a pick costs a
    dictionary lookup and, for CONSISTENT_HASH, one hash and a binary search.
    With ejection on, each service has an OutlierEjector fed by report(): a
    pick skips the instances it ejected (and those on a taken trial), unless
    that leaves none.
    """

    def __init__(self, view: InstanceView, random: Random = _random.random, ejection: PickerEjection | None = None) -> None:
        self._view = view
        self._random = random
        self._cache: dict[str, _Candidates] = {}
        self._counters: dict[str, int] = {}
        self._ejection = ejection
        self._ejectors: dict[str, OutlierEjector] = {}

    def report(self, service: str, instance_id: str, success: bool) -> None:
        """report records how a call to an instance went; nothing without ejection or for an instance not SERVING in the view."""
        self._entry(service)
        ejector = self._ejectors.get(service)
        if ejector is not None:
            ejector.report(instance_id, success)

    def ejection_counters(self, service: str | None = None) -> EjectionCounters:
        """ejection_counters sums the counters of one service's ejector, or of every service's."""
        ejectors = list(self._ejectors.values()) if service is None else [e for e in [self._ejectors.get(service)] if e is not None]
        total = restored = now = 0
        for e in ejectors:
            c = e.counters()
            total, restored, now = total + c.ejected_total, restored + c.restored_total, now + c.ejected
        return EjectionCounters(total, restored, now)

    def candidates(self, service: str) -> list[Instance]:
        """candidates returns the SERVING instances of service in instance_id order (do not mutate)."""
        return self._entry(service).items

    def pick(self, service: str, strategy: Strategy = Strategy.STRATEGY_ROUND_ROBIN, hash_key: str = "") -> Instance | None:
        """pick returns the chosen instance, or None when the service has no SERVING instance.

        CONSISTENT_HASH and RENDEZVOUS need a non-empty hash_key; LEAST_LOADED
        needs the loads only the server knows (ValueError: use Client.discover).
        """
        if hash_key == "" and (strategy == _CONSISTENT_HASH or strategy == _RENDEZVOUS):
            raise ValueError(f"pick: hash_key is required by {Strategy.Name(strategy)}")
        c = self._entry(service)
        ejector = self._ejectors.get(service)
        gen = ejector.generation() if ejector is not None else None
        if ejector is None or gen is None:
            return self._choose(c, service, strategy, hash_key)
        chosen = self._choose(self._narrowed(c, ejector, gen), service, strategy, hash_key)
        if chosen is not None:
            ejector.picked(chosen.instance_id)
        return chosen

    @staticmethod
    def _narrowed(c: _Candidates, ejector: OutlierEjector, gen: int) -> _Candidates:
        """_narrowed is c without what ejection excludes now, kept (with its ring) while the ejector's generation holds."""
        if c.narrow is not None and c.narrow[0] == gen:
            return c.narrow[1]
        keep = set(ejector.allowed(c.ids))
        items = c.items if len(keep) == len(c.ids) else [i for i in c.items if i.instance_id in keep]
        n = _Candidates(c.version, items, [i.instance_id for i in items])
        c.narrow = (gen, n)
        return n

    def _choose(self, c: _Candidates, service: str, strategy: Strategy, hash_key: str) -> Instance | None:
        items = c.items
        if strategy == _ROUND_ROBIN or strategy == _UNSPECIFIED:
            if not items:
                return None
            i = self._counters.get(service, 0)
            self._counters[service] = (i + 1) % 1_000_000_007
            return items[i % len(items)]
        if strategy == _CONSISTENT_HASH:
            if not items:
                return None
            if c.ring is None:
                c.ring = HashRing(c.ids)
            return items[c.ring.lookup(hash_key)]
        if strategy == _RANDOM:
            return items[int(self._random() * len(items))] if items else None
        if strategy == _WEIGHTED:
            if not items:
                return None
            if c.cumulative is None:
                c.cumulative = cumulative_weights(items)
            return items[pick_cumulative(c.cumulative, self._random)]
        if strategy == _RENDEZVOUS:
            if not items:
                return None
            if c.encoded is None:
                c.encoded = [i.encode("utf-8") for i in c.ids]
            return items[rendezvous_encoded(c.encoded, hash_key)]
        if strategy == _LEAST_LOADED:
            raise ValueError("pick: STRATEGY_LEAST_LOADED needs the loads only the server knows; call Client.discover")
        raise ValueError(f"pick: strategy must be a Strategy value, got {strategy!r}")

    def _entry(self, service: str) -> _Candidates:
        version = self._view.version(service)
        cached = self._cache.get(service)
        if cached is not None and cached.version == version:
            return cached
        items = [i for i in self._view.sorted(service) if i.status == _SERVING]
        ids = [i.instance_id for i in items]
        entry = _Candidates(version, items, ids)
        if cached is not None and cached.ids == ids:
            # A change that left the SERVING set as it was (metadata, say) keeps the ring.
            entry.ring, entry.encoded = cached.ring, cached.encoded
        self._cache[service] = entry
        if self._ejection is not None:
            ejector = self._ejectors.get(service)
            if ejector is None:
                e = self._ejection
                ejector = OutlierEjector(e.options, service, e.now_ms, e.on_event)
                self._ejectors[service] = ejector
                ejector.retain(ids)
            elif cached is None or cached.ids != ids:
                ejector.retain(ids)
        return entry
