"""Typed errors of the SDK, one class per gRPC status code the server uses.

Every RPC error is raised as a MaxineError subclass chosen by its status
code, so callers write ``except NotFoundError`` instead of comparing codes.
The server's message names the field and the rule that was broken.
"""

from __future__ import annotations

import grpc


class MaxineError(Exception):
    """MaxineError is the base of every error an RPC of this SDK raises; code is the gRPC status code."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    retryable = False
    """retryable says whether the same call may succeed later unchanged (the server was unreachable, say)."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code.name.lower()}: {self.message}"


class InvalidArgumentError(MaxineError):
    """InvalidArgumentError: a field broke a rule; the message names the field and the rule."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(MaxineError):
    """NotFoundError: the instance is not registered (Deregister), or no SERVING instance matches (Discover)."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(MaxineError):
    """AlreadyExistsError: the thing to create exists already."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPreconditionError(MaxineError):
    """FailedPreconditionError: the call does not fit the current state."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhaustedError(MaxineError):
    """ResourceExhaustedError: a capacity limit was reached (instances per service, streams, message size)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class UnavailableError(MaxineError):
    """UnavailableError: the server is unreachable, shutting down, or its store is down; retry later."""

    code = grpc.StatusCode.UNAVAILABLE
    retryable = True


class DeadlineExceededError(MaxineError):
    """DeadlineExceededError: the call's timeout passed before the server answered."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED
    retryable = True


class RpcCancelledError(MaxineError):
    """RpcCancelledError: the call was cancelled (by this process or the connection's end)."""

    code = grpc.StatusCode.CANCELLED


class UnauthenticatedError(MaxineError):
    """UnauthenticatedError: the call carried no valid credentials."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDeniedError(MaxineError):
    """PermissionDeniedError: the caller may not make this call."""

    code = grpc.StatusCode.PERMISSION_DENIED


class UnimplementedError(MaxineError):
    """UnimplementedError: the server does not know this RPC (an older server)."""

    code = grpc.StatusCode.UNIMPLEMENTED


class InternalError(MaxineError):
    """InternalError: a server bug, or an answer this SDK could not decode."""

    code = grpc.StatusCode.INTERNAL


_BY_CODE: dict[grpc.StatusCode, type[MaxineError]] = {
    cls.code: cls
    for cls in (
        InvalidArgumentError,
        NotFoundError,
        AlreadyExistsError,
        FailedPreconditionError,
        ResourceExhaustedError,
        UnavailableError,
        DeadlineExceededError,
        RpcCancelledError,
        UnauthenticatedError,
        PermissionDeniedError,
        UnimplementedError,
        InternalError,
    )
}

FATAL_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
    }
)
"""FATAL_CODES are the codes a retry cannot fix: a Watcher that gets one stops."""


def error_for(code: grpc.StatusCode, message: str) -> MaxineError:
    """error_for builds the MaxineError subclass of code (MaxineError itself for codes without one)."""
    cls = _BY_CODE.get(code)
    return cls(message) if cls is not None else MaxineError(message, code)


def from_rpc_error(err: grpc.RpcError) -> MaxineError:
    """from_rpc_error converts a grpc error (sync or asyncio) into the matching MaxineError."""
    code_fn = getattr(err, "code", None)
    details_fn = getattr(err, "details", None)
    code = code_fn() if callable(code_fn) else grpc.StatusCode.UNKNOWN
    details = details_fn() if callable(details_fn) else None
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    return error_for(code, details if isinstance(details, str) and details else str(code.name.lower()))
