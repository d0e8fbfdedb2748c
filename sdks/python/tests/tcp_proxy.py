"""TcpProxy forwards a loopback port to the server, and can cut every connection to simulate a network failure."""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    """TcpProxy listens on 127.0.0.1 (a free port) and pipes each connection to upstream_port.

    cut() closes every open connection and refuses new ones until restore().
    stall_open() makes every connection open now forward nothing and close
    nothing (a dead network path); connections opened later work.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.refusing = False
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._handlers: set[asyncio.Task[object]] = set()
        self._open: list[list[bool]] = []

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def cut(self) -> None:
        self.refusing = True
        for w in list(self._writers):
            w.transport.abort()

    def stall_open(self) -> None:
        for flag in self._open:
            flag[0] = True

    def restore(self) -> None:
        self.refusing = False

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        me = asyncio.current_task()
        if me is not None:
            self._handlers.add(me)
            me.add_done_callback(self._handlers.discard)
        if self.refusing:
            writer.transport.abort()
            return
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        stalled = [False]
        self._open.append(stalled)
        pipes = [asyncio.create_task(self._pipe(reader, up_writer, stalled)), asyncio.create_task(self._pipe(up_reader, writer, stalled))]
        self._tasks.update(pipes)
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        self._open.remove(stalled)
        for w in (writer, up_writer):
            w.transport.abort()
            self._writers.discard(w)
        for p in pipes:
            p.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)
        self._tasks.difference_update(pipes)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stalled: list[bool]) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                if stalled[0]:
                    continue  # a dead path: the bytes go nowhere
                writer.write(data)
                await writer.drain()
        while stalled[0]:  # a dead path does not tell the other end that this one closed
            await asyncio.sleep(3600)
