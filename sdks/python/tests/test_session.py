"""Session against the real server: liveness past several TTLs, crash detection, restart, clean cancel."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from maxine_server import MaxineServer, free_port

from maxine import (
    BackoffOptions,
    Client,
    Instance,
    InstanceHandle,
    NotFoundError,
    RemovalReason,
    ResetReason,
    Session,
    SessionClosedError,
    SyncInfo,
    WatchChange,
    Watcher,
    instance_digest,
)

HOLD_SESSION = Path(__file__).parent / "fixtures" / "hold_session.py"
GRACE = 1.0  # the server's default MAXINE_GRACE


async def first_change(changes: object, kind: str, timeout: float) -> WatchChange:
    async with asyncio.timeout(timeout):
        async for c in changes:  # type: ignore[attr-defined]
            if c.type == kind:
                return c  # type: ignore[no-any-return]
    raise AssertionError(f"the watcher ended before a {kind!r} change")


async def test_a_session_keeps_its_instance_alive_past_several_ttls(client: Client) -> None:
    ttl = 1.0
    async with Session(client) as session:
        handle = await session.register(Instance(service="alive", instance_id="s1", host="127.0.0.1", port=1), ttl=ttl)
        assert handle.ttl == pytest.approx(ttl) and session.heartbeat_interval == pytest.approx(ttl / 3)
        # The same lease without a session expires: proof that the beats are what keeps s1.
        await client.register(Instance(service="alive", instance_id="unary", host="127.0.0.1", port=2), ttl=ttl)
        await asyncio.sleep(4 * ttl)
        d = await client.discover("alive", include_all=True)
        assert [i.instance_id for i in d.instances] == ["s1"]
        assert session.state == "connected" and handle.registered
    assert session.state == "closed" and not handle.registered
    with pytest.raises(NotFoundError):
        await client.discover("alive")
    with pytest.raises(SessionClosedError):
        await session.register(Instance(service="alive", host="127.0.0.1", port=1))


async def test_sigkill_of_the_sessions_process_removes_it_within_the_grace(server: MaxineServer, client: Client) -> None:
    async with Watcher(client, "crash") as watcher:
        changes = watcher.changes()
        child = subprocess.Popen(
            [sys.executable, str(HOLD_SESSION), server.target, "crash", "c1", "10"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 15)
            assert line.strip() == "registered", child.stderr.read() if child.stderr else ""
            added = await first_change(changes, "added", 5)
            assert added.instance.instance_id == "c1"
            killed_at = time.monotonic()
            child.kill()  # SIGKILL: no deregister, the kernel closes the connection
            removed = await first_change(changes, "removed", GRACE + 5)
            elapsed = time.monotonic() - killed_at
        finally:
            child.kill()
            await asyncio.to_thread(child.communicate)
            await changes.aclose()  # type: ignore[attr-defined]
    assert removed.instance.instance_id == "c1"
    assert removed.removal_reason == RemovalReason.REMOVAL_REASON_STREAM_CLOSED
    print(f"SIGKILL to REMOVED: {elapsed * 1000:.1f} ms (grace {GRACE:g} s)")
    assert elapsed <= GRACE + 0.5, f"removed {elapsed:.3f} s after SIGKILL (grace {GRACE} s)"


async def test_after_a_server_restart_the_session_registers_its_instance_again() -> None:
    port = free_port()
    env = {"MAXINE_PORT": str(port), "MAXINE_LEASE_TTL_MIN": "100ms"}
    srv = await asyncio.to_thread(MaxineServer(env).start)
    reregistered: asyncio.Queue[InstanceHandle] = asyncio.Queue()
    syncs: asyncio.Queue[SyncInfo] = asyncio.Queue()
    backoff = BackoffOptions(base=0.05, max=0.25)
    try:
        async with Client(srv.target) as client:
            async with (
                Session(client, backoff=backoff, on_reregister=reregistered.put_nowait) as session,
                Watcher(client, "restart", backoff=backoff, on_sync=syncs.put_nowait) as watcher,
            ):
                handle = await session.register(Instance(service="restart", instance_id="r1", host="127.0.0.1", port=9000), ttl=3)
                old = await client.discover("restart")
                assert (await syncs.get()).reset is False
                assert await asyncio.to_thread(srv.stop) == 0  # SIGTERM: streams end with UNAVAILABLE
                srv = await asyncio.to_thread(MaxineServer(env).start)
                assert srv.port == port
                again = await asyncio.wait_for(reregistered.get(), 15)
                assert again is handle and handle.registered
                # Registered again by the new stream's first beat, which carries the instance whole: no Register call.
                metrics = await asyncio.to_thread(_metrics, f"http://{srv.target}")
                assert metrics["maxine_beats_registered_total"] == 1
                assert _calls(f"http://{srv.target}", "Register") == 0
                new = await client.discover("restart", include_all=True)
                assert new.instance.instance_id == "r1" and new.registry_id != old.registry_id
                # The watcher resumed against a registry that lost its state: a reset snapshot.
                sync = await asyncio.wait_for(syncs.get(), 15)
                assert sync.reset and sync.reason == ResetReason.RESET_REASON_REGISTRY_CHANGED
                assert sync.registry_id == new.registry_id
                async with asyncio.timeout(5):
                    while watcher.get("restart", "r1") is None:
                        await asyncio.sleep(0.02)
                # The watcher resumed naming what it held (r1): if r1 was back before it, the
                # differential reset kept its copy, with the old registry's times and revisions;
                # what a client acts on (its content digest) equals the server's.
                served = (await client.discover("restart", include_all=True)).instances
                # live lease state: only include_all carries it (not revisioned, no watch events,
                # outside the digest)
                assert all(i.HasField("lease_expires_at") for i in served)
                assert [(i.instance_id, instance_digest(i)) for i in watcher.instances()] == [
                    (i.instance_id, instance_digest(i)) for i in served
                ]
            with pytest.raises(NotFoundError):
                await client.discover("restart")  # deregistered on exit
    finally:
        await asyncio.to_thread(srv.stop)


async def test_cancelling_the_task_that_holds_a_session_deregisters_and_leaves_nothing(client: Client) -> None:
    registered = asyncio.Event()

    async def service() -> None:
        async with Session(client) as session:
            await session.register(Instance(service="cancel", instance_id="x1", host="127.0.0.1", port=1), ttl=5)
            registered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(service())
    await asyncio.wait_for(registered.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(NotFoundError):
        await client.discover("cancel")  # deregistered at once, not after the grace


def _calls(url: str, method: str) -> float:
    """_calls sums the server's maxine_rpc_requests_total of one method, over protocols and codes."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as res:
        text = res.read().decode()
    prefix = f'maxine_rpc_requests_total{{method="{method}",'
    values = [float(line.rpartition(" ")[2]) for line in text.splitlines() if line.startswith(prefix)]
    assert values, f"/metrics has no {prefix}"
    return sum(values)


def _metrics(url: str) -> dict[str, float]:
    """_metrics reads the server's unlabelled counters and gauges from /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as res:
        text = res.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if line and not line.startswith("#") and "{" not in name:
            out[name] = float(value)
    return out
