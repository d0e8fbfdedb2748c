"""Load-balancing algorithms shared with the server's Discover and the other SDKs.

The hash functions are specified in docs/hashing.md; testdata/hash-vectors.json
holds vectors that every language's implementation is tested against, so a
local pick chooses what Discover would choose for the same key and instances.
"""

from __future__ import annotations

import bisect
import random as _random
from collections.abc import Callable, Sequence
from typing import Protocol

RING_POINTS = 160
"""RING_POINTS is the number of points each instance owns on a hash ring."""

Random = Callable[[], float]
"""Random returns a float in [0, 1); injectable so that tests are deterministic."""

_MASK = 0xFFFFFFFF


FNV_OFFSET = 0x811C9DC5
"""FNV_OFFSET is FNV-1a's 32-bit offset basis: the state before any byte."""


def fnv1a32_update(h: int, data: bytes) -> int:
    """fnv1a32_update continues an FNV-1a state h over data, so a shared prefix is hashed once."""
    for b in data:
        h = ((h ^ b) * 0x01000193) & _MASK
    return h


def fnv1a32(s: str) -> int:
    """fnv1a32 is the 32-bit FNV-1a hash of the UTF-8 bytes of s, the first step of hash32."""
    return fnv1a32_update(FNV_OFFSET, s.encode("utf-8"))


def fmix32(h: int) -> int:
    """fmix32 is MurmurHash3's 32-bit finaliser (h must be in 0..2**32-1)."""
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    h ^= h >> 16
    return h


def hash32(s: str) -> int:
    """hash32 is FNV-1a over the UTF-8 bytes of s finished with fmix32, as docs/hashing.md specifies."""
    return fmix32(fnv1a32(s))


class HashRing:
    """HashRing is a consistent-hash ring over instance ids.

    Each id owns RING_POINTS points at hash32(f"{id}#{i}"); a key goes to the
    owner of the first point at or after hash32(key), wrapping around. Build
    it once per set of instances: lookups are a binary search.
    """

    __slots__ = ("_owners", "_points")

    def __init__(self, ids: Sequence[str], points_per_id: int = RING_POINTS) -> None:
        # hash32(f"{id}#{i}") for every point, inlined: a ring of 1,000 ids is
        # 160,000 hashes, rebuilt whenever the set of SERVING instances changes.
        # Each point is packed with its id's rank in byte order into one int,
        # so one sort of ints orders by point then id (the tie-break of docs/hashing.md).
        raws = [iid.encode("utf-8") for iid in ids]
        by_bytes = sorted(range(len(raws)), key=raws.__getitem__)
        shift = max(1, len(raws).bit_length())
        suffixes = [str(i).encode() for i in range(points_per_id)]
        packed: list[int] = []
        append = packed.append
        for rank, index in enumerate(by_bytes):
            prefix = fnv1a32_update(FNV_OFFSET, raws[index] + b"#")  # hashed once for the id's points
            for s in suffixes:
                h = prefix
                for byte in s:
                    h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
                h ^= h >> 16
                h = (h * 0x85EBCA6B) & 0xFFFFFFFF
                h ^= h >> 13
                h = (h * 0xC2B2AE35) & 0xFFFFFFFF
                append(((h ^ (h >> 16)) << shift) | rank)
        packed.sort()
        mask = (1 << shift) - 1
        self._points = [p >> shift for p in packed]
        self._owners = [by_bytes[p & mask] for p in packed]

    def lookup(self, key: str) -> int:
        """lookup returns the index (into the ids given) that owns key, or -1 when the ring is empty."""
        if not self._points:
            return -1
        i = bisect.bisect_left(self._points, hash32(key))
        return self._owners[0 if i == len(self._points) else i]


def rendezvous(ids: Sequence[str], key: str) -> int:
    """rendezvous returns the index of the id with the highest hash32(f"{key}#{id}") (ties: the greater id), or -1."""
    return rendezvous_encoded([i.encode("utf-8") for i in ids], key)


def rendezvous_encoded(ids: Sequence[bytes], key: str) -> int:
    """rendezvous_encoded is rendezvous over ids already encoded as UTF-8 (a Picker caches them)."""
    prefix = fnv1a32_update(FNV_OFFSET, key.encode("utf-8") + b"#")
    best = -1
    best_score = -1
    for i, iid in enumerate(ids):
        score = fmix32(fnv1a32_update(prefix, iid))
        if score > best_score or (score == best_score and iid > ids[best]):
            best, best_score = i, score
    return best


class Weighted(Protocol):
    """Weighted is anything with a weight, such as an Instance."""

    @property
    def weight(self) -> int:
        """weight is the relative share of traffic; values below 1 count as 1."""
        ...


def cumulative_weights(candidates: Sequence[Weighted]) -> list[int]:
    """cumulative_weights are the running totals of max(1, weight), for pick_cumulative."""
    out: list[int] = []
    total = 0
    for c in candidates:
        total += max(1, c.weight)
        out.append(total)
    return out


def pick_cumulative(cumulative: Sequence[int], random: Random = _random.random) -> int:
    """pick_cumulative is pick_weighted over precomputed cumulative_weights: a binary search, or -1."""
    if not cumulative:
        return -1
    return min(bisect.bisect_right(cumulative, random() * cumulative[-1]), len(cumulative) - 1)


def pick_weighted(candidates: Sequence[Weighted], random: Random = _random.random) -> int:
    """pick_weighted picks an index at random in proportion to weight (weights below 1 count as 1), or -1."""
    if not candidates:
        return -1
    total = sum(max(1, c.weight) for c in candidates)
    r = random() * total
    for i, c in enumerate(candidates):
        r -= max(1, c.weight)
        if r < 0:
            return i
    return len(candidates) - 1
