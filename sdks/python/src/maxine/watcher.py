"""Watcher: a live local view of services from WatchServices, with local picks."""

from __future__ import annotations

import asyncio
import random as _random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Literal

import grpc

from .backoff import Backoff, BackoffOptions, ReconnectInfo
from .call_outcome import outcome_of
from .balancer import Random
from .client import Client
from .errors import FATAL_CODES, MaxineError, UnavailableError, from_rpc_error
from .instance_view import InstanceView, SyncInfo, WatchChange
from .messages import Filter, Instance, Strategy, WatchServicesRequest
from .outlier_ejector import EjectionCounters, EjectionEvent, EjectionOptions
from .picker import Picker, PickerEjection

WatcherState = Literal["idle", "connecting", "live", "backoff", "closed"]
"""WatcherState is where a Watcher's stream stands: "live" once the current stream is up to date."""


class WatchOverflowError(MaxineError):
    """WatchOverflowError ends a change iterator whose consumer fell more than queue_size changes behind.

    The watcher's view stays correct; only that iterator stops. Iterate again
    (after reading ``instances()``) to go on.
    """

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


_END = object()


class _Subscription:
    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[WatchChange | BaseException | object] = asyncio.Queue()
        self.size = size
        self.failed = False

    def put(self, item: WatchChange | BaseException | object) -> None:
        if self.failed:
            return
        if isinstance(item, WatchChange) and self.queue.qsize() >= self.size:
            self.failed = True
            item = WatchOverflowError(f"watcher: the consumer fell more than {self.size} changes behind")
        self.queue.put_nowait(item)


class Watcher:
    """Watcher keeps a live local view of one or several services' instances.

    It applies the snapshot and then each event in revision order, resumes
    after a failure from the last revision and registry_id it saw (the server
    replays what it missed, or sends a reset snapshot whose differences arrive
    as ordinary changes; it names what it holds, so that such a reset carries
    only the differences), and picks instances locally with the server's
    algorithms. ``async with Watcher(client, "checkout") as w:`` starts it and
    waits for the first snapshot; ``async for change in w:`` yields every change
    from the moment iteration starts; ``close()`` ends the stream.
    """

    def __init__(
        self,
        client: Client,
        services: str | Sequence[str] = (),
        *,
        namespace: str = "",
        filter: Filter | None = None,
        backoff: BackoffOptions | None = None,
        random: Random = _random.random,
        queue_size: int = 10_000,
        on_error: Callable[[MaxineError], None] | None = None,
        on_sync: Callable[[SyncInfo], None] | None = None,
        on_reconnect: Callable[[ReconnectInfo], None] | None = None,
        ejection: EjectionOptions | None = EjectionOptions(),
        on_ejection: Callable[[EjectionEvent], None] | None = None,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        """Describe the watch; nothing happens before start() (or ``async with``).

        services is one name, several, or none for every service of namespace;
        filter narrows the instances as in Discover. on_error gets each stream
        failure (retried by itself), on_sync each applied snapshot, on_reconnect
        each recovery. queue_size bounds how far each change iterator may lag.
        ejection tunes the local outlier ejection that report() feeds (see
        docs/client-ejection.md; None turns it off); it changes this watcher's
        picks only, never the registry. on_ejection gets each ejection and
        restoration; clock_ms is the clock it runs on, in whole milliseconds
        (default: time.monotonic_ns() // 1_000_000).
        """
        self._services = [services] if isinstance(services, str) else list(services)
        for s in self._services:
            if not isinstance(s, str) or s == "":
                raise ValueError(f"services: every name must be a non-empty string, got {s!r}")
        if queue_size < 1:
            raise ValueError(f"queue_size: must be >= 1, got {queue_size}")
        self._client = client
        self._namespace = namespace
        self._filter = filter
        self._backoff = Backoff(backoff, random)
        self._view = InstanceView()
        now_ms = clock_ms if clock_ms is not None else _monotonic_ms
        self._picker = Picker(
            self._view, random, PickerEjection(ejection, now_ms, on_ejection) if ejection is not None else None
        )
        self._queue_size = queue_size
        self._on_error = on_error
        self._on_sync = on_sync
        self._on_reconnect = on_reconnect
        self._subs: set[_Subscription] = set()
        self._state: WatcherState = "idle"
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._closing = False
        self._sent_held = False  # the current stream named the view's holdings
        self._held_refused = False  # a server refused them: none are named again
        self._down_since: float | None = None
        self._failure: MaxineError | None = None

    @property
    def state(self) -> WatcherState:
        """state is where the stream stands."""
        return self._state

    @property
    def revision(self) -> int:
        """revision is the revision the view is up to date at (0 before the first snapshot)."""
        return self._view.revision

    @property
    def registry_id(self) -> str:
        """registry_id names the registry the revision belongs to."""
        return self._view.registry_id

    def start(self) -> None:
        """start opens the stream in the background (idempotent); call it inside a running event loop."""
        if self._closing:
            raise RuntimeError("watcher: closed")
        if self._task is None:
            self._ready = asyncio.get_running_loop().create_future()
            self._ready.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._task = asyncio.create_task(self._run(), name="maxine-watcher")

    async def ready(self, timeout: float | None = None) -> None:
        """ready returns once the first snapshot was applied; it raises if the watcher stops first.

        TimeoutError after timeout seconds (None: no limit).
        """
        self.start()
        assert self._ready is not None
        async with asyncio.timeout(timeout):
            await asyncio.shield(self._ready)

    def instances(self, service: str | None = None) -> list[Instance]:
        """instances returns the view: one service's instances, or all, in (service, instance_id) order."""
        names = [service] if service is not None else self._view.service_names()
        return [i for s in names for i in self._view.sorted(s)]

    def get(self, service: str, instance_id: str) -> Instance | None:
        """get returns one instance of the view, or None."""
        return self._view.get(service, instance_id)

    def pick(
        self, strategy: Strategy = Strategy.STRATEGY_ROUND_ROBIN, hash_key: str = "", service: str | None = None
    ) -> Instance | None:
        """pick chooses a SERVING instance locally, with no network call, or returns None when there is none.

        CONSISTENT_HASH and RENDEZVOUS need hash_key and choose what Discover
        would; service may be omitted when the watcher watches exactly one.
        """
        if service is None:
            if len(self._services) != 1:
                raise ValueError("pick: service is required when the watcher does not watch exactly one service")
            service = self._services[0]
        return self._picker.pick(service, strategy, hash_key)

    def report(self, service: str, instance_id: str, success: bool) -> None:
        """report tells the watcher's pick how a call to an instance went.

        success if it answered (whatever the answer), failure if it could not
        serve (unavailable, timed out, reset). Failures eject the instance from
        this watcher's picks under the rules of docs/client-ejection.md; the
        registry is never told. OutcomeInterceptor calls it for every call.
        """
        self._picker.report(service, instance_id, success)

    def report_code(self, service: str, instance_id: str, code: grpc.StatusCode) -> None:
        """report_code is report with the outcome a call's status code says (see call_outcome); a cancelled call is not reported."""
        success = outcome_of(code)
        if success is not None:
            self.report(service, instance_id, success)

    def ejection_counters(self, service: str | None = None) -> EjectionCounters:
        """ejection_counters returns the ejections and restorations so far and the instances ejected now, of one service or all."""
        return self._picker.ejection_counters(service)

    def changes(self) -> AsyncIterator[WatchChange]:
        """changes yields every change of the view from now on, until close (or the watcher's fatal error).

        The subscription starts when this is called, so ``instances()`` read
        just before, with no await in between, plus the changes equal the view.
        """
        sub = _Subscription(self._queue_size)
        if self._closing:
            sub.put(self._failure if self._failure is not None else _END)
        else:
            self._subs.add(sub)
        return self._iterate(sub)

    def __aiter__(self) -> AsyncIterator[WatchChange]:
        return self.changes()

    async def _iterate(self, sub: _Subscription) -> AsyncIterator[WatchChange]:
        try:
            while True:
                item = await sub.queue.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, WatchChange)
                yield item
        finally:
            self._subs.discard(sub)

    async def close(self) -> None:
        """close ends the stream and any backoff wait; it is idempotent and leaves no task behind."""
        self._closing = True
        task = self._task
        if task is not None and not task.done():
            task.cancel()
        if task is not None:
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
        self._finish(self._failure)

    async def __aenter__(self) -> Watcher:
        try:
            await self.ready()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _finish(self, failure: MaxineError | None) -> None:
        if self._state == "closed":
            return
        self._closing = True
        self._failure = failure
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(failure or RuntimeError("watcher: closed before the first snapshot"))
        for sub in list(self._subs):
            sub.put(failure if failure is not None else _END)
        self._subs.clear()
        self._set_state("closed")

    async def _run(self) -> None:
        while not self._closing:
            self._set_state("connecting")
            err = await self._stream()
            self._view.abandon_snapshot()
            if self._closing:
                break
            if err.code == grpc.StatusCode.INVALID_ARGUMENT and self._sent_held:
                # a server whose MAXINE_WATCH_MAX_HELD is lower than what the view holds: resume without holdings
                self._held_refused = True
                continue
            if err.code in FATAL_CODES:
                self._report(err)
                self._finish(err)
                return
            if self._down_since is None:
                self._down_since = time.monotonic()
            self._report(err)
            self._set_state("backoff")
            await asyncio.sleep(self._backoff.next())

    async def _stream(self) -> MaxineError:
        resume = self._view.synced
        # a resume names what the view holds, so that a server that cannot replay sends only the differences
        held = self._view.holdings() if resume and not self._held_refused else None
        self._sent_held = held is not None
        req = WatchServicesRequest(
            namespace=self._namespace,
            services=self._services,
            filter=self._filter,
            resume_revision=self._view.revision if resume else 0,
            registry_id=self._view.registry_id if resume else "",
            held=held,
        )
        replica = self._client._current
        err = await self._read_stream(req, resume)
        self._client._failed(replica, err)  # a server failure moves the next stream to the next replica
        return err

    async def _read_stream(self, req: WatchServicesRequest, resume: bool) -> MaxineError:
        try:
            call = self._client.watch_services(req)
        except Exception as err:  # a closed channel: retrying cannot help
            return _fatal(err)
        first = True
        try:
            async for msg in call:
                if first:
                    first = False
                    self._connected(resume)
                result = self._view.apply(msg)
                for change in result.changes:
                    for sub in list(self._subs):
                        sub.put(change)
                if result.synced is not None:
                    self._set_state("live")
                    if self._on_sync is not None:
                        self._on_sync(result.synced)
                    if self._ready is not None and not self._ready.done():
                        self._ready.set_result(None)
            return UnavailableError("watch: the server ended the stream")
        except grpc.RpcError as err:
            return from_rpc_error(err)
        except Exception as err:  # a bug in a callback, or the channel closed under the stream
            return _fatal(err)
        finally:
            call.cancel()

    def _connected(self, resumed: bool) -> None:
        attempts = self._backoff.attempts
        self._backoff.reset()
        if resumed:
            self._set_state("live")  # a resume replays events then a progress bookmark: no snapshot
        if self._down_since is not None:
            down = time.monotonic() - self._down_since
            self._down_since = None
            if self._on_reconnect is not None:
                self._on_reconnect(ReconnectInfo(attempts, down))

    def _report(self, err: MaxineError) -> None:
        if self._on_error is not None:
            self._on_error(err)

    def _set_state(self, state: WatcherState) -> None:
        self._state = state


def _fatal(err: Exception) -> MaxineError:
    """_fatal wraps an error that is not an RPC status (a closed channel, a failing callback) so the watcher stops."""
    wrapped = MaxineError(f"watch: {type(err).__name__}: {err}", grpc.StatusCode.FAILED_PRECONDITION)
    wrapped.__cause__ = err
    return wrapped


def _monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000
