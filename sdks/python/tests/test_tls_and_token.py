"""Tokens and TLS against a real TLS server: certificates from scripts/make-test-certs.sh, and the
header-echo fixture (the built server plus an interceptor that prints each call's authorization
header and mTLS identity), so these tests check what the client sends. The server's acceptance of
tokens is tested on the server's side."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from maxine_server import HEADER_ECHO, MaxineServer, make_test_certs

from maxine import Client, Instance, Session, SyncClient, tls_credentials

SPIFFE = "spiffe://maxine.test/ns/prod/sa/payments"


class TlsServer:
    """TlsServer is the header-echo server on TLS (a copy of server.pem it can replace), MAXINE_TLS_CLIENT_AUTH=request."""

    def __init__(self, certs: Path) -> None:
        self.certs = certs
        shutil.copy(certs / "server.pem", certs / "live.pem")
        shutil.copy(certs / "server-key.pem", certs / "live-key.pem")
        self.server = MaxineServer(
            {
                "MAXINE_LEASE_TTL_MIN": "100ms",
                "MAXINE_TLS_CERT": str(certs / "live.pem"),
                "MAXINE_TLS_KEY": str(certs / "live-key.pem"),
                "MAXINE_TLS_CA": str(certs / "ca.pem"),
                "MAXINE_TLS_CLIENT_AUTH": "request",
                "MAXINE_TLS_RELOAD_INTERVAL": "0ms",
            },
            entry=HEADER_ECHO,
        ).start()
        self.target = f"https://127.0.0.1:{self.server.port}"

    async def wait_for(self, prefix: str, count: int) -> None:
        """wait_for waits (bounded) until count calls with prefix were printed: the server's stdout is read by a thread."""
        for _ in range(500):
            if len(self.echoed(prefix)) >= count:
                return
            await asyncio.sleep(0.01)
        pytest.fail(f"the server printed fewer than {count} calls with {prefix!r}")

    def echoed(self, prefix: str) -> list[dict[str, object]]:
        """echoed lists the calls the server printed whose authorization header starts with prefix."""
        out = []
        for line in list(self.server.logs):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            auth = rec.get("authorization") if isinstance(rec, dict) else None
            if rec.get("msg") == "test: call" and isinstance(auth, str) and auth.startswith(prefix):
                out.append({k: rec[k] for k in ("method", "protocol", "authorization", "peerIdentity")})
        return out


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TlsServer]:
    srv = TlsServer(make_test_certs(tmp_path))
    try:
        yield srv
    finally:
        assert srv.server.stop() == 0


async def test_token_and_client_certificate_reach_the_server(tls_server: TlsServer) -> None:
    c = tls_server.certs
    creds = tls_credentials(ca_file=c / "ca.pem", cert_file=c / "client.pem", key_file=c / "client-key.pem")
    async with Client(tls_server.target, credentials=creds, token="py-static") as client:
        await client.list_services()
    await tls_server.wait_for("Bearer py-static", 1)
    assert tls_server.echoed("Bearer py-static") == [
        {"method": "ListServices", "protocol": "grpc", "authorization": "Bearer py-static", "peerIdentity": SPIFFE}
    ]
    with SyncClient(tls_server.target, credentials=creds, token=lambda: "py-sync") as sync:
        sync.list_services()
    await tls_server.wait_for("Bearer py-sync", 1)
    assert [e["authorization"] for e in tls_server.echoed("Bearer py-sync")] == ["Bearer py-sync"]


async def test_a_token_function_is_asked_before_every_call_and_stream(tls_server: TlsServer) -> None:
    n = 0

    async def token() -> str:
        nonlocal n
        n += 1
        return f"py-refresh-{n}"

    async with Client(tls_server.target, credentials=tls_credentials(ca_file=tls_server.certs / "ca.pem"), token=token) as client:
        await client.list_services()
        await client.list_services()
        async with Session(client) as session:
            await session.register(Instance(service="py-tokens", instance_id="t-1", host="127.0.0.1", port=1), ttl=5)
            for _ in range(500):
                if any(e["method"] == "Heartbeat" for e in tls_server.echoed("Bearer py-refresh-")):
                    break
                await asyncio.sleep(0.01)
    await tls_server.wait_for("Bearer py-refresh-", n)
    calls = tls_server.echoed("Bearer py-refresh-")
    assert [e["authorization"] for e in calls[:2]] == ["Bearer py-refresh-1", "Bearer py-refresh-2"]
    assert any(e["method"] == "Heartbeat" for e in calls)
    # one fresh token per call, and the function asked once per call; no client certificate: no identity
    assert len({e["authorization"] for e in calls}) == len(calls) == n
    assert all(e["peerIdentity"] is None for e in calls)


async def test_bad_tokens_and_tls_files_are_refused_without_showing_the_token(tls_server: TlsServer, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="token: must be a non-empty string") as caught:
        Client(tls_server.target, token="sec\nret")
    assert "sec" not in str(caught.value)
    with pytest.raises(ValueError, match="cert_file and key_file go together"):
        tls_credentials(cert_file=tmp_path / "x.pem")
    with pytest.raises(ValueError, match="ca_file .* cannot be read"):
        tls_credentials(ca_file=tmp_path / "missing.pem")

    def failing() -> str:
        raise RuntimeError("identity provider down")

    async with Client(tls_server.target, credentials=tls_credentials(ca_file=tls_server.certs / "ca.pem"), token=failing) as client:
        with pytest.raises(RuntimeError, match="identity provider down"):
            await client.list_services()


async def test_a_session_survives_a_certificate_reload(tls_server: TlsServer) -> None:
    certs = tls_server.certs
    creds = tls_credentials(ca_file=certs / "ca.pem")
    reconnects: list[object] = []
    async with Client(tls_server.target, credentials=creds) as client, Session(client, on_reconnect=reconnects.append) as session:
        await session.register(Instance(service="py-reload", instance_id="r-1", host="127.0.0.1", port=1), ttl=0.3)

        shutil.copy(certs / "server-2-key.pem", certs / "live-key.pem")
        shutil.copy(certs / "server-2.pem", certs / "live.pem")
        tls_server.server.signal(signal.SIGHUP)
        for _ in range(500):
            if any("TLS certificate reloaded" in line and "CN=maxine-2" in line for line in tls_server.server.logs):
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the server did not log the reload")

        ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        with socket.create_connection(("127.0.0.1", tls_server.server.port)) as raw, ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            subject = dict(x[0] for x in s.getpeercert()["subject"])  # type: ignore[index,misc]
        assert subject["commonName"] == "maxine-2"

        # several TTLs later the instance is still there: the stream kept beating on its old connection
        await asyncio.sleep(1.0)
        async with Client(tls_server.target, credentials=creds) as fresh:
            found = await fresh.discover("py-reload", include_all=True)
        assert [i.instance_id for i in found.instances] == ["r-1"]
        assert reconnects == []
