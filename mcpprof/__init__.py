"""mcpprof: profiling and flame graphs for MCP servers written in Python.

Importing mcpprof does nothing but define names: servers import it, and stdout and start-up time
belong to them. Heavier parts load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from .model import Profile

__all__ = ["__version__", "Profile", "load", "save", "export", "instrument", "uninstall"]


def load(path: Any) -> "Profile":
    """Load a ``.mcpprof`` profile file."""
    from .model.io import load as _load

    return _load(path)


def save(profile: "Profile", path: Any) -> None:
    """Save a profile as a ``.mcpprof`` file (atomically)."""
    from .model.io import save as _save

    _save(profile, path)


def export(profile: "Profile", fmt: str, **options: Any) -> bytes:
    """Render a profile with a registered exporter (``folded``, ``speedscope``, ``html``, ...)."""
    from .export.registry import get_exporter

    return get_exporter(fmt).render(profile, **options)


def instrument(server: Any) -> Any:
    """Tag every MCP request of ``server`` for profiling (reversible with :func:`uninstall`)."""
    from .mcp.install import instrument as _instrument

    return _instrument(server)


def uninstall(server: Any) -> None:
    """Undo :func:`instrument`."""
    from .mcp.install import uninstall as _uninstall

    _uninstall(server)


def __getattr__(name: str) -> Any:
    if name == "Profile":
        from .model import Profile

        return Profile
    raise AttributeError(f"module 'mcpprof' has no attribute {name!r}")
