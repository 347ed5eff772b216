"""Instrument MCP servers: one registry of framework adapters, ``instrument()`` for code and an
import hook for the launcher's agent, which patches the SDK when the server first imports it.

Adapters (one module each) expose ``KIND``, ``instrument(server) -> bool``, ``uninstall(server)``,
``is_instrumented(server)``, ``patch_module(module)`` (truthy when it patched: the kind, or True
for ``KIND``) and ``unpatch_all()``. mcp 1.x and 2.x ship the same module names, so the installed
distribution's major version picks the adapter. Stdlib only.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import context

#: module whose import triggers a patch -> (distribution, {major version: adapter module name,
#: relative to mcpprof.mcp}); the highest major not above the installed one wins. The first entry
#: is the SDK's server module; the others only time sync tools run inline on the event loop.
HOOKED_MODULES: Dict[str, Tuple[str, Dict[int, str]]] = {
    "mcp.server.lowlevel.server": ("mcp", {1: "sdk1", 2: "sdk2"}),
    "mcp.server.fastmcp.server": ("mcp", {1: "sdk1"}),
    "fastmcp": ("fastmcp", {2: "fastmcp"}),
}
SERVER_MODULE = "mcp.server.lowlevel.server"
#: what each kind's sync tools run on (loop: they block the event loop while they run)
SYNC_TOOLS = {"mcp2": "worker thread", "mcp1": "the handler's choice", "mcp1-fastmcp": "event loop",
              "fastmcp2": "event loop", "fastmcp3": "worker thread", "fastmcp4": "worker thread"}
_KIND_PACKAGE = {"mcp": "mcp", "fastmcp": "fastmcp"}

_lock = threading.RLock()
_on_patch: List[Callable[[str, str], None]] = []  # called with (module name, adapter kind)
_patched_kinds: List[str] = []


def _adapter(name: str) -> Any:
    return importlib.import_module(f"{__package__}.{name}")


#: the order ``instrument(server)`` asks adapters in (fastmcp first: its servers carry a native
#: ``middleware`` list the SDK adapters must not mistake for the SDK's)
ADAPTERS = ("fastmcp", "sdk2", "sdk1")


def _adapters() -> List[Any]:
    return [_adapter(name) for name in ADAPTERS]


def _major(distribution: str) -> Optional[int]:
    try:
        from importlib.metadata import version

        return int(version(distribution).split(".")[0])
    except Exception:
        return None


def adapter_for(module_name: str, module: Any = None) -> Optional[str]:
    """The adapter for a hooked module, by the installed distribution's major version (for the SDK
    without metadata: mcp 1.x's ``Server`` has ``_handle_request``, 2.x's does not)."""
    distribution, majors = HOOKED_MODULES[module_name]
    major = _major(distribution)
    if major is None and module is not None and module_name == SERVER_MODULE:
        major = 1 if hasattr(getattr(module, "Server", None), "_handle_request") else 2
    fitting = [m for m in majors if major is not None and m <= major]
    return majors[max(fitting)] if fitting else None


def instrument(server: Any, exact_cpu: Optional[bool] = None) -> Any:
    """Tag every request of ``server`` (any supported framework); returns the server.

    ``exact_cpu=True`` also measures each request's CPU exactly (see
    :data:`mcpprof.mcp.context.exact_cpu`). Reversible with :func:`uninstall`. Raises
    ``TypeError`` for an object no adapter knows.
    """
    if exact_cpu is not None:
        context.exact_cpu = bool(exact_cpu)
    for adapter in _adapters():
        if adapter.instrument(server):
            if adapter.KIND in SYNC_TOOLS:  # the fastmcp adapter notes the SDK kind it delegated to
                note_framework(adapter.KIND)
            for name in list(HOOKED_MODULES)[1:]:  # sync-tool timing of the framework, if loaded
                module = sys.modules.get(name)
                if module is not None:
                    _patch(name, module)
            return server
    raise TypeError(f"mcpprof cannot instrument {type(server).__name__}: not a supported MCP server object")


def uninstall(server: Any) -> None:
    """Remove mcpprof's hooks from ``server`` and the thread wrappers."""
    for adapter in _adapters():
        adapter.uninstall(server)
    context.uninstall_thread_hooks()


def framework_of(server: Any) -> Optional[str]:
    for adapter in _adapters():
        recognizes = getattr(adapter, "recognizes", None)
        if recognizes(server) if recognizes else adapter.middleware_list(server) is not None:
            return adapter.KIND
    return None


def patched_frameworks() -> List[str]:
    return list(_patched_kinds)


def frameworks() -> List[Dict[str, str]]:
    """What the server runs on, for ``metadata["frameworks"]``: one entry per kind patched
    (``kind``, ``package``, ``version``, ``sync_tools``: what runs a plain ``def`` tool)."""
    out = []
    for kind in list(_patched_kinds):
        package = _KIND_PACKAGE.get(kind.split("-")[0].rstrip("0123456789"), kind)
        out.append({"kind": kind, "package": package, "sync_tools": SYNC_TOOLS.get(kind, ""),
                    "version": package_version(package)})
    return out


_versions: Dict[str, str] = {}


def package_version(package: str) -> str:
    """The installed version of ``package`` ("" if unknown), read once per process: reading package
    metadata takes milliseconds, and the agent asks at every flush."""
    found = _versions.get(package)
    if found is None:
        try:
            from importlib.metadata import version

            found = version(package)
        except Exception:
            found = ""
        _versions[package] = found
    return found


def profile_metadata() -> Dict[str, Any]:
    """The frameworks and the event-loop time sync tools blocked, for the agent's profile metadata."""
    from . import inline

    return {"frameworks": frameworks(), "loop_blocked": inline.snapshot()}


def note_framework(kind: str) -> None:
    """Record that the server runs on ``kind`` (adapters call it when they see the framework used)."""
    if kind and kind not in _patched_kinds:
        _patched_kinds.append(kind)


def _patch(module_name: str, module: Any) -> None:
    with _lock:
        try:
            name = adapter_for(module_name, module)
            if name is None:
                return
            adapter = _adapter(name)
            patched = adapter.patch_module(module)
            if patched:
                kind = patched if isinstance(patched, str) else adapter.KIND
                note_framework(kind)
                for callback in list(_on_patch):
                    try:
                        callback(module_name, kind)
                    except Exception:
                        pass
        except Exception:
            pass  # never break the server's import


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, name: str):
        self._loader = loader
        self._name = name

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        _patch(self._name, module)

    def __getattr__(self, item: str) -> Any:
        return getattr(self._loader, item)


class _ImportHook(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps the real loader of the hooked SDK modules."""

    mcpprof_marker = True

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in HOOKED_MODULES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            try:
                spec = finder.find_spec(fullname, path, target)
            except Exception:
                continue
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchingLoader(spec.loader, fullname)
                return spec
        return None


def install_import_hook(on_patch: Optional[Callable[[str, str], None]] = None) -> None:
    """Patch hooked SDK modules now if imported, else when they are first imported."""
    with _lock:
        if on_patch is not None:
            _on_patch.append(on_patch)
        if not any(getattr(f, "mcpprof_marker", False) for f in sys.meta_path):
            sys.meta_path.insert(0, _ImportHook())
        for name in HOOKED_MODULES:
            module = sys.modules.get(name)
            if module is not None:
                _patch(name, module)


def remove_import_hook() -> None:
    with _lock:
        sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "mcpprof_marker", False)]
        _on_patch.clear()
        for adapter in _adapters():
            adapter.unpatch_all()
        _patched_kinds.clear()
