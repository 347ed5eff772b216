"""One keep-alive HTTP/1.1 connection of :class:`~.http_client.HttpClient`: writes a request, parses
one response at a time as its bytes arrive (status line, headers, ``Content-Length`` or chunked
body), SSE events (``text/event-stream``) as they complete, so a call's latency ends at its
response event; every JSON-RPC message goes back to the client."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from .http_client import HttpClient


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: writes a request, parses one response at a time."""

    def __init__(self, client: "HttpClient"):
        self.client = client
        self.transport: Optional[asyncio.Transport] = None
        self.rid: Any = None  # the JSON-RPC id in flight (None: idle, or a notification)
        self.busy = False
        self.buf = b""
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunked = False
        self.remaining = -1  # body bytes still expected (Content-Length), -1: not known
        self.chunk_left = 0
        self.body = bytearray()
        self.sse = False
        self.sse_buf = b""
        self.answered = False
        self.in_headers = True

    # -- asyncio callbacks -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.client._conn_lost(self, "the server closed the connection" + (f" ({exc})" if exc else ""))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        try:
            while self.buf and self.busy and self._step():
                pass
        except ValueError as exc:
            self.client._fail_conn(self, f"bad HTTP response: {exc}")

    # -- parsing -----------------------------------------------------------------------------------

    def _step(self) -> bool:
        """Consume what can be consumed from ``buf``; False when more bytes are needed."""
        if self.in_headers:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            head, self.buf = self.buf[:end].decode("latin-1"), self.buf[end + 4:]
            lines = head.split("\r\n")
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/"):
                raise ValueError(lines[0][:80])
            self.status = int(parts[1])
            for line in lines[1:]:
                k, _, v = line.partition(":")
                self.headers[k.strip().lower()] = v.strip()
            self.in_headers = False
            self.chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
            self.remaining = int(self.headers.get("content-length", "-1"))
            self.sse = self.headers.get("content-type", "").startswith("text/event-stream")
            if not self.chunked and self.remaining <= 0:
                self._finish()
            return True
        if not self.chunked:
            take = self.buf[:self.remaining]
            self.buf = self.buf[len(take):]
            self.remaining -= len(take)
            self._body(take)
            if self.remaining == 0:
                self._finish()
            return self.remaining == 0
        if self.chunk_left == 0:
            end = self.buf.find(b"\r\n")
            if end < 0:
                return False
            size = int(self.buf[:end].split(b";")[0], 16)
            if size == 0:
                if len(self.buf) < end + 4:
                    return False
                self.buf = self.buf[end + 4:]  # no trailers expected
                self._finish()
                return True
            self.buf, self.chunk_left = self.buf[end + 2:], size + 2  # + CRLF after the data
            return True
        take = self.buf[:self.chunk_left]
        self.buf = self.buf[len(take):]
        self.chunk_left -= len(take)
        data = take if self.chunk_left >= 2 else take[:len(take) - (2 - self.chunk_left)]
        self._body(data)
        return self.chunk_left == 0

    def _body(self, data: bytes) -> None:
        if not self.sse:
            self.body += data
            return
        self.sse_buf = (self.sse_buf + data).replace(b"\r\n", b"\n")  # a CR and its LF may come apart
        while True:
            end = self.sse_buf.find(b"\n\n")
            if end < 0:
                return
            event, self.sse_buf = self.sse_buf[:end], self.sse_buf[end + 2:]
            payload = b"\n".join(line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:"))
            if payload:
                self._message(payload)

    def _message(self, payload: bytes) -> None:
        try:
            msg = json.loads(payload)
        except ValueError:
            self.client.invalid_messages += 1
            return
        if isinstance(msg, dict) and "id" in msg and ("result" in msg or "error" in msg):
            self.answered = True
            self.client._answer(msg)
        elif isinstance(msg, dict) and isinstance(msg.get("method"), str):
            self.client._server_message(msg)
        else:
            self.client.invalid_messages += 1

    def _finish(self) -> None:
        status, headers, body, rid = self.status, self.headers, bytes(self.body), self.rid
        if not self.sse and body:
            self._message(body)
        keep = headers.get("connection", "").lower() != "close"
        self._reset()
        self.busy, self.rid = False, None
        self.client._done(self, status, headers, body, rid, keep)


__all__ = ["_Conn"]
