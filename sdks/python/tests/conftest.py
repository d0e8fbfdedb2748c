"""Fixtures: the real server on a free loopback port, and a check that no task outlives its test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from maxine_server import MaxineServer

from maxine import Client


@pytest.fixture
def server() -> Iterator[MaxineServer]:
    """server is a fresh Maxine server (grace 1 s, lease TTLs from 100 ms) for one test."""
    srv = MaxineServer({"MAXINE_LEASE_TTL_MIN": "100ms"}).start()
    try:
        yield srv
    finally:
        assert srv.stop() == 0, "the server did not exit 0 on SIGTERM:\n" + "\n".join(srv.logs[-20:])


@pytest.fixture
async def client(server: MaxineServer) -> AsyncIterator[Client]:
    """client is a Client of the test's server, closed after the test."""
    c = Client(server.target)
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture(autouse=True)
async def no_leftover_tasks() -> AsyncIterator[None]:
    """no_leftover_tasks fails a test that leaves an asyncio task of its own running."""
    before = asyncio.all_tasks()
    yield
    for _ in range(50):
        left = {t for t in asyncio.all_tasks() - before if t is not asyncio.current_task() and not t.done()}
        names = sorted(t.get_name() for t in left if not _is_grpc_internal(t)) + _sdk_timers()
        if not names:
            return
        await asyncio.sleep(0.02)
    pytest.fail(f"tasks or timers left running after the test: {names}")


def _sdk_timers() -> list[str]:
    """_sdk_timers lists the SDK's pending timers (heartbeat ticks, reconnects) on the running loop."""
    scheduled = getattr(asyncio.get_running_loop(), "_scheduled", [])
    out = []
    for h in scheduled:
        cb = getattr(h, "_callback", None)
        module = getattr(cb, "__module__", "") or ""
        if not h.cancelled() and module.startswith("maxine"):
            out.append(f"timer {getattr(cb, '__qualname__', cb)!s}")
    return out


def _is_grpc_internal(task: asyncio.Task[object]) -> bool:
    coro = task.get_coro()
    qualname = getattr(coro, "__qualname__", "") or ""
    module = getattr(getattr(coro, "cr_code", None), "co_filename", "") or ""
    return "grpc" in module or qualname.startswith("_")
