"""Credentials accepted (and refused) end to end: the real server with a tokens file and a policy
authenticates each call and owns the instances a session registers to the token's principal."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from maxine_server import MaxineServer

from maxine import Client, Instance, PermissionDeniedError, Session, UnauthenticatedError, Watcher

WRITER = "tok-py-writer-7e2a5c"
READER = "tok-py-reader-1d6b9f"
ROOT = "tok-py-root-0f3c8a"

POLICY = """roles:
  writer:
    - { permissions: [register], namespaces: ["*"], services: ["payments*"] }
  reader:
    - { permissions: [read], namespaces: ["*"], services: ["*"] }
  admin:
    - { permissions: [admin], namespaces: ["*"], services: ["*"] }
"""


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture
def auth_server(tmp_path: Path) -> Iterator[MaxineServer]:
    (tmp_path / "tokens").write_text(
        f"svc-payments sha256:{_sha(WRITER)} writer\ndashboard sha256:{_sha(READER)} reader\nroot sha256:{_sha(ROOT)} admin\n"
    )
    (tmp_path / "policy.yaml").write_text(POLICY)
    srv = MaxineServer(
        {
            "MAXINE_LEASE_TTL_MIN": "100ms",
            "MAXINE_AUTH_TOKENS_FILE": str(tmp_path / "tokens"),
            "MAXINE_AUTH_POLICY_FILE": str(tmp_path / "policy.yaml"),
        }
    ).start()
    try:
        yield srv
    finally:
        assert srv.stop() == 0


async def test_a_session_registers_and_beats_as_the_tokens_principal(auth_server: MaxineServer) -> None:
    errors: list[object] = []
    async with Client(auth_server.target, token=WRITER) as client, Session(client, on_error=errors.append) as session:
        await session.register(Instance(service="payments", instance_id="p-1", host="127.0.0.1", port=8080), ttl=0.3)
        await asyncio.sleep(1.0)  # several TTLs: only the session's beats keep it
        async with Client(auth_server.target, token=ROOT) as admin:
            found = await admin.discover("payments", include_all=True)
        assert [(i.instance_id, i.owner) for i in found.instances] == [("p-1", "svc-payments")]
    assert errors == []


async def test_a_wrong_token_or_none_is_unauthenticated_with_the_servers_reason(auth_server: MaxineServer) -> None:
    async with Client(auth_server.target, token="tok-not-issued-5353") as client, Session(client) as session:
        with pytest.raises(UnauthenticatedError, match="the bearer token is not one this server knows") as caught:
            await session.register(Instance(service="payments", instance_id="p-2", host="127.0.0.1", port=1))
        assert "tok-not-issued" not in str(caught.value)
    async with Client(auth_server.target) as anonymous:
        with pytest.raises(UnauthenticatedError, match="no credentials"):
            await anonymous.list_services()
    async with Client(auth_server.target, token=READER) as reader:
        with pytest.raises(PermissionDeniedError, match="lacks the register permission"):
            await reader.register(Instance(service="payments", instance_id="p-3", host="127.0.0.1", port=1))


async def test_a_token_function_is_accepted_for_calls_and_the_heartbeat_stream(auth_server: MaxineServer) -> None:
    asked = 0

    def token() -> str:
        nonlocal asked
        asked += 1
        return WRITER

    async with Client(auth_server.target, token=token) as client, Session(client) as session:
        await session.register(Instance(service="payments-eu", instance_id="e-1", host="127.0.0.1", port=1), ttl=0.3)
        await asyncio.sleep(0.6)
        assert asked >= 2  # Register, then the Heartbeat stream
        async with Client(auth_server.target, token=READER) as reader:
            found = await reader.discover("payments-eu", include_all=True)
        assert [(i.instance_id, i.owner) for i in found.instances] == [("e-1", "svc-payments")]


async def test_a_read_only_watcher_sees_changes(auth_server: MaxineServer) -> None:
    async with Client(auth_server.target, token=READER) as reader, Watcher(reader, "payments-us") as watcher:
        changes = watcher.changes()
        async with Client(auth_server.target, token=WRITER) as writer:
            await writer.register(Instance(service="payments-us", instance_id="u-1", host="127.0.0.1", port=1))
        change = await asyncio.wait_for(anext(changes), 5)
        assert (change.type, change.instance.instance_id, change.instance.owner) == ("added", "u-1", "svc-payments")
