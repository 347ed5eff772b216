"""Adapter for the official MCP SDK 2.x (``mcp.server.lowlevel.Server`` and ``MCPServer``).

mcp 2.x composes ``Server.middleware`` around every inbound request and notification, per request,
so one middleware appended to that list tags everything and can be added or removed at run time.
"""

from __future__ import annotations

from typing import Any, Optional

from . import context

KIND = "mcp2"


class ProfilingMiddleware:
    """``ServerMiddleware`` that tags each request for samplers and records its latency.

    A plain callable returning an awaitable (:func:`mcpprof.mcp.context.request`); in C where the
    extension is built. Its own failures never fail a request: if tagging breaks, the request runs
    untagged.
    """

    mcpprof_marker = True

    def __call__(self, ctx: Any, call_next: Any) -> Any:
        try:
            method = ctx.method
            tag = context.tag_for(method, ctx.params, ctx.request_id)
        except Exception:
            return call_next(ctx)
        awaitable = call_next(ctx)
        try:
            return context.request(awaitable, tag, method == "tools/call")
        except Exception:
            return awaitable


if context._C is not None:
    ProfilingMiddleware.__call__ = staticmethod(context._C.sdk2_call)  # type: ignore[assignment,method-assign]


def middleware_list(server: Any) -> Optional[list]:
    """The SDK middleware list of an ``MCPServer``, low-level ``Server`` or fastmcp 4 server."""
    for candidate in (server, getattr(server, "_lowlevel_server", None), getattr(server, "_mcp_server", None)):
        mws = getattr(candidate, "middleware", None) if candidate is not None else None
        if isinstance(mws, list):
            return mws
    return None


def is_instrumented(server: Any) -> bool:
    mws = middleware_list(server)
    return bool(mws) and any(getattr(m, "mcpprof_marker", False) for m in mws)


def instrument(server: Any) -> bool:
    """Insert the profiling middleware outermost, so everything a request costs is inside it."""
    mws = middleware_list(server)
    if mws is None:
        return False
    if not any(getattr(m, "mcpprof_marker", False) for m in mws):
        mws.insert(0, ProfilingMiddleware())
    context.install_thread_hooks()
    return True


def uninstall(server: Any) -> None:
    mws = middleware_list(server)
    if mws is not None:
        mws[:] = [m for m in mws if not getattr(m, "mcpprof_marker", False)]


_patched: list = []


def patch_module(module: Any) -> bool:
    """Patch ``mcp.server.lowlevel.server.Server.__init__`` so every new server is instrumented."""
    server_cls = getattr(module, "Server", None)
    if server_cls is None or getattr(server_cls.__init__, "_mcpprof_original", None) is not None:
        return False
    original = server_cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        try:
            instrument(self)
        except Exception:
            pass

    __init__._mcpprof_original = original  # type: ignore[attr-defined]
    __init__.__wrapped__ = original  # type: ignore[attr-defined]
    server_cls.__init__ = __init__
    _patched.append((server_cls, original))
    return True


def unpatch_all() -> None:
    while _patched:
        cls, original = _patched.pop()
        cls.__init__ = original


def sdk_major(module: Any = None) -> Optional[int]:
    try:
        from importlib.metadata import version

        return int(version("mcp").split(".")[0])
    except Exception:
        return None
