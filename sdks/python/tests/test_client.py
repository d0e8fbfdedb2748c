"""Client and SyncClient against the real server: unary RPCs, typed errors, pick() against Discover."""

from __future__ import annotations


import pytest
from maxine_server import MaxineServer, free_port

from maxine import (
    Client,
    Instance,
    InvalidArgumentError,
    NotFoundError,
    Strategy,
    SyncClient,
    UnavailableError,
    Watcher,
)


async def test_register_discover_list_deregister(client: Client) -> None:
    res = await client.register(Instance(service="pay", instance_id="p1", host="10.0.0.7", port=8080), ttl=30)
    assert res.instance.instance_id == "p1" and res.revision == 1 and res.registry_id
    assert res.lease_ttl.seconds == 30
    d = await client.discover("pay", include_all=True)
    assert d.instance.instance_id == "p1" and [i.instance_id for i in d.instances] == ["p1"]
    ls = await client.list_services()
    assert [(s.service, s.instance_count, s.serving_count) for s in ls.services] == [("pay", 1, 1)]
    dr = await client.deregister(res.instance)
    assert dr.revision == 2
    with pytest.raises(NotFoundError, match="not_found"):
        await client.deregister(res.instance)
    with pytest.raises(NotFoundError):
        await client.discover("pay")


async def test_bad_input_is_an_invalid_argument_error_naming_the_field(client: Client) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await client.register(Instance(service="pay", instance_id="p1", host="10.0.0.7", port=0))
    assert "port" in caught.value.message and "65535" in caught.value.message
    with pytest.raises(InvalidArgumentError, match="ttl"):
        await client.register(Instance(service="pay", host="h", port=1), ttl=7200)


async def test_an_unreachable_server_is_unavailable() -> None:
    async with Client(f"127.0.0.1:{free_port()}", timeout=5) as c:
        with pytest.raises(UnavailableError) as caught:
            await c.list_services()
        assert caught.value.retryable


async def test_pick_chooses_what_discover_chooses(client: Client) -> None:
    for i in range(7):
        await client.register(Instance(service="hash", instance_id=f"pod-{i}", host="127.0.0.1", port=9000 + i))
    async with Watcher(client, "hash") as watcher:
        assert len(watcher.instances()) == 7
        for strategy in (Strategy.STRATEGY_CONSISTENT_HASH, Strategy.STRATEGY_RENDEZVOUS):
            for k in range(40):
                key = f"user-{k}"
                local = watcher.pick(strategy, key)
                remote = await client.discover("hash", strategy=strategy, hash_key=key)
                assert local is not None and local.instance_id == remote.instance.instance_id, (strategy, key)


def test_sync_client_registers_and_discovers(server: MaxineServer) -> None:
    with SyncClient(f"http://{server.target}") as c:
        res = c.register(Instance(service="script", instance_id="s1", host="127.0.0.1", port=1234), ttl=5)
        assert res.instance.instance_id == "s1"
        assert c.discover("script").instance.port == 1234
        assert [s.service for s in c.list_services().services] == ["script"]
        c.deregister(res.instance)
        with pytest.raises(NotFoundError):
            c.discover("script")
        with pytest.raises(InvalidArgumentError, match="port"):
            c.register(Instance(service="script", host="h", port=70000))
