"""A lean MCP client over streamable HTTP, for driving a server under measurement.

Same surface as :class:`~.client.StdioClient` (``send`` with a callback, ``request``,
``initialize``, ``list_tools``, ``call_tool``, ``aclose``), so the closed and open loops drive
either. It speaks raw HTTP/1.1 on asyncio protocols over a pool of keep-alive connections, one
request in flight per connection, as many connections as calls in flight (up to
``max_connections``; more calls wait for a free connection); requests are built by hand and
answers matched by JSON-RPC id. About 50 µs of client CPU per call, against ~870 µs for the SDK's
client (research: bench-and-regression.md §2).

Both protocol eras:

* ``legacy``: ``initialize`` + ``notifications/initialized``, then every request carries
  ``Mcp-Session-Id`` and ``MCP-Protocol-Version``; :meth:`aclose` sends ``DELETE`` to end the session.
* ``modern`` (2026-07-28): no handshake, ``server/discover`` once, every request a self-contained
  POST with the ``_meta`` envelope and the ``Mcp-Method`` / ``Mcp-Name`` headers.
* ``auto``: ``server/discover`` first, the legacy handshake if the server does not know it.

Answers may be JSON (``application/json``) or SSE-framed (``text/event-stream``, chunked): SSE
events are parsed as they arrive, so a call's latency ends at its response event, and server
notifications before it are counted (the parser is :mod:`.http_conn`). Errors are
:class:`~.rpc.CallError` by kind.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import ssl
import time
from collections import deque
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit

from .._version import __version__
from ..errors import TargetError
from .http_conn import _Conn
from .rpc import DEFAULT_TIMEOUT, PROTOCOL_VERSION, CallError, ReplyTarget, RpcClient

MODERN_VERSION = "2026-07-28"
PROTOCOLS = ("auto", "legacy", "modern")
_NAME_BEARING = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
_HEADER_SAFE = re.compile(r"^[\x20-\x7e]*$")


def header_value(value: str) -> str:
    """``Mcp-Name`` encoding: printable ASCII verbatim, anything else as ``=?base64?...?=``."""
    if _HEADER_SAFE.match(value) and value == value.strip() and not value.startswith("=?base64?"):
        return value
    return f"=?base64?{base64.b64encode(value.encode()).decode()}?="


class HttpClient(RpcClient):
    """Talk MCP to ``url`` (``http://host:port/mcp``) over streamable HTTP; an async context manager."""

    def __init__(self, url: str, *, protocol: str = "auto", timeout: float = DEFAULT_TIMEOUT,
                 max_connections: int = 256, headers: Mapping[str, str] | None = None):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TargetError(f"not an http(s) URL: {url!r}")
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}")
        super().__init__()
        self.url, self.protocol, self.timeout = url, protocol, timeout
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.max_connections = max(1, max_connections)
        self.extra_headers = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.session_id: str | None = None
        self.protocol_version: str | None = None  # negotiated: PROTOCOL_VERSION or MODERN_VERSION
        self.initialize_result: dict[str, Any] | None = None
        self.invalid_messages = 0
        self.connections_opened = 0
        self._meta: dict[str, Any] = {}
        self._idle: list[_Conn] = []
        self._conns: set[_Conn] = set()
        self._opening = 0
        self._queue: deque[tuple[bytes, Any]] = deque()
        self._by_conn: dict[Any, _Conn] = {}
        self._dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

    # -- life cycle --------------------------------------------------------------------------------

    async def start(self) -> "HttpClient":
        conn = await self._open()  # fail early, with a message, when nothing listens
        self._idle.append(conn)
        self._start_sweeper()
        return self

    async def aclose(self) -> None:
        """End the session (``DELETE``, legacy era) and close every connection."""
        if self.session_id is not None and self._closed_reason is None:
            try:
                await self._raw("DELETE", b"", timeout=5.0)
            except (CallError, TargetError, OSError):
                pass
        self._lost("the client closed the connection")
        for conn in list(self._conns):
            if conn.transport is not None:
                conn.transport.close()
        self._conns.clear()
        self._idle.clear()

    async def _open(self) -> _Conn:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(lambda: _Conn(self), self.host, self.port, ssl=self.ssl)
        except OSError as exc:
            raise TargetError(f"cannot connect to {self.url}: {exc.strerror or exc}") from None
        self._conns.add(conn)
        self.connections_opened += 1
        return conn

    # -- requests ----------------------------------------------------------------------------------

    def _request_bytes(self, method: str, body: bytes, verb: str = "POST", name: Any = None) -> bytes:
        head = [f"{verb} {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n"]
        if self.protocol_version:
            head.append(f"MCP-Protocol-Version: {self.protocol_version}\r\n")
        if self.session_id:
            head.append(f"Mcp-Session-Id: {self.session_id}\r\n")
        if self._meta and method:
            head.append(f"Mcp-Method: {method}\r\n")
            if isinstance(name, str):
                head.append(f"Mcp-Name: {header_value(name)}\r\n")
        head.append(f"{self.extra_headers}Content-Length: {len(body)}\r\n\r\n")
        return "".join(head).encode("latin-1") + body

    def _params(self, method: str, params: Mapping[str, Any] | None) -> Optional[dict[str, Any]]:
        if not self._meta:
            return dict(params) if params is not None else None
        out = dict(params or {})
        out["_meta"] = {**(out.get("_meta") or {}), **self._meta}
        return out

    def send(self, method: str, params: Mapping[str, Any] | None, on_reply: ReplyTarget,
             timeout: float | None = None) -> Any:
        """Send a request without waiting; ``on_reply`` gets the result or a CallError exactly
        once (see :meth:`StdioClient.send`). Returns the request id."""
        rid = self._register(method, on_reply, timeout)
        full = self._params(method, params)
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if full is not None:
            msg["params"] = full
        name = (params or {}).get(_NAME_BEARING[method]) if method in _NAME_BEARING else None
        data = self._request_bytes(method, self._dumps(msg).encode(), name=name)
        self._dispatch(data, rid)
        return rid

    def notify(self, method: str, params: Mapping[str, Any] | None = None) -> None:
        """Fire-and-forget notification (legacy era; the modern wire has none to send)."""
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = dict(params)
        self._dispatch(self._request_bytes(method, self._dumps(msg).encode()), None)

    async def _raw(self, verb: str, body: bytes, timeout: float) -> int:
        """A non-JSON-RPC exchange (``DELETE``) on its own connection; returns the status."""
        conn = await self._open()
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending[("raw", id(fut))] = (lambda r, e: fut.done() or (fut.set_exception(e) if e else fut.set_result(r["status"])),  # type: ignore[arg-type]
                                           time.monotonic() + timeout, verb)
        conn.busy, conn.rid = True, ("raw", id(fut))
        assert conn.transport is not None
        conn.transport.write(self._request_bytes("", body, verb=verb))
        return await fut

    async def initialize(self, timeout: float | None = None,
                         client_info: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Open the session by the chosen protocol; returns initialize's or discover's result."""
        info = dict(client_info or {"name": "mcpprof", "version": __version__})
        if self.protocol in ("auto", "modern"):
            self.protocol_version = MODERN_VERSION
            self._meta = {"io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
                          "io.modelcontextprotocol/clientInfo": info,
                          "io.modelcontextprotocol/clientCapabilities": {}}
            try:
                self.initialize_result = await self.request("server/discover", None, timeout)
                return self.initialize_result
            except CallError as exc:
                if self.protocol == "modern":
                    raise
                if exc.kind not in ("jsonrpc", "transport") or self._closed_reason is not None:
                    raise
            self.protocol_version, self._meta = None, {}
        params = {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": info}
        self.initialize_result = await self.request("initialize", params, timeout)
        self.protocol_version = str(self.initialize_result.get("protocolVersion") or PROTOCOL_VERSION)
        self.notify("notifications/initialized")
        return self.initialize_result

    @property
    def era(self) -> str:
        """``modern`` or ``legacy``: what :meth:`initialize` settled on."""
        return "modern" if self._meta else "legacy"

    @property
    def server_info(self) -> dict[str, Any]:
        r = self.initialize_result or {}
        return r.get("serverInfo") or (r.get("_meta") or {}).get("io.modelcontextprotocol/serverInfo") or {}

    # -- connection pool ---------------------------------------------------------------------------

    def _dispatch(self, data: bytes, rid: Any) -> None:
        while self._idle:
            conn = self._idle.pop()
            if conn.transport is not None and not conn.transport.is_closing():
                self._write(conn, data, rid)
                return
        self._queue.append((data, rid))
        if len(self._queue) > self._opening and len(self._conns) + self._opening < self.max_connections:
            self._opening += 1
            asyncio.get_running_loop().create_task(self._grow())

    async def _grow(self) -> None:
        try:
            conn = await self._open()
        except TargetError as exc:
            self._opening -= 1
            if not self._conns:
                self._lost(str(exc))
            return
        self._opening -= 1
        self._release(conn)

    def _write(self, conn: _Conn, data: bytes, rid: Any) -> None:
        conn.busy, conn.rid = True, rid
        if rid is not None:
            self._by_conn[rid] = conn
        conn.transport.write(data)  # type: ignore[union-attr]

    def _release(self, conn: _Conn) -> None:
        if self._queue:
            data, rid = self._queue.popleft()
            if rid is None or rid in self._pending:
                self._write(conn, data, rid)
                return
            self._release(conn)  # that request timed out while queued
            return
        self._idle.append(conn)

    def _done(self, conn: _Conn, status: int, headers: dict[str, str], body: bytes, rid: Any, keep: bool) -> None:
        if rid is not None:
            self._by_conn.pop(rid, None)
        if isinstance(rid, tuple):  # a raw exchange
            entry = self._pending.pop(rid, None)
            if entry is not None:
                self._deliver(entry[0], {"status": status}, None)
        elif rid is not None and rid in self._pending:
            sid = headers.get("mcp-session-id")
            if sid and self.session_id is None and status < 300:
                self.session_id = sid
            # A reply that carried no JSON-RPC answer (an HTTP error page, a 202 to a request).
            method = self._pending[rid][2]
            kind = "transport"
            text = body[:200].decode("utf-8", "replace").strip()
            self._fail(rid, CallError(kind, f"{method}: HTTP {status}" + (f": {text}" if text else "")))
        if keep and conn.transport is not None and not conn.transport.is_closing():
            self._release(conn)
        else:
            self._drop(conn)

    def _answer(self, msg: dict[str, Any]) -> None:
        conn = self._by_conn.pop(msg["id"], None)
        if conn is not None and self.session_id is None and msg["id"] in self._pending:
            sid = conn.headers.get("mcp-session-id")
            if sid:
                self.session_id = sid
        super()._answer(msg)

    def _reply(self, message: dict[str, Any]) -> None:
        self._dispatch(self._request_bytes("", self._dumps(message).encode()), None)

    def _drop(self, conn: _Conn) -> None:
        self._conns.discard(conn)
        if conn in self._idle:
            self._idle.remove(conn)
        if conn.transport is not None:
            conn.transport.close()

    def _fail_conn(self, conn: _Conn, reason: str) -> None:
        rid = conn.rid
        conn.busy, conn.rid = False, None
        self._drop(conn)
        if rid is not None and rid in self._pending:
            self._fail(rid, CallError("transport", f"{self._pending[rid][2]}: {reason}"))

    def _conn_lost(self, conn: _Conn, reason: str) -> None:
        if conn.busy:
            self._fail_conn(conn, reason)
        else:
            self._drop(conn)

    # -- timeouts, shutdown ---------------------------------------------------------------

    def _fail(self, rid: Any, error: CallError) -> None:
        self._by_conn.pop(rid, None)
        super()._fail(rid, error)

    def _timed_out(self, rid: Any, method: str) -> None:
        conn = self._by_conn.get(rid)
        super()._timed_out(rid, method)
        if conn is not None:  # its answer may still come: never reuse that connection
            conn.busy, conn.rid = False, None
            self._drop(conn)

    def _lost(self, reason: str) -> None:
        self._queue.clear()
        super()._lost(reason)


__all__ = ["HttpClient", "MODERN_VERSION", "PROTOCOLS", "header_value"]
