"""Instrument MCP servers: one registry of framework adapters, ``instrument()`` for code and an
import hook for the launcher's agent, which patches the SDK when the server first imports it.

Adapters (one module each) expose ``KIND``, ``instrument(server) -> bool``, ``uninstall(server)``,
``is_instrumented(server)`` and ``patch_module(module) -> bool``. Stdlib only.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import threading
from typing import Any, Callable, Dict, List, Optional

from . import context

#: module whose import triggers the patch -> adapter module name (relative to mcpprof.mcp)
HOOKED_MODULES: Dict[str, str] = {
    "mcp.server.lowlevel.server": "sdk2",
}

_lock = threading.RLock()
_on_patch: List[Callable[[str, str], None]] = []  # called with (module name, adapter kind)
_patched_kinds: List[str] = []


def _adapter(name: str) -> Any:
    return importlib.import_module(f"{__package__}.{name}")


def _adapters() -> List[Any]:
    return [_adapter(name) for name in dict.fromkeys(HOOKED_MODULES.values())]


def instrument(server: Any) -> Any:
    """Tag every request of ``server`` (any supported framework); returns the server.

    Reversible with :func:`uninstall`. Raises ``TypeError`` for an object no adapter knows.
    """
    for adapter in _adapters():
        if adapter.instrument(server):
            return server
    raise TypeError(f"mcpprof cannot instrument {type(server).__name__}: not a supported MCP server object")


def uninstall(server: Any) -> None:
    """Remove mcpprof's hooks from ``server`` and the thread wrappers."""
    for adapter in _adapters():
        adapter.uninstall(server)
    context.uninstall_thread_hooks()


def framework_of(server: Any) -> Optional[str]:
    for adapter in _adapters():
        if adapter.middleware_list(server) is not None:
            return adapter.KIND
    return None


def patched_frameworks() -> List[str]:
    return list(_patched_kinds)


def _patch(module_name: str, module: Any) -> None:
    with _lock:
        try:
            adapter = _adapter(HOOKED_MODULES[module_name])
            if adapter.patch_module(module):
                _patched_kinds.append(adapter.KIND)
                for callback in list(_on_patch):
                    try:
                        callback(module_name, adapter.KIND)
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
