"""Active health checks (issue 20) seen through the Python SDK: the generated types carry the check and its result."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from google.protobuf.duration_pb2 import Duration

from maxine import Client, Instance, Watcher
from maxine.messages import CheckStatus, HealthCheck, HttpCheck, ServingStatus


class _Target(BaseHTTPRequestHandler):
    """_Target answers every request with the server's current status (a class attribute the test flips)."""

    status = 200

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (http.server's name)
        pass


@pytest.fixture
def target() -> Iterator[ThreadingHTTPServer]:
    """target is an HTTP server on 127.0.0.1 (a free port) whose answers the test sets through _Target.status."""
    _Target.status = 200
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Target)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join()


async def test_check_result_in_the_watchers_view(client: Client, target: ThreadingHTTPServer) -> None:
    check = HealthCheck(http=HttpCheck(path="/healthz"), interval=Duration(seconds=1), timeout=Duration(nanos=500_000_000), unhealthy_threshold=1)
    reg = await client.register(Instance(service="checked", instance_id="c-1", host="127.0.0.1", port=target.server_address[1], health_check=check))
    assert reg.instance.check_result.status == CheckStatus.CHECK_STATUS_PENDING
    assert not reg.HasField("lease_expires_at")  # an instance with a check has no lease
    async with Watcher(client, "checked") as watcher:

        async def until(status: int) -> Instance:
            async with asyncio.timeout(10):
                while True:
                    inst = watcher.get("checked", "c-1")
                    if inst is not None and inst.check_result.status == status:
                        return inst
                    await asyncio.sleep(0.05)

        passing = await until(CheckStatus.CHECK_STATUS_PASSING)
        assert passing.check_result.message == "HTTP 200 from /healthz"
        assert passing.status == ServingStatus.SERVING_STATUS_SERVING
        assert watcher.pick() is not None
        _Target.status = 503
        failing = await until(CheckStatus.CHECK_STATUS_FAILING)
        assert failing.check_result.message == "HTTP 503 from /healthz"
        assert failing.status == ServingStatus.SERVING_STATUS_NOT_SERVING
        assert watcher.pick() is None
