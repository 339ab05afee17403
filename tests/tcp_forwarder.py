"""A loopback TCP forwarder in front of a real server (PostgreSQL, in the store tests) that can be cut: while cut,
its port refuses connections and the ones it carried are gone, as when the server restarts."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit


class TcpForwarder:
    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        with socket.socket() as probe:  # a port of its own, kept across a cut
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._carry, "127.0.0.1", self.port, reuse_address=True)

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones (nothing to do when already cut)."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()
        self._server = None

    async def _carry(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, upstream_writer))
        try:
            await asyncio.gather(_pump(reader, upstream_writer), _pump(upstream_reader, writer))
        finally:
            for end in (writer, upstream_writer):
                self._writers.discard(end)
                end.transport.abort()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()  # one side gone: so is the other, as a dropped connection is


@contextlib.asynccontextmanager
async def forwarded(url: str) -> AsyncIterator[tuple[str, TcpForwarder]]:
    """``url`` (postgresql://...) rewritten to reach its server through a forwarder, and the forwarder."""
    parts = urlsplit(url)
    forwarder = TcpForwarder(parts.hostname or "127.0.0.1", parts.port or 5432)
    await forwarder.open()
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{forwarder.port}" if credentials else f"127.0.0.1:{forwarder.port}"
    try:
        yield urlunsplit(parts._replace(netloc=netloc)), forwarder
    finally:
        await forwarder.cut()
