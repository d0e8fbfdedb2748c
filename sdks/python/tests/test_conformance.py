"""The Python runner of the SDK conformance scenarios (testdata/conformance/*.json, described in its README.md).

Each scenario is a test, driving this SDK's Session and Watcher against the
real server. The TypeScript and Go runners read the same files and must agree.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import tempfile
from maxine_server import REPO, MaxineServer, RedisServer, free_port

from maxine import (
    BackoffOptions,
    Client,
    ConfigValue,
    ConfigWatcher,
    config_stub,
    Instance,
    InstanceKey,
    RemovalReason,
    ServingStatus,
    Session,
    Watcher,
    WatchChange,
)
from maxine.gen.maxine.config.v1 import config_pb2
from maxine.messages import OperatorStatus

DIR = REPO / "testdata" / "conformance"
HOLD_SESSION = Path(__file__).parent / "fixtures" / "hold_session.py"
BASE_ENV = {"MAXINE_GRACE": "1s", "MAXINE_LEASE_TTL_MIN": "100ms", "MAXINE_SHUTDOWN_GRACE": "300ms"}
BACKOFF = BackoffOptions(base=0.05, max=0.25)

FIELDS: dict[str, list[str]] = {
    "start_redis": [],
    "start_server": ["server", "store"],
    "stop_server": ["server"],
    "kill_server": ["server"],
    "restart_server": ["server"],
    "register": ["server", "service", "instance", "port", "ttl_ms"],
    "deregister": ["server", "service", "instance"],
    "set_operator_status": ["server", "service", "instance", "status"],
    "open_session": ["session", "servers"],
    "session_register": ["session", "service", "instance", "port", "ttl_ms"],
    "close_session": ["session"],
    "spawn_session": ["process", "server", "service", "instance", "ttl_ms"],
    "kill_process": ["process"],
    "watch": ["watcher", "servers", "services"],
    "expect_events": ["watcher", "events", "within_ms", "not_before_ms", "any_order", "from_snapshot"],
    "expect_no_events": ["watcher", "for_ms"],
    "skip_events": ["watcher"],
    "expect_view": ["watcher", "instances", "within_ms", "server"],
    "expect_discover": ["server", "service", "instances", "within_ms"],
    # service configuration
    "put_config": ["server", "service", "key", "value", "raw"],
    "delete_config": ["server", "service", "key"],
    "watch_config": ["watcher", "servers", "service", "key", "cache"],
    "expect_config": ["watcher", "values", "within_ms"],
    "close_config_watcher": ["watcher"],
}
EXPECTED_CONFIG_FIELDS = {"value", "version", "source", "deleted"}
EXPECTED_FIELDS = {"type", "service", "instance", "status", "operator_status", "removal_reason"}


class ScenarioError(AssertionError):
    """ScenarioError is a failed step, named by scenario, number and kind."""


def load_scenarios() -> list[dict[str, Any]]:
    out = []
    for f in sorted(DIR.glob("*.json")):
        sc = json.loads(f.read_text())
        assert f"{sc['name']}.json" == f.name, f"{f}: name must be {f.stem}, got {sc['name']}"
        out.append(sc)
    return out


SCENARIOS = load_scenarios()


def describe_instance(i: Instance) -> dict[str, str]:
    return {
        "service": i.service,
        "instance": i.instance_id,
        "status": ServingStatus.Name(i.status),
        "operator_status": OperatorStatus.Name(i.operator_status),
    }


def describe_change(c: WatchChange) -> dict[str, str]:
    return {"type": c.type, **describe_instance(c.instance), "removal_reason": RemovalReason.Name(c.removal_reason)}


def matches(expected: dict[str, Any], actual: dict[str, str]) -> bool:
    unknown = set(expected) - EXPECTED_FIELDS
    if unknown:
        raise ScenarioError(f"unknown expected field(s) {sorted(unknown)}")
    return all(actual.get(k) == v for k, v in expected.items())


async def wait_until(cond: Callable[[], bool], within: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            raise ScenarioError(f"within {within * 1000:.0f} ms: {what()}")
        await asyncio.sleep(0.02)


@dataclass
class Recorded:
    change: WatchChange
    registry: str
    at: float


@dataclass
class WatchRecord:
    watcher: Watcher
    changes: list[Recorded] = field(default_factory=list)
    cursor: int = 0
    violation: str | None = None
    task: asyncio.Task[None] | None = None

    def check(self) -> None:
        if self.violation is not None:
            raise ScenarioError(self.violation)


@dataclass
class ServerSlot:
    port: int
    env: dict[str, str]
    proc: MaxineServer | None = None


class Runner:
    """Runner runs one scenario; close() ends everything it started, whatever happened."""

    def __init__(self, scenario: dict[str, Any]) -> None:
        self.sc = scenario
        self.redis: RedisServer | None = None
        self.servers: dict[str, ServerSlot] = {}
        self.clients: list[Client] = []
        self.sessions: dict[str, Session] = {}
        self.watchers: dict[str, WatchRecord] = {}
        self.processes: dict[str, subprocess.Popen[str]] = {}
        self.config: dict[str, ConfigRecord] = {}
        self._data_dir: tempfile.TemporaryDirectory[str] | None = None
        self.last_end = time.monotonic()

    async def run(self) -> None:
        for n, step in enumerate(self.sc["steps"], 1):
            kind = step.get("do")
            where = f"{self.sc['name']} step {n} ({kind})"
            if kind not in FIELDS:
                raise ScenarioError(f"{where}: unknown step kind {kind!r}")
            unknown = sorted(k for k in step if k != "do" and k not in FIELDS[kind])
            if unknown:
                raise ScenarioError(f"{where}: unknown field(s) {', '.join(unknown)}")
            try:
                await getattr(self, f"_{kind}")(step)
            except Exception as err:
                raise ScenarioError(f"{where}: {type(err).__name__}: {err}") from err
            self.last_end = time.monotonic()

    async def close(self) -> None:
        for crec in self.config.values():
            await crec.watcher.close()
        for rec in self.watchers.values():
            await rec.watcher.close()
            if rec.task is not None:
                rec.task.cancel()
                await asyncio.gather(rec.task, return_exceptions=True)
        for session in self.sessions.values():
            await session.close()
        for c in self.clients:
            await c.close()
        for p in self.processes.values():
            if p.poll() is None:
                p.kill()
            p.wait()
            if p.stdout is not None:
                p.stdout.close()
        for slot in self.servers.values():
            if slot.proc is not None:
                await asyncio.to_thread(slot.proc.kill)
        if self.redis is not None:
            await asyncio.to_thread(self.redis.stop)
        if self._data_dir is not None:
            self._data_dir.cleanup()

    def data_dir(self) -> Path:
        """data_dir is the scenario's own directory: each server's configuration, the config watchers' cache files."""
        if self._data_dir is None:
            self._data_dir = tempfile.TemporaryDirectory(prefix="maxine-conformance-")
        return Path(self._data_dir.name)

    # -- servers

    async def _start_redis(self, s: dict[str, Any]) -> None:
        if self.redis is not None:
            raise ScenarioError("one Redis per scenario")
        self.redis = RedisServer()
        await asyncio.to_thread(self.redis.start)

    async def _start_server(self, s: dict[str, Any]) -> None:
        name = s["server"]
        if name in self.servers:
            raise ScenarioError(f"server {name} exists")
        env = {**BASE_ENV, **self.sc.get("env", {})}
        store = s.get("store", "memory")
        if store == "redis":
            if self.redis is None:
                raise ScenarioError("store redis needs a start_redis step first")
            env |= {"MAXINE_STORE": "redis", "MAXINE_REDIS_URL": self.redis.url}
        elif store != "memory":
            raise ScenarioError(f'store: "memory" or "redis", got {store!r}')
        # each server keeps its service configuration in a directory of the scenario's own (kept across a restart)
        env["MAXINE_DATA_DIR"] = str(self.data_dir() / f"server-{name}")
        slot = ServerSlot(port=free_port(), env=env)
        self.servers[name] = slot
        await self._start(slot)

    async def _start(self, slot: ServerSlot) -> None:
        proc = MaxineServer({**slot.env, "MAXINE_PORT": str(slot.port)})
        slot.proc = proc
        await asyncio.to_thread(proc.start)

    def _running(self, name: str) -> ServerSlot:
        slot = self.servers.get(name)
        if slot is None or slot.proc is None:
            raise ScenarioError(f"server {name} is not running")
        return slot

    async def _stop_server(self, s: dict[str, Any]) -> None:
        slot = self._running(s["server"])
        assert slot.proc is not None
        proc, slot.proc = slot.proc, None
        code = await asyncio.to_thread(proc.stop)
        if code != 0:
            raise ScenarioError(f"the server exited with {code} on SIGTERM")

    async def _kill_server(self, s: dict[str, Any]) -> None:
        slot = self._running(s["server"])
        assert slot.proc is not None
        proc, slot.proc = slot.proc, None
        await asyncio.to_thread(proc.kill)

    async def _restart_server(self, s: dict[str, Any]) -> None:
        slot = self.servers.get(s["server"])
        if slot is None or slot.proc is not None:
            raise ScenarioError(f"server {s['server']} is not stopped")
        await self._start(slot)

    # -- clients and unary calls

    def _client(self, names: list[str]) -> Client:
        if not names:
            raise ScenarioError("servers: name at least one")
        for n in names:
            if n not in self.servers:
                raise ScenarioError(f"no server {n}")
        c = Client([f"127.0.0.1:{self.servers[n].port}" for n in names])
        self.clients.append(c)
        return c

    async def _register(self, s: dict[str, Any]) -> None:
        inst = Instance(service=s["service"], instance_id=s["instance"], host="127.0.0.1", port=int(s["port"]))
        await self._client([s["server"]]).register(inst, ttl=s["ttl_ms"] / 1000 if "ttl_ms" in s else None)

    async def _deregister(self, s: dict[str, Any]) -> None:
        await self._client([s["server"]]).deregister(InstanceKey(service=s["service"], instance_id=s["instance"]))

    async def _set_operator_status(self, s: dict[str, Any]) -> None:
        status = OperatorStatus.Value(s["status"])
        await self._client([s["server"]]).set_operator_status(InstanceKey(service=s["service"], instance_id=s["instance"]), status)

    async def _expect_discover(self, s: dict[str, Any]) -> None:
        c = self._client([s["server"]])
        want = list(s["instances"])
        got: list[str] = []
        deadline = time.monotonic() + s["within_ms"] / 1000
        while True:
            try:
                res = await c.discover(s["service"], include_all=True)
                got = [i.instance_id for i in res.instances]
            except Exception:  # noqa: BLE001 - a server still starting: try again until the bound
                got = []
            if got == want:
                return
            if time.monotonic() > deadline:
                raise ScenarioError(f"within {s['within_ms']} ms: Discover lists {got}, want {want}")
            await asyncio.sleep(0.02)

    # -- sessions

    async def _open_session(self, s: dict[str, Any]) -> None:
        self.sessions[s["session"]] = Session(self._client(list(s["servers"])), backoff=BACKOFF)

    def _session(self, name: str) -> Session:
        if name not in self.sessions:
            raise ScenarioError(f"no session {name}")
        return self.sessions[name]

    async def _session_register(self, s: dict[str, Any]) -> None:
        inst = Instance(service=s["service"], instance_id=s["instance"], host="127.0.0.1", port=int(s["port"]))
        await self._session(s["session"]).register(inst, ttl=s["ttl_ms"] / 1000)

    async def _close_session(self, s: dict[str, Any]) -> None:
        await self._session(s["session"]).close()

    async def _spawn_session(self, s: dict[str, Any]) -> None:
        target = f"127.0.0.1:{self.servers[s['server']].port}"
        args = [sys.executable, str(HOLD_SESSION), target, s["service"], s["instance"], str(s["ttl_ms"] / 1000)]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        self.processes[s["process"]] = proc

        def registered() -> bool:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.strip() == "registered":
                    return True
            return False

        if not await asyncio.wait_for(asyncio.to_thread(registered), 15):
            raise ScenarioError(f"the session process exited with {proc.wait()} before it registered")

    async def _kill_process(self, s: dict[str, Any]) -> None:
        proc = self.processes.get(s["process"])
        if proc is None:
            raise ScenarioError(f"no process {s['process']}")
        proc.kill()
        await asyncio.to_thread(proc.wait)

    # -- watchers

    async def _watch(self, s: dict[str, Any]) -> None:
        # The aligned lifecycle: create (not started), subscribe, start, wait for the first snapshot with a bound.
        watcher = Watcher(self._client(list(s["servers"])), list(s["services"]), backoff=BACKOFF)
        rec = WatchRecord(watcher)
        self.watchers[s["watcher"]] = rec
        changes = watcher.changes()

        async def record() -> None:
            async for change in changes:
                registry = watcher.registry_id
                last = rec.changes[-1] if rec.changes else None
                if last is not None and last.registry == registry and change.revision < last.change.revision and rec.violation is None:
                    rec.violation = f"revision went down within registry {registry}: {last.change.revision} then {change.revision}"
                rec.changes.append(Recorded(change, registry, time.monotonic()))

        rec.task = asyncio.create_task(record(), name="conformance-recorder")
        watcher.start()
        await watcher.ready(timeout=10)

    def _record(self, name: str) -> WatchRecord:
        if name not in self.watchers:
            raise ScenarioError(f"no watcher {name}")
        return self.watchers[name]

    async def _expect_events(self, s: dict[str, Any]) -> None:
        rec = self._record(s["watcher"])
        expected: list[dict[str, Any]] = s["events"]
        start = rec.cursor
        await wait_until(
            lambda: len(rec.changes) - start >= len(expected),
            s["within_ms"] / 1000,
            lambda: f"{len(rec.changes) - start} of {len(expected)} changes: "
            f"{[describe_change(r.change) for r in rec.changes[start:]]}, want {expected}",
        )
        got = rec.changes[start : start + len(expected)]
        described = [describe_change(r.change) for r in got]
        if s.get("any_order") is True:
            ok = all(any(matches(e, d) for d in described) for e in expected) and all(
                any(matches(e, d) for e in expected) for d in described
            )
        else:
            ok = all(matches(e, d) for e, d in zip(expected, described, strict=True))
        if not ok:
            raise ScenarioError(f"changes {described}, want {expected}")
        snapshot = s.get("from_snapshot") is True
        for a, b in zip(got, got[1:], strict=False):
            bad = (
                b.change.revision != a.change.revision or b.registry != a.registry
                if snapshot
                else b.registry == a.registry and b.change.revision <= a.change.revision
            )
            if bad:
                revisions = [r.change.revision for r in got]
                raise ScenarioError(f"revisions {revisions}: want {'one snapshot' + chr(39) + 's (all equal)' if snapshot else 'increasing'}")
        if "not_before_ms" in s:
            after = (got[0].at - self.last_end) * 1000
            if after < s["not_before_ms"]:
                raise ScenarioError(f"the first change came {after:.0f} ms after the previous step, want >= {s['not_before_ms']} ms")
        rec.cursor = start + len(expected)
        rec.check()

    async def _expect_no_events(self, s: dict[str, Any]) -> None:
        rec = self._record(s["watcher"])
        before = len(rec.changes)
        await asyncio.sleep(s["for_ms"] / 1000)  # proves that nothing happens within the time: a sleep by design
        extra = [describe_change(r.change) for r in rec.changes[before:]]
        if extra:
            raise ScenarioError(f"changes within {s['for_ms']} ms: {extra}")
        rec.check()

    async def _skip_events(self, s: dict[str, Any]) -> None:
        rec = self._record(s["watcher"])
        rec.cursor = len(rec.changes)

    async def _expect_view(self, s: dict[str, Any]) -> None:
        rec = self._record(s["watcher"])
        expected: list[dict[str, Any]] = s["instances"]

        def view() -> list[dict[str, str]]:
            return [describe_instance(i) for i in rec.watcher.instances()]

        def ok() -> bool:
            v = view()
            return len(v) == len(expected) and all(matches(e, d) for e, d in zip(expected, v, strict=True))

        within = s["within_ms"] / 1000
        if "server" in s:
            # the view must come from the server's registry, not be one held from before a restart
            if not expected:
                raise ScenarioError("server: needs instances (their service's Discover names the registry)")
            c = self._client([s["server"]])
            registry = ""
            deadline = time.monotonic() + within
            while True:
                try:
                    registry = (await c.discover(expected[0]["service"], include_all=True)).registry_id
                except Exception:  # noqa: BLE001 - a server still starting: try again until the bound
                    registry = ""
                if rec.watcher.registry_id == registry and ok():
                    break
                if time.monotonic() > deadline:
                    raise ScenarioError(
                        f"within {s['within_ms']} ms: the view {view()} of registry {rec.watcher.registry_id}, want {expected} of {registry}"
                    )
                await asyncio.sleep(0.02)
        await wait_until(ok, within, lambda: f"the view {view()}, want {expected}")
        rec.check()

    # -- service configuration

    async def _put_config(self, s: dict[str, Any]) -> None:
        if ("value" in s) == ("raw" in s):
            raise ScenarioError("put_config: give value (JSON) or raw (text), one of them")
        value = s["raw"].encode() if "raw" in s else json.dumps(s["value"]).encode()
        req = config_pb2.PutRequest(service=s["service"], key=s["key"], value=value, content_type="application/json")
        # wait_for_ready: right after a restart, grpc's shared subchannel may still be in its reconnect backoff
        await config_stub(self._client([s["server"]])).Put(req, timeout=10, wait_for_ready=True)

    async def _delete_config(self, s: dict[str, Any]) -> None:
        await config_stub(self._client([s["server"]])).Delete(config_pb2.DeleteRequest(service=s["service"], key=s["key"]), timeout=10, wait_for_ready=True)

    async def _watch_config(self, s: dict[str, Any]) -> None:
        rec = ConfigRecord()
        cache = self.data_dir() / "cache" / f"{s['cache']}.json" if "cache" in s else None

        def changed(v: ConfigValue[Any]) -> None:
            rec.records.append({"value": v.value, "version": v.version, "source": v.source, "deleted": False})

        def deleted(version: int) -> None:
            rec.records.append({"value": None, "version": version, "source": "registry", "deleted": True})

        rec.watcher = ConfigWatcher(
            self._client(s["servers"]), s["service"], s["key"], cache_file=cache, backoff=BACKOFF, on_change=changed, on_deleted=deleted
        )
        self.config[s["watcher"]] = rec
        await rec.watcher.ready(timeout=10)
        current = rec.watcher.current
        # a value the watcher started with (its cache file) is its first record
        if not rec.records and current is not None:
            rec.records.append({"value": current.value, "version": current.version, "source": current.source, "deleted": False})

    def _config_record(self, name: str) -> ConfigRecord:
        rec = self.config.get(name)
        if rec is None:
            raise ScenarioError(f"no config watcher {name}")
        return rec

    async def _expect_config(self, s: dict[str, Any]) -> None:
        rec = self._config_record(s["watcher"])
        expected: list[dict[str, Any]] = s["values"]
        for e in expected:
            unknown = set(e) - EXPECTED_CONFIG_FIELDS
            if unknown:
                raise ScenarioError(f"unknown expected field(s) {sorted(unknown)}")
        start = rec.cursor
        await wait_until(
            lambda: len(rec.records) - start >= len(expected),
            s["within_ms"] / 1000,
            lambda: f"{len(rec.records) - start} of {len(expected)} values: {rec.records[start:]}, want {expected}",
        )
        got = rec.records[start : start + len(expected)]
        if not all(all(json.dumps(g.get(k)) == json.dumps(v) for k, v in e.items()) for e, g in zip(expected, got)):
            raise ScenarioError(f"values {got}, want {expected}")
        rec.cursor = start + len(expected)

    async def _close_config_watcher(self, s: dict[str, Any]) -> None:
        await self._config_record(s["watcher"]).watcher.close()


class ConfigRecord:
    """ConfigRecord is a config watcher and every state it recorded (a value, or a delete)."""

    watcher: ConfigWatcher[Any]

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.cursor = 0


def test_has_the_scenarios() -> None:
    assert len(SCENARIOS) >= 6, f"{len(SCENARIOS)} scenarios in {DIR}, want at least 6"


@pytest.mark.parametrize("step", [{"do": "teleport"}, {"do": "start_redis", "cluster": True}])
async def test_an_unknown_step_fails_the_scenario(step: dict[str, Any]) -> None:
    runner = Runner({"name": "x", "steps": [step]})
    try:
        with pytest.raises(ScenarioError, match="unknown"):
            await runner.run()
    finally:
        await runner.close()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[sc["name"] for sc in SCENARIOS])
async def test_conformance(scenario: dict[str, Any]) -> None:
    runner = Runner(scenario)
    try:
        await runner.run()
    finally:
        await runner.close()
