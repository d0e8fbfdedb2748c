"""A Watcher that resumes into a restarted registry names what it holds and gets only the differences."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from maxine_server import REPO, MaxineServer, free_port
from tcp_proxy import TcpProxy

from maxine import BackoffOptions, Client, Instance, ResetReason, SyncInfo, WatchChange, Watcher, instance_digest
from maxine.messages import OperatorStatus, ServingStatus, WatchServicesRequest, WatchServicesResponse

VECTORS: dict[str, Any] = json.loads((REPO / "testdata" / "instance-digest.json").read_text(encoding="utf-8"))


def test_instance_digests_reproduce_the_shared_vectors() -> None:
    assert len(VECTORS["instances"]) >= 10
    for v in VECTORS["instances"]:
        i = v["instance"]
        inst = Instance(
            service=i["service"],
            instance_id=i["instanceId"],
            host=i["host"],
            port=i["port"],
            version=i["version"],
            zone=i["zone"],
            tags=i["tags"],
            metadata=i["metadata"],
            weight=i["weight"],
            status=ServingStatus.ValueType(i["status"]),
            owner=i["owner"],
            operator_status=OperatorStatus.ValueType(i["operatorStatus"]),
        )
        assert instance_digest(inst) == int(v["digest"]), i


class _TappedCall:
    def __init__(self, call: Any, received: list[WatchServicesResponse]) -> None:
        self._call = call
        self._received = received

    def __aiter__(self) -> AsyncIterator[WatchServicesResponse]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[WatchServicesResponse]:
        async for m in self._call:
            self._received.append(m)
            yield m

    def cancel(self) -> bool:
        return bool(self._call.cancel())


def _key(i: Any) -> str:
    return f"{i.service}/{i.instance_id}"


def _inst(service: str, iid: str, port: int = 9000) -> Instance:
    return Instance(service=service, instance_id=iid, host="127.0.0.1", port=port, metadata={"k": iid})


async def test_a_resume_into_a_restarted_registry_gets_a_differential_reset() -> None:
    port = free_port()
    srv = MaxineServer({"MAXINE_PORT": str(port)}).start()
    proxy = await TcpProxy(port).start()
    via_proxy = Client(proxy.target)
    requests: list[WatchServicesRequest] = []
    received: list[WatchServicesResponse] = []
    watch_services = via_proxy.watch_services

    def tapped(req: WatchServicesRequest) -> Any:
        requests.append(req)
        return _TappedCall(watch_services(req), received)

    via_proxy.watch_services = tapped  # type: ignore[method-assign]
    syncs: list[SyncInfo] = []
    before = [_inst(s, f"i{n}") for s in ("alpha", "beta") for n in range(8)]
    try:
        direct = Client(srv.target)
        try:
            for i in before:
                await direct.register(i)
        finally:
            await direct.close()
        async with Watcher(via_proxy, backoff=BackoffOptions(base=0.02, max=0.1), on_sync=syncs.append) as watcher:
            assert len(watcher.instances()) == 16
            old_registry = watcher.registry_id
            changes = watcher.changes()

            # the registry restarts on the same port while the watcher is cut off
            proxy.cut()
            assert srv.stop() == 0
            srv = MaxineServer({"MAXINE_PORT": str(port)}).start()
            changed = {"alpha/i0", "alpha/i1"}
            gone = {"beta/i6", "beta/i7"}
            direct = Client(srv.target)
            try:
                for i in before:
                    if _key(i) in gone:
                        continue
                    await direct.register(_inst(i.service, i.instance_id, 9001) if _key(i) in changed else i)
                await direct.register(_inst("gamma", "n1"))
                seen = len(received)
                proxy.restore()
                got: list[WatchChange] = []
                async with asyncio.timeout(10):
                    async for c in changes:  # type: ignore[attr-defined]
                        got.append(c)
                        if len(got) == 5:
                            break
                await changes.aclose()  # type: ignore[attr-defined]
                async with asyncio.timeout(5):
                    while not any(s.reset for s in syncs):
                        await asyncio.sleep(0.01)

                assert sorted(f"{c.type}:{_key(c.instance)}" for c in got) == [
                    "added:gamma/n1",
                    "removed:beta/i6",
                    "removed:beta/i7",
                    "updated:alpha/i0",
                    "updated:alpha/i1",
                ]
                reset = [s for s in syncs if s.reset][0]
                assert reset.reason == ResetReason.RESET_REASON_REGISTRY_CHANGED
                assert reset.registry_id != old_registry
                resume = requests[-1]
                assert resume.registry_id == old_registry
                assert sorted(f"{s.service}/{i.instance_id}" for s in resume.held.services for i in s.instances) == sorted(
                    _key(i) for i in before
                )
                reply = received[seen:]
                sent = sorted(_key(i) for m in reply if m.WhichOneof("message") == "snapshot" for i in m.snapshot.instances)
                removed = sorted(_key(k) for m in reply if m.WhichOneof("message") == "snapshot" for k in m.snapshot.removed)
                ends = [m.snapshot_end for m in reply if m.WhichOneof("message") == "snapshot_end"]
                assert ends and ends[0].differential
                assert sent == ["alpha/i0", "alpha/i1", "gamma/n1"]
                assert removed == ["beta/i6", "beta/i7"]

                server: dict[str, int] = {}
                for s in ("alpha", "beta", "gamma"):
                    d = await direct.discover(s, include_all=True)
                    server.update({_key(i): instance_digest(i) for i in d.instances})
                assert {_key(i): instance_digest(i) for i in watcher.instances()} == server
                assert len(server) == 15
            finally:
                await direct.close()
    finally:
        await via_proxy.close()
        await proxy.close()
        assert srv.stop() == 0
