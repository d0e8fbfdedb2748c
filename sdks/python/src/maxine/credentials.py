"""Credentials: bearer tokens (static or refreshed per call) and TLS / mTLS channel credentials."""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

import grpc
import grpc.aio

TokenSource = str | Callable[[], str | Awaitable[str]]
"""TokenSource is a bearer token: a string, or a function (plain or async) called before
every call and every stream the client opens (a Session's heartbeat stream, a Watcher's
watch, each reconnect), so short-lived tokens can be refreshed without a new Client."""

SyncTokenSource = str | Callable[[], str]
"""SyncTokenSource is SyncClient's TokenSource: a string, or a plain function called per call."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_token(token: object, source: str = "token") -> str:
    """check_token returns token if it can go in a header; else ValueError that names source, never the token."""
    if not isinstance(token, str) or token == "" or _CONTROL.search(token):
        raise ValueError(f"{source}: must be a non-empty string without control characters (the token is not shown)")
    return token


def tls_credentials(
    *,
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
) -> grpc.ChannelCredentials:
    """tls_credentials reads PEM files into channel credentials for Client(credentials=...).

    ca_file holds the CA certificates the server's certificate must chain to (None: the
    system roots); cert_file and key_file, together, are the client certificate for mTLS
    (MAXINE_TLS_CLIENT_AUTH on the server). A file that cannot be read raises ValueError
    naming it.
    """
    if (cert_file is None) != (key_file is None):
        raise ValueError("tls: cert_file and key_file go together (mTLS needs both)")

    def read(path: str | Path | None, name: str) -> bytes | None:
        if path is None:
            return None
        try:
            return Path(path).read_bytes()
        except OSError as err:
            raise ValueError(f"tls: {name} {str(path)!r} cannot be read: {err.strerror}") from None

    return grpc.ssl_channel_credentials(
        root_certificates=read(ca_file, "ca_file"),
        private_key=read(key_file, "key_file"),
        certificate_chain=read(cert_file, "cert_file"),
    )


class _Bearer:
    """_Bearer adds ``authorization: Bearer <token>`` to a call's details."""

    def __init__(self, token: TokenSource) -> None:
        if isinstance(token, str):
            check_token(token)
        elif not callable(token):
            raise ValueError("token: must be a string or a function returning one")
        self._token = token

    async def _with_token(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        token = self._token
        if isinstance(token, str):
            value = token
        else:
            got = token()
            value = check_token(await got if inspect.isawaitable(got) else got, "token()")
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        metadata["authorization"] = f"Bearer {value}"
        return grpc.aio.ClientCallDetails(details.method, details.timeout, metadata, details.credentials, details.wait_for_ready)


class _UnaryUnaryBearer(_Bearer, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Callable[..., Any], client_call_details: grpc.aio.ClientCallDetails, request: Any) -> Any:
        return await continuation(await self._with_token(client_call_details), request)


class _UnaryStreamBearer(_Bearer, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Callable[..., Any], client_call_details: grpc.aio.ClientCallDetails, request: Any) -> Any:
        return await continuation(await self._with_token(client_call_details), request)


class _StreamStreamBearer(_Bearer, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(
        self,
        continuation: Callable[..., Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: AsyncIterable[Any] | Iterable[Any],
    ) -> Any:
        return await continuation(await self._with_token(client_call_details), request_iterator)


def bearer_interceptors(token: TokenSource) -> list[grpc.aio.ClientInterceptor]:
    """bearer_interceptors add ``authorization: Bearer <token>`` to every call of an asyncio channel.

    One interceptor per kind of call: grpc.aio files each interceptor under the first
    kind it implements only, so one object for all kinds would miss the streams.
    """
    return [_UnaryUnaryBearer(token), _UnaryStreamBearer(token), _StreamStreamBearer(token)]


class _CallDetails(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: grpc.Compression | None


class SyncBearerInterceptor(grpc.UnaryUnaryClientInterceptor):
    """SyncBearerInterceptor adds ``authorization: Bearer <token>`` to SyncClient's calls."""

    def __init__(self, token: SyncTokenSource) -> None:
        if isinstance(token, str):
            check_token(token)
        elif not callable(token):
            raise ValueError("token: must be a string or a function returning one")
        self._token = token

    def intercept_unary_unary(self, continuation: Callable[..., Any], client_call_details: Any, request: Any) -> Any:
        token = self._token
        value = token if isinstance(token, str) else check_token(token(), "token()")
        metadata = [*(client_call_details.metadata or ()), ("authorization", f"Bearer {value}")]
        details = _CallDetails(
            client_call_details.method,
            client_call_details.timeout,
            metadata,
            client_call_details.credentials,
            getattr(client_call_details, "wait_for_ready", None),
            getattr(client_call_details, "compression", None),
        )
        return continuation(details, request)
