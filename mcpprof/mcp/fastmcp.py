"""Adapter for the standalone ``fastmcp`` package.

fastmcp dispatches through the official SDK's low-level ``Server``, so requests are tagged by the
SDK adapters: fastmcp 2.x/3.x run on mcp 1.x (:mod:`.sdk1`), fastmcp 4.x on mcp 2.x's
``Server`` middleware (:mod:`.sdk2`, its ``LowLevelServer`` subclass included). What this module
adds is the one thing they cannot see: fastmcp 2.x calls a sync tool inline on the event loop
(``FunctionTool.run``), so that call is timed as blocked loop time (:mod:`.inline`). fastmcp ≥3
runs sync tools on anyio worker threads, which the thread hooks of :mod:`.context` tag.
"""

from __future__ import annotations

import functools
import inspect
import sys
from typing import Any, Callable, List, Optional, Tuple

from . import inline

KIND = "fastmcp"
TOOL_MODULE = "fastmcp.tools.tool"

_patched: List[Tuple[Any, str, Any]] = []


def _major() -> Optional[int]:
    try:
        from importlib.metadata import version

        return int(version("fastmcp").split(".")[0])
    except Exception:
        return None


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))


def _wrap_run(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            sync = not _is_async(self.fn)
        except Exception:
            sync = False
        if not sync:
            return await original(self, *args, **kwargs)
        return await inline.timed(lambda: original(self, *args, **kwargs))

    run._mcpprof_original = original  # type: ignore[attr-defined]
    return run


def patch_module(module: Any) -> Any:
    """Called once ``fastmcp`` is imported: on 2.x, time sync tools run inline. Returns the kind
    (``fastmcp2``, ``fastmcp4``, ...)."""
    major = _major()
    if major is None:
        return False
    if major < 3:
        tools = sys.modules.get(TOOL_MODULE)
        cls = getattr(tools, "FunctionTool", None) if tools is not None else None
        run = getattr(cls, "run", None) if cls is not None else None
        if run is not None and getattr(run, "_mcpprof_original", None) is None:
            cls.run = _wrap_run(run)
            _patched.append((cls, "run", run))
    return f"{KIND}{major}"


def unpatch_all() -> None:
    while _patched:
        cls, name, original = _patched.pop()
        setattr(cls, name, original)


def _sdk_server(server: Any) -> Any:
    """The SDK-level server of a fastmcp ``FastMCP`` (its own ``middleware`` list is fastmcp's
    native one, which SDK middleware must not go into), or None."""
    if type(server).__module__.split(".")[0] != "fastmcp":
        return None
    return getattr(server, "_mcp_server", None)


def _sdk_adapters() -> Tuple[Any, ...]:
    from . import sdk1, sdk2

    return sdk2, sdk1


def recognizes(server: Any) -> bool:
    return _sdk_server(server) is not None


def is_instrumented(server: Any) -> bool:
    low = _sdk_server(server)
    return low is not None and any(sdk.is_instrumented(low) for sdk in _sdk_adapters())


def instrument(server: Any) -> bool:
    """Instrument a fastmcp server through the SDK adapter of the mcp it runs on."""
    low = _sdk_server(server)
    if low is None:
        return False
    for sdk in _sdk_adapters():
        if sdk.instrument(low):
            from . import install

            install.note_framework(sdk.KIND)
            return True
    return False


def uninstall(server: Any) -> None:
    low = _sdk_server(server)
    if low is not None:
        for sdk in _sdk_adapters():
            sdk.uninstall(low)
