"""A Client given several replicas of one registry (Redis mode) moves its Session and Watcher to a live one."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from maxine_server import MaxineServer, RedisServer

from maxine import BackoffOptions, Client, Instance, InvalidArgumentError, Session, UnavailableError, Watcher, WatchChange


@pytest.fixture
def two_replicas() -> Iterator[tuple[MaxineServer, MaxineServer]]:
    """two_replicas are two servers sharing a private Redis."""
    redis = RedisServer().start()
    env = {
        "MAXINE_STORE": "redis",
        "MAXINE_REDIS_URL": redis.url,
        "MAXINE_GRACE": "1s",
        "MAXINE_LEASE_TTL_MIN": "100ms",
        "MAXINE_REDIS_RENEW_INTERVAL": "50ms",
        "MAXINE_REDIS_SWEEP_INTERVAL": "50ms",
    }
    servers: list[MaxineServer] = []
    try:
        servers = [MaxineServer(env).start(), MaxineServer(env).start()]
        yield servers[0], servers[1]
    finally:
        for s in servers:
            s.kill()
        redis.stop()


async def wait_until(cond: object, what: str, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not cond():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_session_and_watcher_move_to_the_live_replica(two_replicas: tuple[MaxineServer, MaxineServer]) -> None:
    a, b = two_replicas
    client = Client([a.target, b.target])
    on_b = Client(b.target)
    changes: list[WatchChange] = []
    try:
        async with Watcher(client, "fo", backoff=BackoffOptions(base=0.02, max=0.1)) as watcher:
            stream = watcher.changes()

            async def collect() -> None:
                async for c in stream:  # type: ignore[attr-defined]
                    changes.append(c)

            collector = asyncio.create_task(collect())
            async with Session(client, heartbeat_interval=0.2, ack_timeout=0.4, backoff=BackoffOptions(base=0.02, max=0.1)) as session:
                await session.register(Instance(service="fo", instance_id="fo-1", host="127.0.0.1", port=9100), ttl=5)
                await wait_until(lambda: watcher.get("fo", "fo-1") is not None, "fo-1 on the watcher", 5)
                assert client.replica == a.target and client.failovers == 0

                a.kill()
                await on_b.register(Instance(service="fo", instance_id="fo-2", host="127.0.0.1", port=9101))
                await wait_until(lambda: watcher.get("fo", "fo-2") is not None, "the watcher, moved to B, sees fo-2", 10)
                assert client.replica == b.target and client.failovers >= 1
                # past the 5 s lease A last gave it, fo-1 is still there: the session's stream on B holds it
                await asyncio.sleep(5.5)
                listed = await on_b.discover("fo", include_all=True)
                assert sorted(i.instance_id for i in listed.instances) == ["fo-1", "fo-2"]
                seen = list(changes)  # before the session's close deregisters fo-1
            collector.cancel()
            await asyncio.gather(collector, return_exceptions=True)
        revisions = [c.revision for c in seen]
        assert revisions == sorted(set(revisions)), f"revisions not strictly increasing: {revisions}"
        assert [(c.type, c.instance.instance_id) for c in seen if c.instance.instance_id == "fo-2"] == [("added", "fo-2")]
        assert not [c for c in seen if c.type == "removed"], [str(c) for c in seen]
    finally:
        await client.close()
        await on_b.close()


async def test_only_server_failures_move_the_client() -> None:
    srv = MaxineServer().start()
    from maxine_server import free_port

    dead = f"127.0.0.1:{free_port()}"
    client = Client([srv.target, dead], timeout=2)
    back = Client([dead, srv.target], timeout=2)
    try:
        with pytest.raises(InvalidArgumentError):
            await client.discover("not a name!")
        assert client.failovers == 0 and client.replica == srv.target
        with pytest.raises(UnavailableError):
            await back.list_services()
        assert back.failovers == 1 and back.replica == srv.target
        await back.list_services()  # the next call, on the live replica
    finally:
        await client.close()
        await back.close()
        srv.stop()


def test_targets_are_checked() -> None:
    with pytest.raises(ValueError, match="target: must name at least one address"):
        Client([])
