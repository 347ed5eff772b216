"""File paths in views: shorten them the way py-spy does, and tell the server's own code from
libraries. Profiles keep absolute paths (lossless); views shorten them unless asked not to, using
the ``sys_path``, ``stdlib_dirs`` and ``site_dirs`` lists a collector records in the metadata."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List

from ..model import Frame, Profile


def _prefixes(paths: Iterable[str]) -> List[str]:
    out = {p.rstrip("/") + "/" for p in paths if p and p.startswith("/")}
    return sorted(out, key=len, reverse=True)


class PathView:
    """Shortens files and classifies frames for one profile's metadata."""

    def __init__(self, metadata: Dict[str, Any], full_paths: bool = False):
        self.full_paths = full_paths
        self._sys = _prefixes(metadata.get("sys_path") or [])
        self._lib = _prefixes(list(metadata.get("stdlib_dirs") or []) + list(metadata.get("site_dirs") or []))
        self._cache: Dict[str, str] = {}

    def short(self, file: str) -> str:
        """``/venv/lib/python3.11/site-packages/mcp/server/runner.py`` -> ``mcp/server/runner.py``."""
        if self.full_paths or not file.startswith("/"):
            return file
        hit = self._cache.get(file)
        if hit is None:
            hit = file
            for prefix in self._sys:
                if file.startswith(prefix):
                    hit = file[len(prefix):]
                    break
            else:
                hit = file.rsplit("/", 1)[-1]  # outside sys.path: never leak the absolute path
            self._cache[file] = hit
        return hit

    def is_library(self, file: str) -> bool:
        if not file or file.startswith("<"):
            return True
        if "/site-packages/" in file or "/dist-packages/" in file:
            return True
        return any(file.startswith(p) for p in self._lib)

    def is_user_frame(self, frame: Frame) -> bool:
        """True for the server's own code: not stdlib, not an installed package, not mcpprof."""
        if "/mcpprof/" in frame.file and "/mcpprof/examples/" not in frame.file:
            return False
        return not self.is_library(frame.file)

    def label(self, frame: Frame) -> str:
        """``function (short/file.py:line)``."""
        return Frame(frame.function, self.short(frame.file), frame.line).label()


def path_view(profile: Profile, full_paths: bool = False) -> PathView:
    return PathView(profile.metadata, full_paths)
