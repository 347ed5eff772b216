"""Helpers of the sampler's snapshot: line numbers from code objects, where the standard library
and packages live (for views that shorten paths), and compaction of the interned tables. Stdlib only."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from ..model.profile import Frame

def line_of(code: Any, lasti: int, frame: Any = None) -> int:
    """Line of byte offset ``lasti`` in ``code``: ``frame.f_lineno`` when the frame is at hand
    (computed in C), else from ``co_lines()``."""
    if frame is not None:
        line = getattr(frame, "f_lineno", None)
        if isinstance(line, int):
            return line
    co_lines = getattr(code, "co_lines", None)
    if co_lines is None:
        return getattr(frame, "f_lineno", 0) or 0
    for start, end, line in co_lines():
        if start <= lasti < end:
            return line or 0
    return getattr(code, "co_firstlineno", 0) or 0


_ENV: Dict[str, List[str]] = {}


def _environment() -> Dict[str, List[str]]:
    """Where the standard library and installed packages live (for views that shorten paths)."""
    if not _ENV:
        stdlib: List[str] = []
        site_dirs: List[str] = []
        try:
            import sysconfig

            paths = sysconfig.get_paths()
            stdlib = sorted({p for p in (paths.get("stdlib"), paths.get("platstdlib")) if p})
        except Exception:
            pass
        try:
            import site

            site_dirs = list(site.getsitepackages()) if hasattr(site, "getsitepackages") else []
            site_dirs.append(site.getusersitepackages())
        except Exception:
            pass
        _ENV.update(stdlib_dirs=stdlib, site_dirs=[d for d in site_dirs if isinstance(d, str)])
    return {k: list(v) for k, v in _ENV.items()}


def _compact(frames: List[Frame], stacks: List[Tuple[int, ...]], items: list,
             used: set) -> Tuple[List[Frame], List[Tuple[int, ...]], list]:
    """Keep only the stacks in ``used`` and the frames they reference, renumbered."""
    smap: Dict[int, int] = {}
    fmap: Dict[int, int] = {}
    new_frames: List[Frame] = []
    new_stacks: List[Tuple[int, ...]] = []
    for sid in sorted(used):
        ids = []
        for fid in stacks[sid]:
            new = fmap.get(fid)
            if new is None:
                new = fmap[fid] = len(new_frames)
                new_frames.append(frames[fid])
            ids.append(new)
        smap[sid] = len(new_stacks)
        new_stacks.append(tuple(ids))
    return new_frames, new_stacks, [((smap[s], lab), v) for (s, lab), v in items]
