"""What a finished call says about the instance that served it, and a grpcio interceptor that reports it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio

if TYPE_CHECKING:
    from .watcher import Watcher

FAILURE_CODES: frozenset[grpc.StatusCode] = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
)
"""FAILURE_CODES count as a failure of the instance: it could not serve.

UNAVAILABLE (refused, reset, shutting down), DEADLINE_EXCEEDED, INTERNAL,
UNKNOWN. Any other answer, an application error included, shows the
instance serving. The TypeScript and Go SDKs use the same set.
"""


def outcome_of(code: grpc.StatusCode, failure_codes: frozenset[grpc.StatusCode] = FAILURE_CODES) -> bool | None:
    """outcome_of classifies a finished call: True (served), False (failed), None (cancelled: not reported)."""
    if code == grpc.StatusCode.CANCELLED:
        return None
    return code not in failure_codes


class OutcomeInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """OutcomeInterceptor reports every unary call's outcome on a grpc.aio channel of ONE instance to a Watcher.

    The watcher's pick then stops choosing the instance when it fails
    (docs/client-ejection.md)::

        inst = watcher.pick()
        channel = grpc.aio.insecure_channel(f"{inst.host}:{inst.port}",
            interceptors=[OutcomeInterceptor(watcher, inst.service, inst.instance_id)])

    failure_codes replaces FAILURE_CODES; a cancelled call is not reported.
    """

    def __init__(
        self, watcher: Watcher, service: str, instance_id: str, failure_codes: frozenset[grpc.StatusCode] = FAILURE_CODES
    ) -> None:
        self._report: Callable[[bool], None] = lambda ok: watcher.report(service, instance_id, ok)
        self._failure_codes = failure_codes

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        call = await continuation(client_call_details, request)
        try:
            await call
        except grpc.aio.AioRpcError as err:
            self._settle(err.code())
            raise
        except BaseException:
            raise  # cancelled by the caller: not reported
        self._settle(grpc.StatusCode.OK)
        return call

    def _settle(self, code: grpc.StatusCode) -> None:
        outcome = outcome_of(code, self._failure_codes)
        if outcome is not None:
            self._report(outcome)
