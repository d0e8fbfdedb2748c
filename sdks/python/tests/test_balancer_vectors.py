"""The shared hash vectors (testdata/hash-vectors.json) that every language must reproduce."""

from __future__ import annotations

import json
from typing import Any

from maxine_server import REPO

from maxine.balancer import HashRing, fmix32, fnv1a32, hash32, rendezvous

VECTORS: dict[str, Any] = json.loads((REPO / "testdata" / "hash-vectors.json").read_text(encoding="utf-8"))


def test_fnv1a_matches_its_published_reference_values() -> None:
    assert fnv1a32("") == 0x811C9DC5
    assert fnv1a32("a") == 0xE40C292C
    assert fnv1a32("foobar") == 0xBF9CF968
    assert fmix32(1) == 0x514E28B7


def test_reproduces_fmix32_fnv1a32_and_hash32() -> None:
    assert VECTORS["fmix32"] and VECTORS["hash32"]
    for v in VECTORS["fmix32"]:
        assert fmix32(v["input"]) == v["output"], v
    for v in VECTORS["hash32"]:
        assert fnv1a32(v["input"]) == v["fnv1a32"], v["input"]
        assert hash32(v["input"]) == v["hash32"], v["input"]
    assert any(any(ord(ch) > 0x7F for ch in v["input"]) for v in VECTORS["hash32"])


def test_reproduces_the_ring_and_rendezvous_picks() -> None:
    assert len(VECTORS["consistent_hash"]) >= 4 and VECTORS["rendezvous"]
    for case in VECTORS["consistent_hash"]:
        ring = HashRing(case["instances"])
        for p in case["picks"]:
            assert case["instances"][ring.lookup(p["key"])] == p["instance"], p["key"]
    for case in VECTORS["rendezvous"]:
        for p in case["picks"]:
            assert case["instances"][rendezvous(case["instances"], p["key"])] == p["instance"], p["key"]


def test_empty_sets_pick_nothing() -> None:
    assert HashRing([]).lookup("k") == -1
    assert rendezvous([], "k") == -1
