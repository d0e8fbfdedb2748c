"""grpcio's own xDS client against Maxine's ADS: no Maxine SDK in the calling path.

A grpc.aio channel dialing xds:///py-payments reads its Listener, RouteConfiguration,
Cluster and ClusterLoadAssignment from Maxine (bootstrap in GRPC_XDS_BOOTSTRAP_CONFIG)
and calls real grpc.aio backends that registered through the Python SDK's Session.
Its traffic follows the registry: a new instance gets calls, a drained one gets none.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import grpc
import grpc.aio
import pytest
from maxine_server import MaxineServer

from maxine import Client, Instance, Session

WHO = "/test.Who/Who"


@dataclass
class Backend:
    """Backend is a real grpc.aio server answering Who with its name, counting its calls."""

    name: str
    server: grpc.aio.Server
    port: int = 0
    calls: int = 0


async def start_backend(name: str) -> Backend:
    backend = Backend(name, grpc.aio.server())

    async def who(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        backend.calls += 1
        return name.encode()

    handler = grpc.unary_unary_rpc_method_handler(who)
    backend.server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Who", {"Who": handler})])
    backend.port = backend.server.add_insecure_port("127.0.0.1:0")
    await backend.server.start()
    return backend


@pytest.fixture
async def xds_bootstrap(server: MaxineServer) -> AsyncIterator[None]:
    """xds_bootstrap points grpcio's xDS client at the test's server (read when the first xds channel is made)."""
    os.environ["GRPC_XDS_BOOTSTRAP_CONFIG"] = json.dumps(
        {
            "xds_servers": [{"server_uri": server.target, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
            "node": {"id": "grpcio-test", "locality": {"zone": "z1"}},
        }
    )
    try:
        yield
    finally:
        del os.environ["GRPC_XDS_BOOTSTRAP_CONFIG"]


async def until(pred: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """until polls pred (each poll makes calls) until it holds, failing after timeout seconds."""
    t0 = time.monotonic()
    while not await pred():
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


async def test_grpcio_xds_channel_follows_the_registry(client: Client, xds_bootstrap: None) -> None:
    backends = {n: await start_backend(n) for n in ("a", "b", "c")}
    channel = grpc.aio.insecure_channel("xds:///py-payments")
    call = channel.unary_unary(WHO)

    async def calls(n: int) -> dict[str, int]:
        seen: dict[str, int] = {}
        for _ in range(n):
            who = (await call(b"", timeout=5, wait_for_ready=True)).decode()
            seen[who] = seen.get(who, 0) + 1
        return seen

    try:
        async with Session(client) as session:
            handles = {}
            for n in ("a", "b"):
                inst = Instance(service="py-payments", instance_id=n, host="127.0.0.1", port=backends[n].port, zone="z1")
                handles[n] = await session.register(inst)
            # the first calls wait for the channel to read its resources
            seen = await calls(100)
            assert set(seen) == {"a", "b"}, f"calls went to {seen}, expected a and b"
            assert min(seen.values()) >= 30, f"round robin over a and b: {seen}"

            inst_c = Instance(service="py-payments", instance_id="c", host="127.0.0.1", port=backends["c"].port, zone="z1")
            handles["c"] = await session.register(inst_c)
            await until(lambda: _reaches(calls, "c"), 5, "the new instance c to get calls")

            await handles["a"].drain()
            # in-flight and already-picked calls may still reach a right after the drain: wait until the pushed update lands
            await until(lambda: _avoids(calls, "a"), 5, "the drained instance a to stop getting calls")
            before = backends["a"].calls
            seen = await calls(100)
            assert "a" not in seen and backends["a"].calls == before, f"a is DRAINING but got calls: {seen}"
            assert set(seen) == {"b", "c"}
    finally:
        await channel.close()
        for b in backends.values():
            await b.server.stop(None)


async def _reaches(calls: Callable[[int], Awaitable[dict[str, int]]], name: str) -> bool:
    return name in await calls(20)


async def _avoids(calls: Callable[[int], Awaitable[dict[str, int]]], name: str) -> bool:
    return name not in await calls(50)
