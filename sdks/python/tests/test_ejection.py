"""Client-side outlier ejection end to end, and the Watcher's ejection with a fake clock.

Five real gRPC backends (grpc.aio servers answering grpc.health.v1.Health/Check)
registered in a real Maxine server; the Watcher's pick chooses, and
OutcomeInterceptor on each backend's channel reports every call. One backend
starts answering UNAVAILABLE: the client stops sending to it after the
threshold, sends a single trial after the ejection time, returns to it once it
heals, and never ejects more than max_ejection_percent (20 % of 5: one).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import grpc
import grpc.aio
import pytest

from maxine import Client, EjectionEvent, EjectionOptions, Instance, OutcomeInterceptor, Watcher, outcome_of
from maxine.balancer import HashRing
from maxine.instance_view import InstanceView
from maxine.messages import ServingStatus, Strategy, WatchServicesResponse
from maxine.picker import Picker, PickerEjection

CHECK = "/grpc.health.v1.Health/Check"


@dataclass
class Backend:
    """Backend is a real gRPC server that counts its calls and can be told to fail."""

    server: grpc.aio.Server
    port: int
    hits: int = 0
    failing: bool = False


async def start_backend() -> Backend:
    server = grpc.aio.server()
    backend = Backend(server, 0)

    async def check(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        backend.hits += 1
        if backend.failing:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "backend told to fail")
        return b"\x08\x01"  # HealthCheckResponse{status: SERVING}

    handler = grpc.unary_unary_rpc_method_handler(check)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("grpc.health.v1.Health", {"Check": handler})])
    backend.port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return backend


async def test_ejects_a_failing_backend_and_brings_it_back(client: Client) -> None:
    backends = [await start_backend() for _ in range(5)]
    channels: dict[str, grpc.aio.Channel] = {}
    events: list[EjectionEvent] = []
    options = EjectionOptions(consecutive_failures=3, base_ejection_time=0.3, max_ejection_percent=20, interval=60)
    watcher = Watcher(client, "eject", ejection=options, on_ejection=events.append)
    try:
        for i, b in enumerate(backends):
            # a 10-minute lease: the default 10 s could expire them during a slow run
            await client.register(Instance(service="eject", instance_id=f"b{i}", host="127.0.0.1", port=b.port), ttl=600)
        await watcher.ready(5)
        picks: list[tuple[str, int]] = []  # instance, when (the watcher's clock: monotonic ms)
        max_ejected = 0

        async def call(inst: Instance) -> None:
            ch = channels.get(inst.instance_id)
            if ch is None:
                ch = grpc.aio.insecure_channel(
                    f"127.0.0.1:{inst.port}", interceptors=[OutcomeInterceptor(watcher, inst.service, inst.instance_id)]
                )
                channels[inst.instance_id] = ch
            try:
                await ch.unary_unary(CHECK)(b"", timeout=5)
            except grpc.aio.AioRpcError:
                pass

        async def batch() -> None:
            nonlocal max_ejected
            chosen = []
            for _ in range(5):  # five picks at once: a trial is taken by one only
                inst = watcher.pick()
                assert inst is not None
                picks.append((inst.instance_id, time.monotonic_ns() // 1_000_000))
                chosen.append(inst)
            await asyncio.gather(*(call(i) for i in chosen))
            max_ejected = max(max_ejected, watcher.ejection_counters().ejected)

        async def until(n: int, what: str) -> None:
            # batches until the n-th event, for at most 10 s (a batch can take well under a millisecond)
            deadline = time.monotonic() + 10
            while len(events) < n:
                if time.monotonic() > deadline:
                    pytest.fail(f"no {what} within 10 s; events {events}")
                await batch()

        await batch()
        assert [b.hits for b in backends] == [1, 1, 1, 1, 1]
        backends[1].failing = True
        await until(1, "ejection of b1")
        assert (events[0].instance_id, events[0].ejected, events[0].reason, events[0].ejections, events[0].duration_ms) == (
            "b1", True, "consecutive_failures", 1, 300,
        )
        assert backends[1].hits == 1 + 3
        backends[2].failing = True  # the cap keeps b2 in while b1 is out or on trial
        await until(2, "b1's trial")
        b1_after = [at for id_, at in picks if id_ == "b1" and at >= events[0].at_ms]
        assert len(b1_after) == 1, "one trial call, no more"
        assert b1_after[0] >= events[0].at_ms + 300
        assert (events[1].instance_id, events[1].reason, events[1].ejections, events[1].duration_ms) == ("b1", "trial_failed", 2, 600)
        assert backends[1].hits == 1 + 3 + 1
        backends[1].failing = False
        await until(4, "b1 restored and b2 ejected")
        assert (events[2].instance_id, events[2].ejected) == ("b1", False)
        assert (events[3].instance_id, events[3].ejected, events[3].reason) == ("b2", True, "consecutive_failures")
        backends[2].failing = False
        await until(5, "b2 restored")
        assert (events[4].instance_id, events[4].ejected) == ("b2", False)
        before = [b.hits for b in backends]
        await batch()
        assert [b.hits - h for b, h in zip(backends, before, strict=True)] == [1, 1, 1, 1, 1]
        c = watcher.ejection_counters()
        assert (c.ejected_total, c.restored_total, c.ejected, max_ejected) == (3, 2, 0, 1)
    finally:
        await watcher.close()
        for ch in channels.values():
            await ch.close()
        for b in backends:
            await b.server.stop(None)


def test_picker_skips_ejected_instances_with_every_strategy() -> None:
    view = InstanceView()
    snap = WatchServicesResponse()
    for i in range(5):
        snap.snapshot.instances.append(
            Instance(service="svc", instance_id=f"i{i}", host="h", port=1, weight=100, status=ServingStatus.SERVING_STATUS_SERVING)
        )
    view.apply(snap)
    end = WatchServicesResponse()
    end.snapshot_end.revision = 1
    view.apply(end)
    now = [0]
    events: list[EjectionEvent] = []
    options = EjectionOptions(consecutive_failures=2, max_ejection_percent=40)
    p = Picker(view, ejection=PickerEjection(options, lambda: now[0], events.append))
    p.report("svc", "i1", False)
    p.report("svc", "i1", False)
    assert [(e.instance_id, e.reason) for e in events] == [("i1", "consecutive_failures")]
    left = ["i0", "i2", "i3", "i4"]
    assert {p.pick("svc").instance_id for _ in range(8)} == set(left)  # type: ignore[union-attr]
    ring = HashRing(left)
    for key in ["u1", "u2", "u3", "u4"]:
        assert p.pick("svc", Strategy.STRATEGY_CONSISTENT_HASH, key).instance_id == left[ring.lookup(key)]  # type: ignore[union-attr]
        assert p.pick("svc", Strategy.STRATEGY_RENDEZVOUS, key).instance_id != "i1"  # type: ignore[union-attr]
    assert p.ejection_counters().ejected == 1
    now[0] = 30_000
    assert [p.pick("svc").instance_id for _ in range(5)].count("i1") == 1  # type: ignore[union-attr]
    p.report("svc", "i1", True)
    assert (events[-1].instance_id, events[-1].ejected, events[-1].at_ms) == ("i1", False, 30_000)


def test_outcome_of_and_bad_settings() -> None:
    assert outcome_of(grpc.StatusCode.OK) is True
    assert outcome_of(grpc.StatusCode.NOT_FOUND) is True
    assert outcome_of(grpc.StatusCode.UNAVAILABLE) is False
    assert outcome_of(grpc.StatusCode.DEADLINE_EXCEEDED) is False
    assert outcome_of(grpc.StatusCode.CANCELLED) is None
    with pytest.raises(ValueError, match=r"ejection.max_ejection_percent: must be an integer 0..100, got 101"):
        EjectionOptions(max_ejection_percent=101)
    with pytest.raises(ValueError, match=r"ejection.interval: must be >= 0.001 s, got 0"):
        EjectionOptions(interval=0)
