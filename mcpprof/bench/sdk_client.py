"""The official MCP SDK client behind the lean clients' surface: ``mcpprof bench --client sdk``.

For conformance and realism rather than for measuring: the calls go through ``mcp.ClientSession``
over ``mcp.client.stdio.stdio_client`` (the SDK spawns the server) or
``mcp.client.streamable_http.streamable_http_client``, with the SDK's typed methods
(``call_tool``, ``read_resource``, ``get_prompt``, ``list_tools``, ...; any other method as a
plain request), so what the server sees is what an SDK host sends (the SDK adds, e.g., a
``tools/list`` before the first ``tools/call`` to learn output schemas). The SDK client costs
6-18x the lean clients' CPU per call (research: bench-and-regression.md §2), which a bench on a
small machine takes from the server: results record ``"client": "sdk"``.

The surface is the lean clients' (``start``, ``initialize``, ``send`` with a callback,
``request``, ``list_tools``, ``call_tool``, ``aclose``, ``pid``, ``server_info``, ``era``), so the
closed, open and churn loops and the duet drive it unchanged; ``send`` runs each call in a task.
Errors become :class:`~.rpc.CallError` by kind: ``timeout`` (the SDK's request timeout),
``jsonrpc`` (an error response, or a result the SDK rejects as invalid), ``tool`` (``isError``,
from :meth:`SdkClient.call_tool`) and ``transport`` (the connection or the process went away).

The session lives in a task of its own (the SDK's task groups must be entered and left by one
task); :meth:`SdkClient.aclose` ends it, which ends the session (``DELETE`` over HTTP) or the
server process (stdio).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import subprocess
import sys
from typing import Any, Mapping, Optional, Sequence, Set

from ..errors import TargetError
from .rpc import DEFAULT_TIMEOUT, CallError, Calls, ReplyTarget, deliver

_CONNECTION_CLOSED, _REQUEST_TIMEOUT = -32000, -32001


def _children() -> Set[int]:
    try:
        import psutil

        return {p.pid for p in psutil.Process().children(recursive=False)}
    except Exception:
        return set()


class SdkClient(Calls):
    """An ``mcp.ClientSession`` to ``command`` (stdio) or ``url`` (streamable HTTP)."""

    def __init__(self, command: Optional[Sequence[str]] = None, url: Optional[str] = None, *,
                 env: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None, stderr: Any = None,
                 timeout: float = DEFAULT_TIMEOUT, protocol: str = "auto"):
        if not command and not url:
            raise ValueError("an SDK client needs a server command or a URL")
        self.command, self.url = (list(command) if command else None), url
        self.env, self.cwd, self.stderr = (dict(env) if env is not None else None), cwd, stderr
        self.timeout, self.protocol = timeout, protocol
        self.pid: Optional[int] = None  # stdio: the server process the SDK spawned, when found
        self.session: Any = None
        self.initialize_result: Optional[dict[str, Any]] = None
        self._stop: Optional[asyncio.Event] = None
        self._task: Optional[asyncio.Task[None]] = None
        self._tasks: Set[asyncio.Task[None]] = set()
        self._closed_reason: Optional[str] = None
        self._next_id = 0

    # -- life cycle --------------------------------------------------------------------------------

    async def start(self) -> "SdkClient":
        if importlib.util.find_spec("mcp") is None:
            raise TargetError("--client sdk needs the MCP SDK in this environment: pip install 'mcpprof[example]'") \
                from None
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._stop = asyncio.Event()
        before = _children() if self.command else set()
        self._task = loop.create_task(self._run(ready))
        await ready
        if self.command:
            new = sorted(_children() - before)
            self.pid = new[-1] if new else None
        return self

    async def _run(self, ready: "asyncio.Future[None]") -> None:
        from mcp import ClientSession

        assert self._stop is not None
        try:
            async with contextlib.AsyncExitStack() as stack:
                streams = await stack.enter_async_context(self._transport(stack))
                self.session = await stack.enter_async_context(
                    ClientSession(streams[0], streams[1], read_timeout_seconds=self.timeout))
                ready.set_result(None)
                await self._stop.wait()
        except BaseException as exc:
            where = self.url or (self.command or ["?"])[0]
            if not ready.done():
                ready.set_exception(TargetError(f"the SDK client could not connect to {where}: "
                                                f"{type(exc).__name__}: {exc}"))
            if not isinstance(exc, Exception):
                raise
        finally:
            self._closed_reason = self._closed_reason or "the SDK session ended"

    def _transport(self, stack: contextlib.AsyncExitStack) -> Any:
        if self.url:
            from mcp.client.streamable_http import streamable_http_client

            return streamable_http_client(self.url)
        from mcp.client.stdio import StdioServerParameters, stdio_client

        errlog = self.stderr
        if errlog is None:
            errlog = sys.stderr
        elif isinstance(errlog, int):  # subprocess.DEVNULL / a file descriptor
            errlog = stack.enter_context(open(os.devnull if errlog == subprocess.DEVNULL else errlog, "w",
                                              closefd=errlog == subprocess.DEVNULL))
        assert self.command
        params = StdioServerParameters(command=self.command[0], args=self.command[1:],
                                       env=self.env, cwd=self.cwd)
        return stdio_client(params, errlog=errlog)

    async def aclose(self) -> None:
        """End the session (the SDK sends ``DELETE`` over HTTP, stops the server on stdio)."""
        self._closed_reason = self._closed_reason or "the client closed the connection"
        for task in list(self._tasks):
            task.cancel()
        if self._stop is not None:
            self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._task, 15.0)

    async def __aenter__(self) -> "SdkClient":
        return await self.start()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    # -- handshake ---------------------------------------------------------------------------------

    async def initialize(self, timeout: Optional[float] = None) -> dict[str, Any]:
        """``initialize`` (legacy), ``server/discover`` (modern), or over HTTP with ``auto`` discover
        first and the legacy handshake when the server does not know it."""
        from mcp import MCPError

        s = self._session()
        result: Any = None
        try:
            if self.protocol == "modern" or (self.protocol == "auto" and self.url):
                try:
                    result = await s.discover()
                except MCPError:
                    if self.protocol == "modern":
                        raise
            if result is None:
                result = await s.initialize()
        except Exception as exc:
            raise self._error("initialize", exc) from None
        self.initialize_result = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        return self.initialize_result

    @property
    def era(self) -> str:
        return "modern" if self.session is not None and self.session.discover_result is not None else "legacy"

    @property
    def server_info(self) -> dict[str, Any]:
        info = self.session.server_info if self.session is not None else None
        return info.model_dump(by_alias=True, mode="json", exclude_none=True) if info is not None else {}

    # -- requests ----------------------------------------------------------------------------------

    def send(self, method: str, params: Mapping[str, Any] | None, on_reply: ReplyTarget,
             timeout: float | None = None) -> int:
        """Start the call in a task; ``on_reply`` gets the result (for ``tools/call`` only
        ``isError``: the loops need no more) or a CallError, exactly once."""
        if self._closed_reason is not None:
            raise CallError("transport", f"{method}: {self._closed_reason}")
        self._next_id += 1
        task = asyncio.get_running_loop().create_task(self._send(method, params, on_reply, timeout))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return self._next_id

    async def _send(self, method: str, params: Mapping[str, Any] | None, on_reply: ReplyTarget,
                    timeout: float | None) -> None:
        try:
            result = await self._typed(method, params, timeout)
        except asyncio.CancelledError:
            deliver(on_reply, None, CallError("transport", f"{method}: {self._closed_reason or 'cancelled'}"))
            raise
        except Exception as exc:
            deliver(on_reply, None, self._error(method, exc), "SdkClient")
            return
        deliver(on_reply, {"isError": True} if getattr(result, "is_error", False) else {}, None, "SdkClient")

    async def request(self, method: str, params: Mapping[str, Any] | None = None,
                      timeout: float | None = None) -> dict[str, Any]:
        """One call through the SDK; its result as JSON (camelCase keys); CallError on failure."""
        try:
            result = await self._typed(method, params, timeout)
        except Exception as exc:
            raise self._error(method, exc) from None
        return result.model_dump(by_alias=True, mode="json", exclude_none=True) if result is not None else {}

    def _session(self) -> Any:
        if self.session is None or self._closed_reason is not None:
            raise CallError("transport", self._closed_reason or "the SDK client is not started")
        return self.session

    async def _typed(self, method: str, params: Mapping[str, Any] | None, timeout: float | None) -> Any:
        import mcp.types as t

        s, p = self._session(), dict(params or {})
        if method == "tools/call":
            return await s.call_tool(p["name"], p.get("arguments") or {}, read_timeout_seconds=timeout)
        if method == "resources/read":
            return await s.read_resource(p["uri"])
        if method == "prompts/get":
            return await s.get_prompt(p["name"], p.get("arguments"))
        if method == "ping":
            return await s.send_ping()
        listing = {"tools/list": s.list_tools, "resources/list": s.list_resources, "prompts/list": s.list_prompts,
                   "resources/templates/list": s.list_resource_templates}.get(method)
        if listing is not None:
            return await listing(params=t.PaginatedRequestParams(cursor=p["cursor"]) if p.get("cursor") else None)
        from pydantic import TypeAdapter

        raw = await s.send_request(t.Request(method=method, params=p or None), TypeAdapter(dict),
                                   request_read_timeout_seconds=timeout)
        return _Raw(raw)

    def _error(self, method: str, exc: BaseException) -> CallError:
        """The CallError (by kind) for what the SDK raised."""
        from mcp import MCPError

        if isinstance(exc, CallError):
            return exc
        if isinstance(exc, MCPError):
            if exc.code == _REQUEST_TIMEOUT:
                return CallError("timeout", f"{method}: no answer in time ({exc.message})")
            if exc.code == _CONNECTION_CLOSED:
                return CallError("transport", f"{method}: {exc.message}")
            return CallError("jsonrpc", f"{method}: {exc.message}", code=exc.code, data=exc.data)
        if isinstance(exc, (ValueError, RuntimeError, TypeError)) and not isinstance(exc, ConnectionError):
            # pydantic's ValidationError is a ValueError: a result the SDK rejects
            return CallError("jsonrpc", f"{method}: the SDK rejected the answer: {str(exc).splitlines()[0][:200]}")
        return CallError("transport", f"{method}: {type(exc).__name__}: {exc}")


class _Raw:
    """A plain result dict standing in for an SDK model (for methods the SDK has no call for)."""

    def __init__(self, data: dict[str, Any]):
        self.data = data

    def model_dump(self, **_: Any) -> dict[str, Any]:
        return dict(self.data)


__all__ = ["SdkClient"]
