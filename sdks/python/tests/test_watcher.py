"""Watcher against the real server: ordered changes, resume with no gap, fatal errors."""

from __future__ import annotations

import asyncio

import pytest
from maxine_server import MaxineServer
from tcp_proxy import TcpProxy

from maxine import (
    BackoffOptions,
    Client,
    Instance,
    InvalidArgumentError,
    ReconnectInfo,
    RemovalReason,
    Session,
    SyncInfo,
    WatchChange,
    Watcher,
    WatchOverflowError,
)
from maxine.messages import OperatorStatus, ServingStatus


async def next_changes(it: object, n: int, timeout: float = 5.0) -> list[WatchChange]:
    """next_changes reads n changes from an async iterator of changes, within timeout seconds."""
    out: list[WatchChange] = []
    async with asyncio.timeout(timeout):
        async for c in it:  # type: ignore[attr-defined]
            out.append(c)
            if len(out) == n:
                break
    return out


async def test_added_updated_removed_in_revision_order(client: Client) -> None:
    await client.register(Instance(service="orders", instance_id="o0", host="127.0.0.1", port=9000))
    async with Watcher(client, "orders") as watcher:
        assert [i.instance_id for i in watcher.instances()] == ["o0"]
        changes = watcher.changes()
        async with Session(client) as session:
            handle = await session.register(Instance(service="orders", instance_id="o1", host="127.0.0.1", port=9001), ttl=5)
            await handle.drain()
        got = await next_changes(changes, 3)
        await changes.aclose()  # type: ignore[attr-defined]
    assert [(c.type, c.instance.instance_id) for c in got] == [("added", "o1"), ("updated", "o1"), ("removed", "o1")]
    assert got[1].instance.status == ServingStatus.SERVING_STATUS_DRAINING
    assert got[2].removal_reason == RemovalReason.REMOVAL_REASON_DEREGISTERED
    assert [c.revision for c in got] == [2, 3, 4]
    assert watcher.state == "closed"


async def test_resumes_after_a_reconnect_with_no_gap(server: MaxineServer, client: Client) -> None:
    for iid in ("a", "b"):
        await client.register(Instance(service="resume", instance_id=iid, host="127.0.0.1", port=9000))
    proxy = await TcpProxy(server.port).start()
    syncs: list[SyncInfo] = []
    reconnects: list[ReconnectInfo] = []
    errors: list[Exception] = []
    via_proxy = Client(proxy.target)
    try:
        watcher = Watcher(
            via_proxy,
            "resume",
            backoff=BackoffOptions(base=0.02, max=0.1),
            on_sync=syncs.append,
            on_reconnect=reconnects.append,
            on_error=errors.append,
        )
        async with watcher:
            before = watcher.revision
            changes = watcher.changes()
            proxy.cut()  # the watch connection drops and the server stays unreachable meanwhile
            async with asyncio.timeout(5):
                while watcher.state == "live":
                    await asyncio.sleep(0.01)
            revisions = [
                (await client.register(Instance(service="resume", instance_id="c", host="127.0.0.1", port=9000))).revision,
                (await client.register(Instance(service="resume", instance_id="a", host="127.0.0.1", port=9001))).revision,
                (await client.deregister(Instance(service="resume", instance_id="b"))).revision,
                (await client.register(Instance(service="resume", instance_id="d", host="127.0.0.1", port=9000))).revision,
            ]
            await asyncio.sleep(0.3)  # a few failed resumes
            assert watcher.state in ("connecting", "backoff") and len(errors) >= 2
            proxy.restore()
            got = await next_changes(changes, 4, timeout=10)
            await changes.aclose()  # type: ignore[attr-defined]
            assert [(c.type, c.instance.instance_id, c.revision) for c in got] == [
                ("added", "c", revisions[0]),
                ("updated", "a", revisions[1]),
                ("removed", "b", revisions[2]),
                ("added", "d", revisions[3]),
            ]
            assert [c.revision for c in got] == [before + 1, before + 2, before + 3, before + 4]  # gap-free
            assert len(syncs) == 1 and not syncs[0].reset  # resumed by replay: only the first snapshot
            assert reconnects and reconnects[0].attempts >= 1
            d = await client.discover("resume", include_all=True)
            listed = list(d.instances)
            for i in listed:  # live lease state: only include_all carries it (not revisioned, no watch events)
                assert i.HasField("lease_expires_at")
                i.ClearField("reported_load")
                i.ClearField("lease_expires_at")
            assert watcher.instances() == listed
            assert watcher.registry_id == d.registry_id
    finally:
        await via_proxy.close()
        await proxy.close()


async def test_a_rejected_watch_stops_the_watcher_with_a_typed_error(client: Client) -> None:
    watcher = Watcher(client, "not a valid name!")
    with pytest.raises(InvalidArgumentError, match="service"):
        await watcher.ready(timeout=5)
    assert watcher.state == "closed"
    with pytest.raises(InvalidArgumentError):
        async for _ in watcher:
            pass
    await watcher.close()


async def test_an_iterator_that_falls_behind_ends_with_overflow_and_the_view_stays_right(client: Client) -> None:
    async with Watcher(client, "slow", queue_size=2) as watcher:
        changes = watcher.changes()
        for i in range(4):
            await client.register(Instance(service="slow", instance_id=f"s{i}", host="127.0.0.1", port=9000))
        async with asyncio.timeout(5):
            while len(watcher.instances()) < 4:
                await asyncio.sleep(0.02)
        assert [c.instance.instance_id for c in await next_changes(changes, 2)] == ["s0", "s1"]
        with pytest.raises(WatchOverflowError, match="more than 2 changes behind"):
            await anext(changes)  # type: ignore[call-overload]
        assert [i.instance_id for i in watcher.instances()] == ["s0", "s1", "s2", "s3"]


async def test_an_operator_drain_reaches_the_view_with_its_operator_status(client: Client) -> None:
    inst = Instance(service="drained", instance_id="d1", host="127.0.0.1", port=9000)
    await client.register(inst)
    async with Watcher(client, "drained") as watcher:
        changes = watcher.changes()
        await client.set_operator_status(inst, OperatorStatus.OPERATOR_STATUS_DRAINING)
        await client.set_operator_status(inst, OperatorStatus.OPERATOR_STATUS_UNSPECIFIED)
        got = await next_changes(changes, 2)
        await changes.aclose()  # type: ignore[attr-defined]
    assert [(c.type, c.instance.status, c.instance.operator_status) for c in got] == [
        ("updated", ServingStatus.SERVING_STATUS_DRAINING, OperatorStatus.OPERATOR_STATUS_DRAINING),
        ("updated", ServingStatus.SERVING_STATUS_SERVING, OperatorStatus.OPERATOR_STATUS_UNSPECIFIED),
    ]
