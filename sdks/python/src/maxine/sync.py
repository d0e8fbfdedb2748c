"""SyncClient: a small blocking client for scripts that only need Register, Discover and friends."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, cast

import grpc

from .client import DEFAULT_CHANNEL_OPTIONS, ChannelOptions, discover_request, instance_key, parse_target, register_request
from .credentials import SyncBearerInterceptor, SyncTokenSource
from .errors import from_rpc_error
from .gen.maxine.registry.v1 import registry_pb2_grpc
from .messages import (
    DeregisterRequest,
    DeregisterResponse,
    DiscoverRequest,
    DiscoverResponse,
    Filter,
    Instance,
    InstanceKey,
    ListServicesRequest,
    ListServicesResponse,
    RegisterRequest,
    RegisterResponse,
    Strategy,
)


class _SyncStub(Protocol):
    Register: grpc.UnaryUnaryMultiCallable[RegisterRequest, RegisterResponse]
    Deregister: grpc.UnaryUnaryMultiCallable[DeregisterRequest, DeregisterResponse]
    Discover: grpc.UnaryUnaryMultiCallable[DiscoverRequest, DiscoverResponse]
    ListServices: grpc.UnaryUnaryMultiCallable[ListServicesRequest, ListServicesResponse]


class SyncClient:
    """SyncClient makes Maxine's unary calls from blocking code, with no event loop.

    It has no heartbeat stream: an instance registered here lives for its
    lease TTL unless registered again before it runs out (or use the asyncio
    Session). Errors are the same MaxineError subclasses as Client's. Close it
    (``close()`` or ``with``) to close its channel.
    """

    def __init__(
        self,
        target: str = "127.0.0.1:7400",
        *,
        timeout: float | None = 10.0,
        options: ChannelOptions = (),
        credentials: grpc.ChannelCredentials | None = None,
        token: SyncTokenSource | None = None,
    ) -> None:
        """Open a channel to target ("host:port" or "http://host:port"); timeout is each call's deadline in seconds.

        credentials are TLS settings (tls_credentials()); token is sent as
        ``authorization: Bearer <token>`` with every call (a string, or a
        function called before each call).
        """
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout: must be > 0 seconds or None, got {timeout!r}")
        address, tls = parse_target(target)
        opts = [*DEFAULT_CHANNEL_OPTIONS, *options]
        if tls or credentials is not None:
            self.channel = grpc.secure_channel(address, credentials or grpc.ssl_channel_credentials(), options=opts)
        else:
            self.channel = grpc.insecure_channel(address, options=opts)
        if token is not None:
            self.channel = grpc.intercept_channel(self.channel, SyncBearerInterceptor(token))
        self.timeout = timeout
        self._stub = cast(_SyncStub, registry_pb2_grpc.RegistryServiceStub(self.channel))

    def register(self, instance: Instance, *, ttl: float | None = None) -> RegisterResponse:
        """register stores instance under a lease of ttl seconds (None: the server's default, 10 s)."""
        try:
            return self._stub.Register(register_request(instance, ttl), timeout=self.timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def deregister(self, key: Instance | InstanceKey) -> DeregisterResponse:
        """deregister removes an instance at once; NotFoundError if it is not registered."""
        try:
            return self._stub.Deregister(DeregisterRequest(key=instance_key(key)), timeout=self.timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def discover(
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

        include_all is as in Client.discover: every match with its live lease state.
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
        try:
            return self._stub.Discover(req, timeout=self.timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def list_services(self, namespace: str = "") -> ListServicesResponse:
        """list_services lists the services of a namespace with their instance counts."""
        try:
            return self._stub.ListServices(ListServicesRequest(namespace=namespace), timeout=self.timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def close(self) -> None:
        """close closes the channel."""
        self.channel.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
