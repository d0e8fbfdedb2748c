"""Client keepalive against a network path that goes silent without closing.

The server's own PINGs are off (MAXINE_KEEPALIVE_INTERVAL=0ms), so only the
client's can find the dead path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from maxine_server import MaxineServer
from tcp_proxy import TcpProxy

from maxine import BackoffOptions, Client, Instance, Watcher


@pytest.fixture
def quiet_server() -> Iterator[MaxineServer]:
    """quiet_server sends no PINGs of its own."""
    srv = MaxineServer({"MAXINE_LEASE_TTL_MIN": "100ms", "MAXINE_KEEPALIVE_INTERVAL": "0ms"}).start()
    try:
        yield srv
    finally:
        assert srv.stop() == 0, "the server did not exit 0 on SIGTERM:\n" + "\n".join(srv.logs[-20:])


async def watch_through_stall(server: MaxineServer, instance_id: str, wait: float, **keepalive: float) -> tuple[bool, list[Exception]]:
    """Watch service "ka" through a proxy, stall its connection, register instance_id directly: was it seen within wait seconds?"""
    proxy = await TcpProxy(server.port).start()
    direct = Client(server.target)
    via_proxy = Client(proxy.target, **keepalive)
    errors: list[Exception] = []
    try:
        async with Watcher(via_proxy, "ka", backoff=BackoffOptions(base=0.02, max=0.1), on_error=errors.append) as watcher:
            proxy.stall_open()
            await direct.register(Instance(service="ka", instance_id=instance_id, host="127.0.0.1", port=9001))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait
            while loop.time() < deadline and watcher.get("ka", instance_id) is None:
                await asyncio.sleep(0.01)
            return watcher.get("ka", instance_id) is not None, errors
    finally:
        await via_proxy.close()
        await direct.close()
        await proxy.close()


async def test_an_unanswered_ping_closes_the_silent_connection_and_the_watcher_resumes(quiet_server: MaxineServer) -> None:
    # grpc's PING timer ticks in whole seconds at best: 1 s interval, 1 s timeout
    seen, errors = await watch_through_stall(quiet_server, "ka-1", 15.0, keepalive_interval=1.0, keepalive_timeout=1.0)
    assert seen, f"the watcher never saw ka-1 after its path went silent (errors: {errors})"
    assert errors, "the watcher saw ka-1 without its stream failing: the path was not silent"


async def test_without_pings_the_watcher_stays_on_the_dead_path(quiet_server: MaxineServer) -> None:
    seen, errors = await watch_through_stall(quiet_server, "ka-2", 4.0, keepalive_interval=0)
    assert not seen and not errors


def test_keepalive_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="keepalive_interval: must be >= 0"):
        Client("127.0.0.1:1", keepalive_interval=-1)
    with pytest.raises(ValueError, match="keepalive_timeout: must be > 0"):
        Client("127.0.0.1:1", keepalive_timeout=0)
