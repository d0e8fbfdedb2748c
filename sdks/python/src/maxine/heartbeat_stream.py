"""HeartbeatStream: one Heartbeat call, written to from a queue and read in the background."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

import grpc
import grpc.aio

from .client import Client
from .errors import MaxineError, UnavailableError, from_rpc_error
from .messages import Beat, HeartbeatRequest, HeartbeatResponse


class HeartbeatStream:
    """HeartbeatStream is one Heartbeat call, owned by a Session.

    The session pushes requests with send(); responses are read in a
    background task and handed to on_response (with first=True for the first
    one); the send times of unanswered requests let the session tell a silent
    stream from a slow one. ``done`` is a task that finishes (never raises)
    when the call is over, with the error that ended it, or None when it
    ended because end() was called.
    """

    def __init__(self, client: Client, on_response: Callable[[HeartbeatResponse, bool], None]) -> None:
        self._queue: asyncio.Queue[HeartbeatRequest | None] = asyncio.Queue()
        self._unanswered: dict[int, float] = {}
        self._ending = False
        self._abort_error: MaxineError | None = None
        self._call: grpc.aio.StreamStreamCall[HeartbeatRequest, HeartbeatResponse] | None = None
        self._client = client
        self._replica = client._current  # the replica this call goes to, for failover
        try:
            self._call = client.heartbeat(self._requests())
        except Exception as err:  # a closed channel
            self._abort_error = MaxineError(f"heartbeat: {type(err).__name__}: {err}", grpc.StatusCode.FAILED_PRECONDITION)
        self.done: asyncio.Task[MaxineError | None] = asyncio.create_task(self._read(on_response), name="maxine-heartbeat")
        """done finishes when the call is over: the error that ended it, or None after end()."""

    @property
    def ended(self) -> bool:
        """ended reports whether end was called: the stream takes no more beats."""
        return self._ending

    def send(self, sequence: int, beats: Sequence[Beat], now: float) -> None:
        """send queues one request; it is dropped once the stream ended."""
        if self._ending or self.done.done():
            return
        self._unanswered[sequence] = now
        self._queue.put_nowait(HeartbeatRequest(sequence=sequence, beats=beats))

    def oldest_unanswered(self) -> float | None:
        """oldest_unanswered is when the oldest unanswered request was sent, or None."""
        return min(self._unanswered.values(), default=None)

    def end(self) -> None:
        """end half-closes the stream: the server answers what it got and ends the call."""
        if not self._ending:
            self._ending = True
            self._queue.put_nowait(None)

    def abort(self, reason: MaxineError) -> None:
        """abort cancels the call at once; done then reports reason."""
        if self._abort_error is None:
            self._abort_error = reason
        if self._call is not None:
            self._call.cancel()

    async def _requests(self) -> AsyncIterator[HeartbeatRequest]:
        while True:
            req = await self._queue.get()
            if req is None:
                return
            yield req

    async def _read(self, on_response: Callable[[HeartbeatResponse, bool], None]) -> MaxineError | None:
        err = await self._read_call(on_response)
        if err is not None:
            self._client._failed(self._replica, err)  # a server failure (or beats unanswered) moves to the next replica
        return err

    async def _read_call(self, on_response: Callable[[HeartbeatResponse, bool], None]) -> MaxineError | None:
        if self._call is None:
            self._ending = True
            return self._abort_error
        first = True
        try:
            async for res in self._call:
                self._unanswered.pop(res.sequence, None)
                on_response(res, first)
                first = False
            return None if self._ending else UnavailableError("heartbeat: the server ended the stream")
        except grpc.RpcError as err:
            if self._abort_error is not None:
                return self._abort_error
            return from_rpc_error(err)
        except asyncio.CancelledError:
            if self._abort_error is None:
                self._call.cancel()
                raise  # this task itself was cancelled
            return self._abort_error  # grpc.aio reports a call cancelled by us as CancelledError
        except Exception as err:  # a failing callback, or the channel closed under the stream
            return MaxineError(f"heartbeat: {type(err).__name__}: {err}", grpc.StatusCode.FAILED_PRECONDITION)
        finally:
            self._ending = True
