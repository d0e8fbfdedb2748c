"""Client: the asyncio client of Maxine's unary RPCs, and the channel Session and Watcher share."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Protocol, cast

import grpc
import grpc.aio

from .credentials import TokenSource, bearer_interceptors
from .errors import MaxineError, from_rpc_error
from .gen.maxine.registry.v1 import registry_pb2_grpc
from .messages import (
    DeregisterRequest,
    DeregisterResponse,
    DiscoverRequest,
    DiscoverResponse,
    Filter,
    HeartbeatRequest,
    HeartbeatResponse,
    Instance,
    InstanceKey,
    ListServicesRequest,
    ListServicesResponse,
    OperatorStatus,
    RegisterRequest,
    RegisterResponse,
    SetOperatorStatusRequest,
    SetOperatorStatusResponse,
    Strategy,
    WatchServicesRequest,
    WatchServicesResponse,
)
from .ttl import duration_from_seconds

ChannelOptions = Sequence[tuple[str, str | int]]
"""ChannelOptions are grpc channel arguments, such as ("grpc.keepalive_time_ms", 30000)."""

DEFAULT_CHANNEL_OPTIONS: ChannelOptions = (
    # grpc's own reconnect backoff starts at 1 s and grows to 120 s; a registry
    # client wants to be back soon after its server is, as the SDK's backoff does.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 5000),
)
"""DEFAULT_CHANNEL_OPTIONS are the channel arguments a Client adds to the caller's own."""

FAILOVER_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)
"""FAILOVER_CODES are the errors that move a Client with several targets to the next one: the server is gone, draining, broken or silent."""

DEFAULT_KEEPALIVE_INTERVAL = 10.0
"""DEFAULT_KEEPALIVE_INTERVAL is how often (seconds) a Client's connection with open calls is sent an HTTP/2 PING."""
DEFAULT_KEEPALIVE_TIMEOUT = 5.0
"""DEFAULT_KEEPALIVE_TIMEOUT is how long (seconds) a PING may go unanswered before the connection is closed."""


def keepalive_options(interval: float, timeout: float) -> ChannelOptions:
    """keepalive_options are the grpc channel arguments for PINGs every interval seconds (0: none), each answered within timeout."""
    if not interval >= 0:
        raise ValueError(f"keepalive_interval: must be >= 0 seconds (0: no PINGs), got {interval!r}")
    if not timeout > 0:
        raise ValueError(f"keepalive_timeout: must be > 0 seconds, got {timeout!r}")
    if interval == 0:
        return ()
    return (
        ("grpc.keepalive_time_ms", max(1, round(interval * 1000))),
        ("grpc.keepalive_timeout_ms", max(1, round(timeout * 1000))),
        # grpc-core (1.85 here) closes the connection when a PING ack misses this (default 60 s); keepalive_timeout_ms alone did not
        ("grpc.http2.ping_timeout_ms", max(1, round(timeout * 1000))),
        # a watcher sends nothing after its request: without this, grpc stops pinging after two PINGs
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.keepalive_permit_without_calls", 0),
    )


class RegistryStub(Protocol):
    """RegistryStub is the typed shape of the generated RegistryServiceStub on a grpc.aio channel."""

    Register: grpc.aio.UnaryUnaryMultiCallable[RegisterRequest, RegisterResponse]
    Heartbeat: grpc.aio.StreamStreamMultiCallable[HeartbeatRequest, HeartbeatResponse]
    Deregister: grpc.aio.UnaryUnaryMultiCallable[DeregisterRequest, DeregisterResponse]
    Discover: grpc.aio.UnaryUnaryMultiCallable[DiscoverRequest, DiscoverResponse]
    ListServices: grpc.aio.UnaryUnaryMultiCallable[ListServicesRequest, ListServicesResponse]
    WatchServices: grpc.aio.UnaryStreamMultiCallable[WatchServicesRequest, WatchServicesResponse]
    SetOperatorStatus: grpc.aio.UnaryUnaryMultiCallable[SetOperatorStatusRequest, SetOperatorStatusResponse]


def parse_target(target: str) -> tuple[str, bool]:
    """parse_target turns "127.0.0.1:7400", "http://host:port" or "https://host:port" into a grpc target and a TLS flag."""
    if not isinstance(target, str) or target.strip() == "":
        raise ValueError(f"target: must be a non-empty address such as '127.0.0.1:7400', got {target!r}")
    for scheme, tls in (("http://", False), ("https://", True)):
        if target.startswith(scheme):
            rest = target[len(scheme) :].rstrip("/")
            if "/" in rest or rest == "":
                raise ValueError(f"target: must be scheme://host:port with no path, got {target!r}")
            if ":" not in rest.rsplit("]", 1)[-1]:
                rest += ":443" if tls else ":80"
            return rest, tls
    if "://" in target:
        raise ValueError(f"target: scheme must be http or https, got {target!r}")
    return target, False


def instance_key(of: Instance | InstanceKey) -> InstanceKey:
    """instance_key returns the key (namespace, service, instance_id) naming an instance."""
    return InstanceKey(namespace=of.namespace, service=of.service, instance_id=of.instance_id)



def register_request(instance: Instance, ttl: float | None) -> RegisterRequest:
    """register_request builds a RegisterRequest (Client and SyncClient share it); ttl in seconds, None for the server's default."""
    req = RegisterRequest(instance=instance)
    if ttl is not None:
        req.lease_ttl.CopyFrom(duration_from_seconds(ttl, "ttl"))
    return req


def discover_request(
    service: str,
    *,
    namespace: str,
    filter: Filter | None,
    strategy: Strategy,
    hash_key: str,
    preferred_zone: str,
    include_all: bool,
) -> DiscoverRequest:
    """discover_request builds a DiscoverRequest (Client and SyncClient share it)."""
    return DiscoverRequest(
        namespace=namespace,
        service=service,
        filter=filter,
        strategy=strategy,
        hash_key=hash_key,
        preferred_zone=preferred_zone,
        include_all=include_all,
    )

class Client:
    """Client calls Maxine over one HTTP/2 connection (a grpc.aio channel) that Session and Watcher reuse.

    Unary calls raise MaxineError subclasses (NotFoundError, InvalidArgumentError,
    UnavailableError...) mapped from the gRPC status. Create it inside a running
    event loop and close it (``await client.close()`` or ``async with``) when done:
    closing the channel ends every call on it.
    """

    def __init__(
        self,
        target: str | Sequence[str] = "127.0.0.1:7400",
        *,
        timeout: float | None = 10.0,
        options: ChannelOptions = (),
        credentials: grpc.ChannelCredentials | None = None,
        channel: grpc.aio.Channel | None = None,
        token: TokenSource | None = None,
        keepalive_interval: float = DEFAULT_KEEPALIVE_INTERVAL,
        keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT,
    ) -> None:
        """Open a channel to target ("host:port" or "http://host:port"; https uses TLS).

        target may also be a list of the addresses of several replicas of one
        registry (Redis mode), in order of preference: every call goes to the
        current one, and a call that fails because of the server (UNAVAILABLE,
        UNKNOWN, INTERNAL, ABORTED, DEADLINE_EXCEEDED, or a Session's heartbeats
        going unanswered) moves the client to the next, round the list. The
        failed call still fails; Sessions and Watchers retry, so their next
        stream opens on the next replica (the rule of the TypeScript and Go SDKs).

        timeout is the deadline of unary calls in seconds (None: none); options
        are extra grpc channel arguments; credentials are TLS settings
        (tls_credentials() for a CA file and an mTLS client certificate);
        token is sent as ``authorization: Bearer <token>`` with every call (a
        string, or a plain or async function called before each call and each
        stream, to refresh it); channel replaces the one the client would open
        (the client then does not close it, and token does not apply to it).

        keepalive_interval and keepalive_timeout (seconds; 10 and 5 by default)
        find a server that went silent without closing the connection (a stopped
        process, a dead network path): a connection with open calls is sent an
        HTTP/2 PING every keepalive_interval, and one not answered within
        keepalive_timeout is closed, so its calls fail UNAVAILABLE and Sessions
        and Watchers reconnect on a new connection. keepalive_interval=0 sends
        none. Grpc channel arguments in options override them.
        """
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout: must be > 0 seconds or None, got {timeout!r}")
        self.timeout = timeout
        keepalive = keepalive_options(keepalive_interval, keepalive_timeout)
        targets = [target] if isinstance(target, str) else list(target)
        if not targets:
            raise ValueError("target: must name at least one address")
        self._owns_channel = channel is None
        channels: list[grpc.aio.Channel] = []
        if channel is None:
            opts = [*DEFAULT_CHANNEL_OPTIONS, *keepalive, *options]
            for t in targets:
                address, tls = parse_target(t)
                interceptors = bearer_interceptors(token) if token is not None else None
                if tls or credentials is not None:
                    creds = credentials or grpc.ssl_channel_credentials()
                    channels.append(grpc.aio.secure_channel(address, creds, options=opts, interceptors=interceptors))
                else:
                    channels.append(grpc.aio.insecure_channel(address, options=opts, interceptors=interceptors))
        elif token is not None:
            raise ValueError("token: give it to the channel you pass (an interceptor), or pass no channel")
        elif len(targets) > 1:
            raise ValueError("channel: a channel you pass goes to one server; pass no channel to use several targets")
        else:
            channels.append(channel)
        self._targets = targets
        self._channels = channels
        self._stubs = [cast(RegistryStub, registry_pb2_grpc.RegistryServiceStub(c)) for c in channels]
        self._current = 0
        self.failovers = 0
        """failovers counts how often the client moved to the next replica."""

    @property
    def channel(self) -> grpc.aio.Channel:
        """channel is the grpc.aio channel the client's next call uses (the current replica's)."""
        return self._channels[self._current]

    @property
    def stub(self) -> RegistryStub:
        """stub is the generated RegistryService stub of the current replica, for RPC options this class does not expose."""
        return self._stubs[self._current]

    @property
    def replica(self) -> str:
        """replica is the address the next call goes to: the first target, or the next ones once calls failed over."""
        return self._targets[self._current]

    def _failed(self, replica: int, err: MaxineError) -> None:
        """_failed moves on from replica when err says the server failed (FAILOVER_CODES) and no other call moved on already."""
        if len(self._stubs) == 1 or replica != self._current or err.code not in FAILOVER_CODES:
            return
        self._current = (replica + 1) % len(self._stubs)
        self.failovers += 1

    def _failure(self, replica: int, err: grpc.RpcError) -> MaxineError:
        """_failure maps a unary call's error, moving on from replica when the server failed."""
        mapped = from_rpc_error(err)
        self._failed(replica, mapped)
        return mapped

    async def register(self, instance: Instance, *, ttl: float | None = None) -> RegisterResponse:
        """register stores instance under a lease of ttl seconds (None: the server's default, 10 s).

        Registering the same instance again renews its lease; keep it alive with
        a Session instead of calling this in a loop.
        """
        replica = self._current
        try:
            return await self._stubs[replica].Register(register_request(instance, ttl), timeout=self.timeout)
        except grpc.RpcError as err:
            raise self._failure(replica, err) from None

    async def deregister(self, key: Instance | InstanceKey) -> DeregisterResponse:
        """deregister removes an instance at once; NotFoundError if it is not registered."""
        replica = self._current
        try:
            return await self._stubs[replica].Deregister(DeregisterRequest(key=instance_key(key)), timeout=self.timeout)
        except grpc.RpcError as err:
            raise self._failure(replica, err) from None

    async def set_operator_status(self, key: Instance | InstanceKey, status: OperatorStatus) -> SetOperatorStatusResponse:
        """set_operator_status sets (OPERATOR_STATUS_DRAINING, _DISABLED) or clears (_UNSPECIFIED) an operator's override of an instance's status.

        It needs the admin permission on the service; the instance's own heartbeats do not change it.
        """
        replica = self._current
        try:
            return await self._stubs[replica].SetOperatorStatus(SetOperatorStatusRequest(key=instance_key(key), status=status), timeout=self.timeout)
        except grpc.RpcError as err:
            raise self._failure(replica, err) from None

    async def discover(
        self,
        service: str,
        *,
        namespace: str = "",
        filter: Filter | None = None,
        strategy: Strategy = Strategy.STRATEGY_ROUND_ROBIN,
        hash_key: str = "",
        preferred_zone: str = "",
        include_all: bool = False,
    ) -> DiscoverResponse:
        """discover asks the server to choose one SERVING instance of service; NotFoundError if none matches.

        With include_all, instances lists every matching instance (any status) with its
        reported_load and lease_expires_at where the server knows them; the answer then
        has no instance when none is SERVING, and NotFoundError only when none matches.
        """
        req = discover_request(
            service,
            namespace=namespace,
            filter=filter,
            strategy=strategy,
            hash_key=hash_key,
            preferred_zone=preferred_zone,
            include_all=include_all,
        )
        replica = self._current
        try:
            return await self._stubs[replica].Discover(req, timeout=self.timeout)
        except grpc.RpcError as err:
            raise self._failure(replica, err) from None

    async def list_services(self, namespace: str = "") -> ListServicesResponse:
        """list_services lists the services of a namespace with their instance counts."""
        replica = self._current
        try:
            return await self._stubs[replica].ListServices(ListServicesRequest(namespace=namespace), timeout=self.timeout)
        except grpc.RpcError as err:
            raise self._failure(replica, err) from None

    def heartbeat(
        self, requests: AsyncIterator[HeartbeatRequest]
    ) -> grpc.aio.StreamStreamCall[HeartbeatRequest, HeartbeatResponse]:
        """heartbeat opens the raw Heartbeat stream; Session is the way to use it."""
        return self.stub.Heartbeat(requests)

    def watch_services(
        self, request: WatchServicesRequest
    ) -> grpc.aio.UnaryStreamCall[WatchServicesRequest, WatchServicesResponse]:
        """watch_services opens the raw WatchServices stream; Watcher is the way to use it."""
        return self.stub.WatchServices(request)

    async def close(self, grace: float | None = None) -> None:
        """close closes the channel this client opened (not one it was given), ending its calls."""
        if self._owns_channel:
            for c in self._channels:
                await c.close(grace)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
