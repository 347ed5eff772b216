"""What the lean MCP clients share, whatever carries their bytes: request ids and the table of
requests awaiting an answer, answers matched by id, errors by kind, timeouts swept every 20 ms,
replies to requests the server sends, and the typed helpers (``initialize`` aside).

A transport subclass (:class:`~.client.StdioClient`, :class:`~.http_client.HttpClient`) implements
``send`` (build and write the request, register it with :meth:`RpcClient._register`) and calls
:meth:`RpcClient._answer` / :meth:`RpcClient._server_message` with each JSON-RPC message it reads.

Failed calls raise (or are delivered as) :class:`CallError` whose ``kind`` is one of
:data:`ERROR_KINDS`: ``timeout`` (no answer in time), ``jsonrpc`` (an error response), ``tool`` (a
``tools/call`` result with ``isError``) or ``transport`` (the connection or the process went away).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any, Callable, Iterable, Mapping, Optional, TypeVar, Union

from ..errors import McpprofError

PROTOCOL_VERSION = "2025-11-25"
ERROR_KINDS = ("timeout", "jsonrpc", "tool", "transport")
DEFAULT_TIMEOUT = 30.0
SWEEP_INTERVAL = 0.02  # s: how late a timeout may fire
_monotonic = time.monotonic

#: Where a reply goes: a future, or ``callback(result, None)`` / ``callback(None, CallError)``.
_C = TypeVar("_C", bound="RpcClient")
ReplyTarget = Union["asyncio.Future[dict[str, Any]]", Callable[[Optional[dict], Optional["CallError"]], None]]


class CallError(McpprofError):
    """A request that did not succeed. ``kind`` is one of :data:`ERROR_KINDS`."""

    def __init__(self, kind: str, message: str, *, code: int | None = None, data: Any = None):
        super().__init__(message)
        self.kind, self.code, self.data = kind, code, data


def tool_error_text(result: Mapping[str, Any]) -> str:
    """The text a ``tools/call`` result with ``isError`` carries (for the error message)."""
    parts = [c.get("text", "") for c in result.get("content") or () if isinstance(c, dict)]
    return " ".join(p for p in parts if p).strip() or "the tool reported an error"


def jsonrpc_error(method: str, error: Any) -> CallError:
    """The :class:`CallError` of kind ``jsonrpc`` for an ``error`` member of a response."""
    if not isinstance(error, dict):
        error = {"message": str(error)}
    return CallError("jsonrpc", f"{method}: {error.get('message', 'error')}", code=error.get("code"),
                     data=error.get("data"))


def deliver(target: ReplyTarget, result: dict[str, Any] | None, error: CallError | None, who: str = "client") -> None:
    """Hand a reply to its target: set the future's result or exception, or call the callback
    (an exception it raises goes to the loop's exception handler, not to the caller)."""
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
            {"message": f"mcpprof {who}: reply callback failed", "exception": exc})


def total_errors(per_kind: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """The sum of several ``{kind: count}`` tables."""
    total: dict[str, int] = {}
    for table in per_kind:
        for kind, n in table.items():
            total[kind] = total.get(kind, 0) + n
    return total


class Calls:
    """The typed helpers every client has, on top of its ``request(method, params, timeout)``."""

    async def request(self, method: str, params: Mapping[str, Any] | None = None,
                      timeout: float | None = None) -> dict[str, Any]:
        raise NotImplementedError

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
        result = await self.request("tools/call", {"name": name, "arguments": dict(arguments or {})}, timeout)
        if result.get("isError"):
            raise CallError("tool", f"tools/call {name}: {tool_error_text(result)}")
        return result

    async def read_resource(self, uri: str, timeout: float | None = None) -> dict[str, Any]:
        return await self.request("resources/read", {"uri": uri}, timeout)

    async def get_prompt(self, name: str, arguments: Mapping[str, str] | None = None,
                         timeout: float | None = None) -> dict[str, Any]:
        return await self.request("prompts/get", {"name": name, "arguments": dict(arguments or {})}, timeout)


class RpcClient(Calls):
    """JSON-RPC bookkeeping shared by the lean clients (see the module docstring)."""

    timeout: float
    initialize_result: dict[str, Any] | None

    def __init__(self) -> None:
        # request id -> (future or callback, deadline on the monotonic clock, method); a sweeper
        # task expires them (a timer per request would cost more than the rest of the request path)
        self._pending: dict[Any, tuple[ReplyTarget, float, str]] = {}
        self._next_id = 0
        self._closed_reason: str | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.notifications: Counter[str] = Counter()
        self.late_responses = 0  # answers to requests that had timed out or were unknown

    async def __aenter__(self: _C) -> _C:
        return await self.start()  # type: ignore[no-any-return]

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    # -- to implement ------------------------------------------------------------------------------

    async def start(self) -> Any:
        """Connect (start the server, open a connection); returns self."""
        raise NotImplementedError

    async def aclose(self) -> Any:
        """End the session and let go of the connection."""
        raise NotImplementedError

    def send(self, method: str, params: Mapping[str, Any] | None, on_reply: ReplyTarget,
             timeout: float | None = None) -> Any:
        """Send a request without waiting; returns its id. Exactly once, from the event loop,
        ``on_reply(result, None)`` or ``on_reply(None, CallError)`` is called (or, when
        ``on_reply`` is a future, its result or exception is set). The closed and open loops use
        this: no task switch per request."""
        raise NotImplementedError

    def _reply(self, message: dict[str, Any]) -> None:
        """Write a JSON-RPC response (to a request the server sent)."""
        raise NotImplementedError

    # -- requests ----------------------------------------------------------------------------------

    def _register(self, method: str, on_reply: ReplyTarget, timeout: float | None) -> int:
        """A new request id, its reply target registered with its deadline; CallError when closed."""
        if self._closed_reason is not None:
            raise CallError("transport", f"{method}: {self._closed_reason}")
        self._next_id += 1
        self._pending[self._next_id] = (on_reply, _monotonic() + (self.timeout if timeout is None else timeout),
                                        method)
        return self._next_id

    async def request(self, method: str, params: Mapping[str, Any] | None = None,
                      timeout: float | None = None) -> dict[str, Any]:
        """Send one request and return its ``result``; raise :class:`CallError` on failure."""
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        rid = self.send(method, params, fut, timeout)
        try:
            return await fut
        finally:
            self._pending.pop(rid, None)

    # -- answers -----------------------------------------------------------------------------------

    def _deliver(self, target: ReplyTarget, result: dict[str, Any] | None, error: CallError | None) -> None:
        deliver(target, result, error, type(self).__name__)

    def _answer(self, msg: dict[str, Any]) -> None:
        """Hand a response (a message with ``id`` and ``result`` or ``error``) to its request."""
        entry = self._pending.pop(msg["id"], None)
        if entry is None:
            self.late_responses += 1
            return
        error = msg.get("error")
        if error is None:
            result = msg["result"]
            self._deliver(entry[0], result if type(result) is dict else {}, None)
        else:
            self._deliver(entry[0], None, jsonrpc_error(entry[2], error))

    def _fail(self, rid: Any, error: CallError) -> None:
        entry = self._pending.pop(rid, None)
        if entry is not None:
            self._deliver(entry[0], None, error)

    def _server_message(self, msg: dict[str, Any]) -> None:
        """A notification (counted) or a request from the server (answered so it never waits:
        ``ping`` with an empty result, anything else with "method not found")."""
        if "id" not in msg:
            self.notifications[msg["method"]] += 1
            return
        if msg["method"] == "ping":
            reply: dict[str, Any] = {"jsonrpc": "2.0", "id": msg["id"], "result": {}}
        else:
            reply = {"jsonrpc": "2.0", "id": msg["id"],
                     "error": {"code": -32601, "message": f"mcpprof's client does not support {msg['method']}"}}
        try:
            self._reply(reply)
        except CallError:
            pass

    # -- timeouts and shutdown ---------------------------------------------------------------------

    def _start_sweeper(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    def _timed_out(self, rid: Any, method: str) -> None:
        self._fail(rid, CallError("timeout", f"{method}: no answer in time (request id {rid})"))

    async def _sweep(self) -> None:
        while self._closed_reason is None:
            await asyncio.sleep(SWEEP_INTERVAL)
            now = _monotonic()
            for rid in [r for r, (_, deadline, _) in self._pending.items() if deadline <= now]:
                if rid in self._pending:
                    self._timed_out(rid, self._pending[rid][2])

    def _lost(self, reason: str) -> None:
        """The connection is gone: every request still waiting fails with kind ``transport``."""
        if self._closed_reason is None:
            self._closed_reason = reason
        if self._sweeper is not None:
            self._sweeper.cancel()
        for rid in list(self._pending):
            if rid in self._pending:
                self._fail(rid, CallError("transport", f"{self._pending[rid][2]}: {self._closed_reason} "
                                                       f"(request id {rid} unanswered)"))


__all__ = ["RpcClient", "Calls", "CallError", "ERROR_KINDS", "PROTOCOL_VERSION", "DEFAULT_TIMEOUT", "ReplyTarget",
           "tool_error_text", "jsonrpc_error", "total_errors", "deliver"]
