"""ConfigWatcher and get_config: one service configuration key, decoded and kept up to date (maxine.config.v1.ConfigService)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Literal, Protocol, TypeVar, cast

import grpc

from .backoff import Backoff, BackoffOptions
from .client import Client
from .errors import FATAL_CODES, MaxineError, UnavailableError, from_rpc_error
from .gen.maxine.config.v1 import config_pb2, config_pb2_grpc

T = TypeVar("T")

Decoder = Callable[[bytes, str], T]
"""Decoder turns a stored value (and its content type) into T; raising keeps the last good value."""


def json_decoder(value: bytes, _content_type: str) -> Any:
    """json_decoder is the default Decoder: the value as UTF-8 JSON (a dict, a list, a number...)."""
    return json.loads(value.decode("utf-8"))


@dataclass(frozen=True)
class ConfigValue(Generic[T]):
    """ConfigValue is one decoded version of a key; source is "registry" or "cache" (the local file, read at start)."""

    value: T
    version: int
    revision: int
    content_type: str
    source: Literal["registry", "cache"]


class _ConfigStub(Protocol):
    """_ConfigStub is the typed shape of the generated ConfigServiceStub on a grpc.aio channel."""

    def Get(self, request: config_pb2.GetRequest, *, timeout: float | None = None) -> Any: ...
    def Watch(self, request: config_pb2.WatchRequest) -> Any: ...


def config_stub(client: Client) -> Any:
    """config_stub is the generated ConfigService stub on the client's current channel, for the calls this module does not wrap (Put, Delete, History...)."""
    return config_pb2_grpc.ConfigServiceStub(client.channel)  # type: ignore[no-untyped-call]


async def get_config(
    client: Client,
    service: str,
    key: str,
    *,
    namespace: str = "",
    version: int = 0,
    decode: Decoder[Any] = json_decoder,
) -> ConfigValue[Any]:
    """get_config reads a key's latest value (or a kept version) and decodes it; errors are MaxineError subclasses."""
    stub = cast(_ConfigStub, config_stub(client))
    try:
        res = await stub.Get(config_pb2.GetRequest(namespace=namespace, service=service, key=key, version=version), timeout=client.timeout)
    except grpc.RpcError as err:
        raise from_rpc_error(err) from None
    e = res.entry
    return ConfigValue(decode(e.value, e.content_type), e.version, e.revision, e.content_type, "registry")


class ConfigWatcher(Generic[T]):
    """ConfigWatcher keeps one configuration key's value up to date over ConfigService.Watch.

    It applies the snapshot, then each change, decoded into T (JSON by
    default); keeps the last good value while the registry is unreachable or a
    version does not decode; resumes after a failure from the last revision it
    saw (the server replays exactly what it missed, or sends a fresh
    snapshot); and with cache_file starts from the value it last saw when the
    registry does not answer (the file is rewritten atomically on each change,
    in the format of the TypeScript and Go SDKs). ``async with`` starts it and
    waits until the value is known; ``async for v in watcher`` yields each new
    value; ``close()`` ends the stream.
    """

    def __init__(
        self,
        client: Client,
        service: str,
        key: str,
        *,
        namespace: str = "",
        decode: Decoder[T] = json_decoder,
        cache_file: str | os.PathLike[str] | None = None,
        backoff: BackoffOptions | None = None,
        on_change: Callable[[ConfigValue[T]], None] | None = None,
        on_deleted: Callable[[int], None] | None = None,
        on_invalid: Callable[[Exception, int], None] | None = None,
        on_error: Callable[[MaxineError], None] | None = None,
    ) -> None:
        """Describe the watch; nothing is sent before start() (or ``async with``); a cache file is read now."""
        if not service or not key:
            raise ValueError("service and key: must not be empty")
        self._client = client
        self._service = service
        self._key = key
        self._namespace = namespace
        self._decode = decode
        self._cache = Path(cache_file) if cache_file is not None else None
        self._backoff = Backoff(backoff)
        self._on_change = on_change
        self._on_deleted = on_deleted
        self._on_invalid = on_invalid
        self._on_error = on_error
        self._last: ConfigValue[T] | None = None
        self._revision = 0
        self._registry_id = ""
        self._known = False
        self._queues: set[asyncio.Queue[ConfigValue[T] | None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._closing = False
        self._failure: MaxineError | None = None
        if self._cache is not None:
            self._read_cache(self._cache)

    @property
    def value(self) -> T | None:
        """value is the last good value (None before any, or after a delete)."""
        return self._last.value if self._last is not None else None

    @property
    def current(self) -> ConfigValue[T] | None:
        """current is the last good value with its version, revision and source."""
        return self._last

    def start(self) -> None:
        """start opens the stream in the background (idempotent)."""
        if self._task is None and not self._closing:
            self._ready = asyncio.get_running_loop().create_future()
            if self._known:
                self._ready.set_result(None)
            self._task = asyncio.create_task(self._run(), name=f"maxine-config-watcher-{self._service}-{self._key}")

    async def ready(self, timeout: float | None = None) -> None:
        """ready starts the watcher and waits until the key's state is known (the snapshot, or a cached value); it raises the fatal error that closed it."""
        self.start()
        assert self._ready is not None
        await asyncio.wait_for(asyncio.shield(self._ready), timeout)

    def changes(self) -> AsyncIterator[ConfigValue[T]]:
        """changes yields each new value from now on, until close (or raises the fatal error that closed the watcher)."""
        q: asyncio.Queue[ConfigValue[T] | None] = asyncio.Queue()
        self._queues.add(q)
        return self._iterate(q)

    def __aiter__(self) -> AsyncIterator[ConfigValue[T]]:
        return self.changes()

    async def _iterate(self, q: asyncio.Queue[ConfigValue[T] | None]) -> AsyncIterator[ConfigValue[T]]:
        try:
            while True:
                if self._closing and q.empty():
                    break
                item = await q.get()
                if item is None:
                    break
                yield item
            if self._failure is not None:
                raise self._failure
        finally:
            self._queues.discard(q)

    async def close(self) -> None:
        """close ends the stream and any backoff; idempotent."""
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._end()

    async def __aenter__(self) -> ConfigWatcher[T]:
        await self.ready()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    def _end(self) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(self._failure or MaxineError("config watcher: closed before a value was known", grpc.StatusCode.CANCELLED))
            self._ready.exception()  # retrieved: nobody may be waiting
        for q in list(self._queues):
            q.put_nowait(None)

    async def _run(self) -> None:
        while not self._closing:
            err = await self._stream()
            if self._closing:
                break
            if self._on_error is not None:
                self._on_error(err)
            if err.code in FATAL_CODES:
                self._failure = err
                self._closing = True
                self._end()
                return
            await asyncio.sleep(self._backoff.next())

    async def _stream(self) -> MaxineError:
        stub = cast(_ConfigStub, config_stub(self._client))
        req = config_pb2.WatchRequest(namespace=self._namespace, services=[self._service], resume_revision=self._revision, registry_id=self._registry_id)
        call = stub.Watch(req)
        snapshot: Any = None
        try:
            async for msg in call:
                self._backoff.reset()
                kind = msg.WhichOneof("message")
                if kind == "snapshot":
                    for e in msg.snapshot.entries:
                        if e.key == self._key:
                            snapshot = e
                elif kind == "snapshot_end":
                    self._registry_id = msg.snapshot_end.registry_id
                    if snapshot is not None:
                        self._accept(snapshot, msg.snapshot_end.revision)
                    else:
                        self._gone(msg.snapshot_end.revision, 0)
                    self._revision = msg.snapshot_end.revision
                    snapshot = None
                    self._mark_known()
                elif kind == "event":
                    ev = msg.event
                    self._revision = ev.revision
                    if ev.entry.key != self._key:
                        continue
                    if ev.type == config_pb2.EVENT_TYPE_DELETED:
                        self._gone(ev.revision, ev.entry.version)
                    else:
                        self._accept(ev.entry, ev.revision)
                elif kind == "progress":
                    self._registry_id = msg.progress.registry_id
                    self._revision = msg.progress.revision
                    self._mark_known()
            return UnavailableError("config watch: the server ended the stream")
        except grpc.RpcError as err:
            return from_rpc_error(err)
        finally:
            call.cancel()

    def _mark_known(self) -> None:
        self._known = True
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)

    def _accept(self, e: Any, revision: int) -> None:
        if self._last is not None and self._last.source == "registry" and self._last.version == e.version:
            return
        try:
            value = self._decode(e.value, e.content_type)
        except Exception as err:  # the decoder refused this version: keep the last good value
            if self._on_invalid is not None:
                self._on_invalid(err, e.version)
            return
        self._last = ConfigValue(value, e.version, revision, e.content_type, "registry")
        if self._cache is not None:
            self._write_cache(
                {
                    "registryId": self._registry_id,
                    "revision": str(revision),
                    "version": str(e.version),
                    "contentType": e.content_type,
                    "value": base64.b64encode(e.value).decode("ascii"),
                }
            )
        if self._on_change is not None:
            self._on_change(self._last)
        for q in list(self._queues):
            q.put_nowait(self._last)

    def _gone(self, revision: int, version: int) -> None:
        had = self._last is not None
        self._last = None
        if not had and version == 0:
            return
        if self._cache is not None:
            self._write_cache({"registryId": self._registry_id, "revision": str(revision), "deleted": True})
        if self._on_deleted is not None:
            self._on_deleted(version)

    def _read_cache(self, path: Path) -> None:
        try:
            rec = json.loads(path.read_text("utf-8"))
            revision = int(rec["revision"])
            registry_id = str(rec["registryId"])
        except (OSError, ValueError, KeyError, TypeError):
            return  # no cache yet, or unreadable: start from the registry alone
        if rec.get("deleted"):
            self._registry_id, self._revision, self._known = registry_id, revision, True
            return
        try:
            value = self._decode(base64.b64decode(rec["value"]), str(rec.get("contentType", "")))
            version = int(rec["version"])
        except Exception:  # a cache the decoder refuses: start from a fresh snapshot
            return
        self._registry_id, self._revision, self._known = registry_id, revision, True
        self._last = ConfigValue(value, version, revision, str(rec.get("contentType", "")), "cache")

    def _write_cache(self, rec: dict[str, object]) -> None:
        assert self._cache is not None
        try:
            self._cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._cache.with_name(self._cache.name + ".tmp")
            tmp.write_text(json.dumps(rec), "utf-8")
            os.replace(tmp, self._cache)
        except OSError as err:
            if self._on_error is not None:
                self._on_error(MaxineError(f"config watcher: cache file {self._cache}: {err}", grpc.StatusCode.UNKNOWN))
