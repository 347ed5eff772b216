"""Adapter for the official MCP SDK 1.x (1.3 and later): the low-level ``Server``, the
``mcp.server.fastmcp.FastMCP`` built on it, and fastmcp 2.x/3.x (also built on it).

mcp 1.x has no middleware: ``Server.run`` starts one task per message and every request goes
through ``Server._handle_request(message, req, session, ...)``, which is wrapped here (at class
level by the import hook, or on one instance by :func:`instrument`). The wrapper sees
``tools/list``, ``tools/call``, ``resources/*``, ``prompts/*`` ...; ``initialize`` is answered
inside ``ServerSession`` and notifications take another path, so neither is tagged on mcp 1.x.

``mcp.server.fastmcp`` calls a sync tool inline on the event loop; the patch of
``FuncMetadata.call_fn_with_arg_validation`` records how long each such call blocked the loop
(:mod:`mcpprof.mcp.inline`). ``mcp.server`` imports ``mcp.server.fastmcp`` whatever the server
uses, so the ``mcp1-fastmcp`` framework is noted only when a ``FastMCP`` is built.
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, List, Optional, Tuple

from . import context, inline

KIND = "mcp1"
SERVER_MODULE = "mcp.server.lowlevel.server"
FASTMCP_MODULE = "mcp.server.fastmcp.server"
FUNC_METADATA_MODULE = "mcp.server.fastmcp.utilities.func_metadata"
FASTMCP_KIND = "mcp1-fastmcp"

_patched: List[Tuple[Any, str, Any]] = []  # (class, attribute, original)


def _error_kind(response: Any) -> Optional[str]:
    """``None`` for a success, else the JSON-RPC error code or ``tool_error`` (an ``isError`` result)."""
    code = getattr(response, "code", None)
    if code is not None and hasattr(response, "message"):  # ErrorData
        return str(code)
    result = getattr(response, "root", response)
    if getattr(result, "isError", False) is True:
        return "tool_error"
    return None


def _exception_kind(exc: BaseException) -> str:
    code = getattr(getattr(exc, "error", None), "code", None)
    return str(code) if code is not None else exc.__class__.__qualname__


def _wrap_handle_request(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def _handle_request(self: Any, message: Any, req: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            tag = context.tag_for(req.method, getattr(req, "params", None), message.request_id)
            handle = context.enter_request(tag)
        except Exception:
            return await original(self, message, req, *args, **kwargs)
        responses: list = []
        try:  # see the response: mcp 1.x turns errors into responses, not exceptions
            respond = message.respond

            async def capture(response: Any) -> Any:
                responses.append(response)
                return await respond(response)

            message.respond = capture
        except Exception:
            pass
        error: Optional[str] = None
        try:
            return await context.metered(original(self, message, req, *args, **kwargs), tag)
        except BaseException as exc:
            error = _exception_kind(exc)
            raise
        finally:
            try:
                if error is None and responses:
                    error = _error_kind(responses[0])
                context.exit_request(handle, tag, error)
            except Exception:
                pass

    _handle_request._mcpprof_original = original  # type: ignore[attr-defined]
    return _handle_request


def _wrap_call_fn(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def call_fn_with_arg_validation(self: Any, fn: Any, fn_is_async: bool, *args: Any, **kwargs: Any) -> Any:
        if fn_is_async:
            return await original(self, fn, fn_is_async, *args, **kwargs)
        return await inline.timed(lambda: original(self, fn, fn_is_async, *args, **kwargs))

    call_fn_with_arg_validation._mcpprof_original = original  # type: ignore[attr-defined]
    return call_fn_with_arg_validation


def _note_fastmcp() -> None:
    from . import install

    install.note_framework(FASTMCP_KIND)


def _wrap_fastmcp_init(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        try:
            _note_fastmcp()
        except Exception:
            pass

    __init__._mcpprof_original = original  # type: ignore[attr-defined]
    return __init__


def _patch_attr(cls: Any, name: str, wrap: Callable[[Any], Any]) -> bool:
    current = getattr(cls, name, None)
    if current is None or getattr(current, "_mcpprof_original", None) is not None:
        return False
    setattr(cls, name, wrap(current))
    _patched.append((cls, name, current))
    return True


def patch_module(module: Any) -> Any:
    """Patch ``Server._handle_request`` (for every server; returns ``mcp1``), or FastMCP's sync-tool
    call site and constructor (returns False: the kind is noted when a FastMCP is built)."""
    if module.__name__ == FASTMCP_MODULE:
        func_metadata = sys.modules.get(FUNC_METADATA_MODULE)
        cls = getattr(func_metadata, "FuncMetadata", None) if func_metadata is not None else None
        if cls is not None:
            _patch_attr(cls, "call_fn_with_arg_validation", _wrap_call_fn)
        if getattr(module, "FastMCP", None) is not None:
            _patch_attr(module.FastMCP, "__init__", _wrap_fastmcp_init)
        return False
    server_cls = getattr(module, "Server", None)
    if server_cls is None or not hasattr(server_cls, "_handle_request"):
        return False  # mcp < 1.3 dispatches inline in run(): not supported
    return KIND if _patch_attr(server_cls, "_handle_request", _wrap_handle_request) else False


def unpatch_all() -> None:
    while _patched:
        cls, name, original = _patched.pop()
        setattr(cls, name, original)


# -- one server, from code ------------------------------------------------------------------------

def lowlevel_server(server: Any) -> Any:
    """The mcp 1.x low-level ``Server`` of ``server`` (itself, or a FastMCP's ``_mcp_server``)."""
    for candidate in (server, getattr(server, "_mcp_server", None)):
        if candidate is not None and callable(getattr(type(candidate), "_handle_request", None)) \
                and isinstance(getattr(candidate, "request_handlers", None), dict):
            return candidate
    return None


def recognizes(server: Any) -> bool:
    return lowlevel_server(server) is not None


def is_instrumented(server: Any) -> bool:
    low = lowlevel_server(server)
    if low is None:
        return False
    return "_handle_request" in vars(low) or \
        getattr(type(low)._handle_request, "_mcpprof_original", None) is not None


def instrument(server: Any) -> bool:
    """Wrap this server's ``_handle_request`` (an instance attribute, so other servers are untouched)."""
    low = lowlevel_server(server)
    if low is None:
        return False
    if type(server).__module__ == FASTMCP_MODULE:
        _note_fastmcp()
    if not is_instrumented(server):
        wrapper = _wrap_handle_request(type(low)._handle_request)
        low._handle_request = functools.partial(wrapper, low)
    context.install_thread_hooks()
    return True


def uninstall(server: Any) -> None:
    low = lowlevel_server(server)
    if low is not None:
        vars(low).pop("_handle_request", None)
