"""Session: keeps a process's instances alive over ONE Heartbeat stream."""

from __future__ import annotations

import asyncio
import math
import random as _random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

import grpc

from .backoff import Backoff, BackoffOptions, ReconnectInfo, beat_delay
from .balancer import Random
from .client import Client
from .errors import DeadlineExceededError, MaxineError, NotFoundError
from .heartbeat_stream import HeartbeatStream
from .instance_handle import InstanceHandle, key_of
from .messages import Beat, BeatResult, HeartbeatResponse, Instance
from .ttl import duration_from_seconds, seconds_of

SessionState = Literal["idle", "connecting", "connected", "backoff", "closing", "closed"]
"""SessionState is where a Session's heartbeat stream stands."""

_DEFAULT_TTL = 10.0  # the server default, used when a RegisterResponse carries no lease_ttl


class SessionClosedError(RuntimeError):
    """SessionClosedError: the session was closed (register after close, or a wait cut short by close)."""


@dataclass
class _Entry:
    handle: InstanceHandle
    waiters: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)
    reregistering: bool = False


class Session:
    """Session keeps a process's instances alive over ONE Heartbeat stream.

    It beats every instance at a third of the smallest lease TTL, reopens the
    stream with full-jitter backoff (0.1 s doubling to 5 s) when it fails and
    beats everything at once on the new stream (within the server's grace
    this causes no watch event), registers again any instance the server
    forgot (as after a server restart: the new stream's first beat carries
    each instance whole, and a BEAT_RESULT_UNKNOWN ack leads to a Register), and on
    close deregisters its instances before ending the stream.
    ``async with Session(client) as s:`` closes it on exit, also when the
    block is cancelled. If the process dies instead, the server removes the
    instances one grace period (1 s) after the connection drops.
    """

    def __init__(
        self,
        client: Client,
        *,
        heartbeat_interval: float | None = None,
        ack_timeout: float | None = None,
        backoff: BackoffOptions | None = None,
        close_timeout: float = 2.0,
        random: Random = _random.random,
        on_error: Callable[[BaseException], None] | None = None,
        on_reregister: Callable[[InstanceHandle], None] | None = None,
        on_reconnect: Callable[[ReconnectInfo], None] | None = None,
        on_state: Callable[[SessionState], None] | None = None,
    ) -> None:
        """Configure the session; every option has a default.

        heartbeat_interval overrides TTL/3 (seconds); ack_timeout is how long a
        heartbeat may go unanswered before the stream is dropped and reopened
        (default two intervals); close_timeout bounds each step of close.
        on_error gets the failures the session handles itself (stream failures,
        failed re-registrations, rejected beats); the others report recoveries.
        """
        for name, value in (("heartbeat_interval", heartbeat_interval), ("ack_timeout", ack_timeout)):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}: must be a finite number of seconds > 0 or None, got {value!r}")
        if not (math.isfinite(close_timeout) and close_timeout > 0):
            raise ValueError(f"close_timeout: must be a finite number of seconds > 0, got {close_timeout!r}")
        self._client = client
        self._interval_override = heartbeat_interval
        self._ack_timeout = ack_timeout
        self._backoff = Backoff(backoff, random)
        self._random = random
        self._close_timeout = close_timeout
        self._on_error = on_error
        self._on_reregister = on_reregister
        self._on_reconnect = on_reconnect
        self._on_state = on_state
        self._entries: dict[tuple[str, str, str], _Entry] = {}
        self._inflight: set[asyncio.Task[None]] = set()
        self._stream: HeartbeatStream | None = None
        self._state: SessionState = "idle"
        self._sequence = 0
        self._tick: asyncio.TimerHandle | None = None
        self._tick_at = math.inf
        self._reconnect: asyncio.TimerHandle | None = None
        self._down_since: float | None = None
        self._closing: asyncio.Task[None] | None = None

    @property
    def state(self) -> SessionState:
        """state is where the heartbeat stream stands."""
        return self._state

    @property
    def heartbeat_interval(self) -> float | None:
        """heartbeat_interval is the current beat interval in seconds, or None while the session holds no instance."""
        if not self._entries:
            return None
        if self._interval_override is not None:
            return self._interval_override
        return max(0.001, min(e.handle.ttl for e in self._entries.values()) / 3)

    def instances(self) -> list[InstanceHandle]:
        """instances lists the handles this session keeps alive."""
        return [e.handle for e in self._entries.values()]

    async def register(self, instance: Instance, *, ttl: float | None = None) -> InstanceHandle:
        """register stores instance with Register and returns once a heartbeat on the session's stream renewed it.

        From then on the instance lives as long as the stream (plus the
        server's grace). ttl is the lease TTL in seconds (None: the server's
        default). Registering a key the session holds updates it and returns
        the same handle.
        """
        self._assert_open()
        res = await self._client.register(instance, ttl=ttl)
        self._assert_open()
        stored = res.instance
        granted = seconds_of(res.lease_ttl) if res.HasField("lease_ttl") else (ttl or _DEFAULT_TTL)
        k = key_of(stored)
        entry = self._entries.get(k)
        if entry is None:
            entry = _Entry(InstanceHandle(self, stored, granted, ttl, instance.status))
            self._entries[k] = entry
        else:
            entry.handle._update(stored, granted)
        await self.beat_now(entry.handle)
        return entry.handle

    async def close(self) -> None:
        """close deregisters every instance, ends the stream and clears every timer; it is idempotent."""
        if self._closing is None:
            self._closing = asyncio.create_task(self._shutdown(), name="maxine-session-close")
        await asyncio.shield(self._closing)

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def beat_now(self, handle: InstanceHandle) -> None:
        """beat_now sends a beat for handle at once and returns when the server renewed it (InstanceHandle uses it)."""
        entry = self._entries.get(key_of(handle.key))
        if entry is None or entry.handle is not handle:
            raise SessionClosedError(f"instance {_name(handle)}: not in this session")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry.waiters.append((self._sequence + 1, fut))
        if self._stream is None and self._reconnect is None:
            self._connect()
        else:
            self._send([entry])
        self._schedule_tick()
        await fut

    async def release(self, handle: InstanceHandle) -> None:
        """release stops heartbeating handle and deregisters it (InstanceHandle.deregister uses it)."""
        k = key_of(handle.key)
        entry = self._entries.get(k)
        if entry is None or entry.handle is not handle:
            return
        del self._entries[k]  # first: a beat after the Deregister would get UNKNOWN and register it again
        handle._retire()
        self._reject_waiters(entry, SessionClosedError(f"instance {_name(handle)}: deregistered"))
        if not self._entries:
            self._end_stream()
        try:
            await self._client.deregister(handle.key)
        except NotFoundError:
            pass

    def _connect(self) -> None:
        if self._closing is not None or not self._entries:
            return
        self._set_state("connecting")
        stream = HeartbeatStream(self._client, lambda res, first: self._on_response(stream, res, first))
        self._stream = stream
        # The first request carries each instance whole: a server that lost it (a restart) registers it from the beat.
        self._send(list(self._entries.values()), whole=True)
        self._schedule_tick()
        stream.done.add_done_callback(lambda t: self._on_stream_end(stream, t))

    def _on_stream_end(self, stream: HeartbeatStream, task: asyncio.Task[MaxineError | None]) -> None:
        if self._stream is not stream:
            return
        self._stream = None
        self._clear_tick()
        if self._closing is not None:
            return
        error = None if task.cancelled() else task.result()
        if error is None:
            self._set_state("idle")
            self._connect()  # instances registered while the stream was ending
            return
        if self._down_since is None:
            self._down_since = time.monotonic()
        self._report(error)
        self._set_state("backoff")
        self._reconnect = asyncio.get_running_loop().call_later(self._backoff.next(), self._reconnect_now)

    def _reconnect_now(self) -> None:
        self._reconnect = None
        self._connect()

    def _on_response(self, stream: HeartbeatStream, res: HeartbeatResponse, first: bool) -> None:
        if first and self._stream is stream:
            attempts = self._backoff.attempts
            self._backoff.reset()
            self._set_state("connected")
            if self._down_since is not None:
                down = time.monotonic() - self._down_since
                self._down_since = None
                if self._on_reconnect is not None:
                    self._on_reconnect(ReconnectInfo(attempts, down))
        for ack in res.acks:
            entry = self._entries.get(key_of(ack.key))
            if entry is None:
                continue  # deregistered since
            if ack.result in (BeatResult.BEAT_RESULT_RENEWED, BeatResult.BEAT_RESULT_REGISTERED):
                self._settle(entry, res.sequence)
                if ack.result == BeatResult.BEAT_RESULT_REGISTERED and self._on_reregister is not None:
                    self._on_reregister(entry.handle)
            elif ack.result == BeatResult.BEAT_RESULT_UNKNOWN:
                self._reregister(entry)
            else:
                err = ValueError(f"heartbeat: instance {_name(entry.handle)}: {ack.message or BeatResult.Name(ack.result)}")
                self._settle(entry, res.sequence, err)
                self._report(err)

    def _reregister(self, entry: _Entry) -> None:
        if entry.reregistering or self._closing is not None:
            return
        entry.reregistering = True
        task = asyncio.create_task(self._register_again(entry), name="maxine-reregister")
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _register_again(self, entry: _Entry) -> None:
        handle = entry.handle
        try:
            res = await self._client.register(_whole_instance(handle), ttl=handle.requested_ttl)
            if self._entries.get(key_of(handle.key)) is not entry:
                try:
                    await self._client.deregister(handle.key)  # released while we registered it
                except MaxineError:
                    pass
                return
            handle._update(res.instance, seconds_of(res.lease_ttl) if res.HasField("lease_ttl") else handle.ttl)
            self._send([entry])
            if self._on_reregister is not None:
                self._on_reregister(handle)
        except MaxineError as err:
            self._report(err)  # the next UNKNOWN ack retries
        finally:
            entry.reregistering = False

    def _send(self, entries: list[_Entry], whole: bool = False) -> None:
        """_send beats entries; with whole, each beat carries its instance and lease TTL (a stream's first request)."""
        stream = self._stream
        if stream is None or stream.ended or not entries:
            return
        beats = []
        for e in entries:
            beat = Beat(key=e.handle.key, status=e.handle.status)
            if e.handle.load is not None:
                beat.load = e.handle.load
            if whole:
                beat.instance.CopyFrom(_whole_instance(e.handle))
                if e.handle.requested_ttl is not None:
                    beat.lease_ttl.CopyFrom(duration_from_seconds(e.handle.requested_ttl, "ttl"))
            beats.append(beat)
        self._sequence += 1
        stream.send(self._sequence, beats, time.monotonic())

    def _settle(self, entry: _Entry, seq: int, err: BaseException | None = None) -> None:
        keep = []
        for wseq, fut in entry.waiters:
            if wseq > seq:
                keep.append((wseq, fut))
            elif fut.done():
                continue
            elif err is None:
                fut.set_result(None)
            else:
                fut.set_exception(err)
        entry.waiters = keep

    def _reject_waiters(self, entry: _Entry, err: BaseException) -> None:
        for _, fut in entry.waiters:
            if not fut.done():
                fut.set_exception(err)
        entry.waiters = []

    def _schedule_tick(self) -> None:
        interval = self.heartbeat_interval
        if self._stream is None or interval is None:
            return
        loop = asyncio.get_running_loop()
        at = loop.time() + beat_delay(interval, self._random)
        if at >= self._tick_at:
            return
        self._clear_tick()
        self._tick_at = at
        self._tick = loop.call_at(at, self._on_tick)

    def _on_tick(self) -> None:
        self._tick = None
        self._tick_at = math.inf
        stream = self._stream
        if stream is None:
            return
        ack_timeout = self._ack_timeout if self._ack_timeout is not None else 2 * (self.heartbeat_interval or 0)
        oldest = stream.oldest_unanswered()
        if oldest is not None and time.monotonic() - oldest > ack_timeout:
            stream.abort(DeadlineExceededError(f"heartbeat: no answer within {ack_timeout:g} s"))
            return
        self._send(list(self._entries.values()))
        self._schedule_tick()

    def _clear_tick(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
        self._tick = None
        self._tick_at = math.inf

    def _end_stream(self) -> None:
        self._clear_tick()
        if self._reconnect is not None:
            self._reconnect.cancel()
            self._reconnect = None
            self._down_since = None
            self._set_state("idle")
        if self._stream is not None:
            self._stream.end()

    async def _shutdown(self) -> None:
        self._set_state("closing")
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=self._close_timeout)
            for task in list(self._inflight):
                task.cancel()
        entries = list(self._entries.values())
        self._entries.clear()
        closed = SessionClosedError("session: closed")

        async def deregister(entry: _Entry) -> None:
            entry.handle._retire()
            self._reject_waiters(entry, closed)
            try:
                async with asyncio.timeout(self._close_timeout):
                    await self._client.deregister(entry.handle.key)
            except NotFoundError:
                pass
            except MaxineError as err:
                self._report(err)
            except TimeoutError:
                msg = f"session: deregistering {_name(entry.handle)} took longer than {self._close_timeout:g} s"
                self._report(DeadlineExceededError(msg))

        await asyncio.gather(*(deregister(e) for e in entries))
        stream = self._stream
        self._end_stream()
        if stream is not None:
            done, _ = await asyncio.wait([stream.done], timeout=self._close_timeout)
            if not done:
                stream.abort(MaxineError("session: closed", grpc.StatusCode.CANCELLED))  # not a server failure: no failover
                await asyncio.wait([stream.done])
            self._stream = None
        self._set_state("closed")

    def _report(self, err: BaseException) -> None:
        if self._on_error is not None:
            self._on_error(err)

    def _set_state(self, state: SessionState) -> None:
        if self._state != state:
            self._state = state
            if self._on_state is not None:
                self._on_state(state)

    def _assert_open(self) -> None:
        if self._closing is not None:
            raise SessionClosedError("session: closed")


def _name(handle: InstanceHandle) -> str:
    k = handle.key
    return f"{k.namespace}/{k.service}/{k.instance_id}"


def _whole_instance(handle: InstanceHandle) -> Instance:
    """_whole_instance is what registers handle again: its instance with its current status."""
    instance = Instance()
    instance.CopyFrom(handle.instance)
    instance.status = handle.status
    return instance
