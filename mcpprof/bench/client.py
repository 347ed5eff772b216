"""A lean MCP client over stdio, for driving a server under measurement.

The official SDK client costs about 200 µs of CPU per request; on a small machine shared with the
server under test that perturbs the measurement. This client does the minimum: it spawns the server,
writes one JSON-RPC object per line to its stdin, reads newline-delimited JSON from its stdout in a
protocol callback (no reader task, no streams) and hands each reply to the future or callback
registered under its request id, so any number of requests can be in flight over the one pipe.
Timeouts are swept every 20 ms rather than timed per request. Stdlib only.

Every line the server writes to stdout is checked to be a JSON-RPC message; the rest are counted in
:attr:`StdioClient.invalid_lines` (the first few kept in :attr:`StdioClient.invalid_samples`).

Failed calls raise :class:`CallError` whose ``kind`` is one of :data:`ERROR_KINDS`:
``timeout`` (no answer in time), ``jsonrpc`` (an error response), ``tool`` (a ``tools/call``
result with ``isError``) or ``transport`` (the process exited or closed its pipes).

    async with StdioClient([sys.executable, "server.py"], stderr=subprocess.DEVNULL) as c:
        await c.initialize()
        result = await c.call_tool("echo", {"text": "hi"})
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections import Counter
from typing import IO, Any, Callable, Mapping, Optional, Sequence, Union

from .._version import __version__
from ..errors import McpprofError, TargetError

PROTOCOL_VERSION = "2025-11-25"
ERROR_KINDS = ("timeout", "jsonrpc", "tool", "transport")
DEFAULT_TIMEOUT = 30.0
_KEEP_INVALID = 5
_KEEP_STDERR = 64 * 1024
_SWEEP_INTERVAL = 0.02  # s: how late a timeout may fire
_monotonic = time.monotonic

StderrTarget = Union[None, int, IO[Any]]
#: Where a reply goes: a future, or ``callback(result, None)`` / ``callback(None, CallError)``.
ReplyTarget = Union["asyncio.Future[dict[str, Any]]", Callable[[Optional[dict], Optional["CallError"]], None]]


class CallError(McpprofError):
    """A request that did not succeed. ``kind`` is one of :data:`ERROR_KINDS`."""

    def __init__(self, kind: str, message: str, *, code: int | None = None, data: Any = None):
        super().__init__(message)
        self.kind, self.code, self.data = kind, code, data


def _tool_error_text(result: Mapping[str, Any]) -> str:
    parts = [c.get("text", "") for c in result.get("content") or () if isinstance(c, dict)]
    return " ".join(p for p in parts if p).strip() or "the tool reported an error"


class _Protocol(asyncio.SubprocessProtocol):
    """Turns pipe callbacks into calls on the client; all the hot-path work happens here."""

    def __init__(self, client: "StdioClient"):
        self.client = client
        self.buffer = b""
        self.stdout_lost = False
        self.exited: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 2:
            self.client._stderr_received(data)
            return
        if self.buffer:
            data = self.buffer + data
        lines = data.split(b"\n")
        self.buffer = lines.pop()
        handle = self.client._handle_line
        for line in lines:
            handle(line)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self.stdout_lost = True
            if self.buffer:  # a last line without a newline
                self.client._handle_line(self.buffer)
                self.buffer = b""
            self.client._lost("the server closed its stdout")

    def process_exited(self) -> None:
        if not self.stdout_lost:
            # Answers written just before the exit may still be in the pipe: give them a moment
            # (a grandchild holding stdout open would otherwise keep requests waiting).
            asyncio.get_running_loop().call_later(1.0, self.client._lost, "the server exited")
        if not self.exited.done():
            self.exited.set_result(None)


class StdioClient:
    """Spawn ``command`` and talk MCP to it over its stdin/stdout; an async context manager.

    ``stderr`` is where the server's stderr goes: ``None`` inherits ours, ``subprocess.DEVNULL``
    drops it, a file or fd receives it, ``subprocess.PIPE`` keeps its last 64 KiB in
    :attr:`stderr_tail`.
    """

    def __init__(self, command: Sequence[str], *, env: Mapping[str, str] | None = None,
                 cwd: str | os.PathLike[str] | None = None, stderr: StderrTarget = None,
                 timeout: float = DEFAULT_TIMEOUT):
        if not command:
            raise ValueError("an empty server command")
        self.command = [str(a) for a in command]
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.stderr = stderr
        self.timeout = timeout
        #: the server's ``subprocess.Popen`` (use ``.pid``; do not ``wait()`` on it)
        self.process: subprocess.Popen[bytes] | None = None
        self.invalid_lines = 0
        self.invalid_samples: list[bytes] = []
        self.late_responses = 0  # answers to requests that had timed out or were unknown
        self.notifications: Counter[str] = Counter()
        self.stderr_tail = b""
        self.initialize_result: dict[str, Any] | None = None
        self._transport: asyncio.SubprocessTransport | None = None
        self._protocol: _Protocol | None = None
        self._stdin: asyncio.WriteTransport | None = None
        # request id -> (future or callback, deadline on the loop clock, method); a sweeper task
        # expires them (a timer per request would cost more than the rest of the request path)
        self._pending: dict[int, tuple[ReplyTarget, float, str]] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._next_id = 0
        self._closed_reason: str | None = None
        self._dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
        self._loads = json.loads

    # -- life cycle --------------------------------------------------------------------------------

    async def start(self) -> "StdioClient":
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: _Protocol(self), *self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self.stderr, env=self.env, cwd=self.cwd)
        except OSError as exc:
            raise TargetError(f"cannot start the server {self.command[0]!r}: {exc.strerror or exc}") from None
        self._transport, self._protocol = transport, protocol
        self._stdin = transport.get_pipe_transport(0)  # type: ignore[assignment]
        self.process = transport.get_extra_info("subprocess")
        self._sweeper = loop.create_task(self._sweep())
        return self

    async def __aenter__(self) -> "StdioClient":
        return await self.start()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def returncode(self) -> int | None:
        return self._transport.get_returncode() if self._transport is not None else None

    async def aclose(self, grace: float = 5.0) -> int | None:
        """Close the server's stdin and wait ``grace`` s for it to exit, then SIGTERM, then SIGKILL.
        Returns the exit code (negative: killed by that signal)."""
        transport, protocol = self._transport, self._protocol
        if transport is None or protocol is None:
            return None
        if self._stdin is not None and not self._stdin.is_closing():
            self._stdin.close()
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None and transport.get_returncode() is None:
                try:
                    transport.send_signal(sig)
                except ProcessLookupError:
                    pass
            try:
                await asyncio.wait_for(asyncio.shield(protocol.exited), grace)
                break
            except asyncio.TimeoutError:
                continue
        self._lost("the client closed the connection")
        transport.close()
        return transport.get_returncode()

    # -- requests -----------------------------------------------------------------------------------

    def notify(self, method: str, params: Mapping[str, Any] | None = None) -> None:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        self._write(msg)

    def send(self, method: str, params: Mapping[str, Any] | None, on_reply: ReplyTarget,
             timeout: float | None = None) -> int:
        """Send a request without waiting; returns its id. Exactly once, from the event loop,
        ``on_reply(result, None)`` or ``on_reply(None, CallError)`` is called (or, when
        ``on_reply`` is a future, its result or exception is set). The closed-loop driver uses
        this: no task switch per request."""
        if self._closed_reason is not None:
            raise CallError("transport", f"{method}: {self._closed_reason}")
        self._next_id += 1
        rid = self._next_id
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        self._write(msg)  # may raise; no answer can arrive before control returns to the loop
        self._pending[rid] = (on_reply, _monotonic() + (self.timeout if timeout is None else timeout), method)
        return rid

    async def request(self, method: str, params: Mapping[str, Any] | None = None,
                      timeout: float | None = None) -> dict[str, Any]:
        """Send one request and return its ``result``; raise :class:`CallError` on failure."""
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        rid = self.send(method, params, fut, timeout)
        try:
            return await fut
        finally:
            self._pending.pop(rid, None)

    async def initialize(self, timeout: float | None = None,
                         client_info: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The legacy handshake: ``initialize`` (protocol 2025-11-25), then ``notifications/initialized``."""
        params = {"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                  "clientInfo": dict(client_info or {"name": "mcpprof", "version": __version__})}
        self.initialize_result = await self.request("initialize", params, timeout)
        self.notify("notifications/initialized")
        return self.initialize_result

    @property
    def server_info(self) -> dict[str, Any]:
        return (self.initialize_result or {}).get("serverInfo") or {}

    async def list_tools(self, timeout: float | None = None) -> list[dict[str, Any]]:
        """Every tool the server lists (follows ``nextCursor`` pages)."""
        tools: list[dict[str, Any]] = []
        cursor = None
        while True:
            result = await self.request("tools/list", {"cursor": cursor} if cursor else None, timeout)
            tools.extend(result.get("tools") or [])
            cursor = result.get("nextCursor")
            if not cursor:
                return tools

    async def call_tool(self, name: str, arguments: Mapping[str, Any] | None = None,
                        timeout: float | None = None) -> dict[str, Any]:
        """Call a tool; a result with ``isError`` raises :class:`CallError` of kind ``tool``."""
        result = await self.request("tools/call", {"name": name, "arguments": arguments or {}}, timeout)
        if result.get("isError"):
            raise CallError("tool", f"tools/call {name}: {_tool_error_text(result)}")
        return result

    async def read_resource(self, uri: str, timeout: float | None = None) -> dict[str, Any]:
        return await self.request("resources/read", {"uri": uri}, timeout)

    async def get_prompt(self, name: str, arguments: Mapping[str, str] | None = None,
                         timeout: float | None = None) -> dict[str, Any]:
        return await self.request("prompts/get", {"name": name, "arguments": dict(arguments or {})}, timeout)

    # -- internals (called from the protocol) --------------------------------------------------------

    def _write(self, msg: Mapping[str, Any]) -> None:
        if self._closed_reason is not None or self._stdin is None or self._stdin.is_closing():
            raise CallError("transport", f"{msg.get('method')}: {self._closed_reason or 'not connected'}")
        self._stdin.write(self._dumps(msg).encode() + b"\n")

    def _deliver(self, target: ReplyTarget, result: dict[str, Any] | None, error: CallError | None) -> None:
        if isinstance(target, asyncio.Future):
            if not target.done():
                if error is None:
                    target.set_result(result)
                else:
                    target.set_exception(error)
            return
        try:
            target(result, error)
        except Exception as exc:  # a failing callback must not stop the other replies
            asyncio.get_running_loop().call_exception_handler(
                {"message": "mcpprof StdioClient: reply callback failed", "exception": exc})

    async def _sweep(self, interval: float = _SWEEP_INTERVAL) -> None:
        while self._closed_reason is None:
            await asyncio.sleep(interval)
            now = _monotonic()
            expired = [rid for rid, (_, deadline, _) in self._pending.items() if deadline <= now]
            for rid in expired:
                target, _, method = self._pending.pop(rid)
                self._deliver(target, None, CallError("timeout", f"{method}: no answer in time (request id {rid})"))

    def _handle_line(self, line: bytes) -> None:
        try:
            msg = self._loads(line)
        except ValueError:
            msg = None
        if type(msg) is not dict or msg.get("jsonrpc") != "2.0":
            self._invalid(line)
            return
        if "id" in msg and ("result" in msg or "error" in msg):
            entry = self._pending.pop(msg["id"], None)
            if entry is None:
                self.late_responses += 1
                return
            error = msg.get("error")
            if error is None:
                result = msg["result"]
                self._deliver(entry[0], result if type(result) is dict else {}, None)
                return
            if not isinstance(error, dict):
                error = {"message": str(error)}
            self._deliver(entry[0], None, CallError("jsonrpc", f"{entry[2]}: {error.get('message', 'error')}",
                                                    code=error.get("code"), data=error.get("data")))
        elif isinstance(msg.get("method"), str):
            self._server_message(msg)
        else:
            self._invalid(line)

    def _server_message(self, msg: dict[str, Any]) -> None:
        if "id" not in msg:
            self.notifications[msg["method"]] += 1
            return
        # A server-to-client request (ping, roots/list, sampling, ...): answer so it never waits.
        if msg["method"] == "ping":
            reply: dict[str, Any] = {"jsonrpc": "2.0", "id": msg["id"], "result": {}}
        else:
            reply = {"jsonrpc": "2.0", "id": msg["id"],
                     "error": {"code": -32601, "message": f"mcpprof's client does not support {msg['method']}"}}
        try:
            self._write(reply)
        except CallError:
            pass

    def _invalid(self, line: bytes) -> None:
        self.invalid_lines += 1
        if len(self.invalid_samples) < _KEEP_INVALID:
            self.invalid_samples.append(line[:200])

    def _stderr_received(self, data: bytes) -> None:
        self.stderr_tail = (self.stderr_tail + data)[-_KEEP_STDERR:]

    def _lost(self, reason: str) -> None:
        if self._closed_reason is None:
            self._closed_reason = reason
        if self._sweeper is not None:
            self._sweeper.cancel()
        pending, self._pending = self._pending, {}
        for rid, (target, _, method) in pending.items():
            self._deliver(target, None, CallError("transport", f"{method}: {self._closed_reason} "
                                                               f"(request id {rid} unanswered)"))


__all__ = ["StdioClient", "CallError", "ERROR_KINDS", "PROTOCOL_VERSION"]
