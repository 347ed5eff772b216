"""Helpers of the sampler: a stack's key (its frame ids straight from the location cache with the C
walk of :mod:`mcpprof.collect._walk`, else the raw (id(code), f_lasti) key and the frame ids cached
for it), line numbers from code objects, where the standard library and packages live (for views
that shorten paths), and compaction of the interned tables. Stdlib only."""

from __future__ import annotations

import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..model.profile import Frame
from ..native import load as load_extension


def raw_key(top: Any) -> Tuple[int, ...]:
    """(id(code), f_lasti, ...) of ``top`` and its callers, leaf first."""
    ids: List[int] = []
    append = ids.append
    f = top
    while f is not None:
        append(id(f.f_code))
        append(f.f_lasti)
        f = f.f_back
    return tuple(ids)


_NO_LOCS: Dict[int, int] = {}


def cached_fids(ids: Sequence[int], locs: Dict[int, Dict[int, int]]) -> Optional[List[int]]:
    """Frame ids of a raw key from the location cache, leaf first; None if one is not cached."""
    fids = []
    for i in range(0, len(ids), 2):
        fid = locs.get(ids[i], _NO_LOCS).get(ids[i + 1])
        if fid is None:
            return None
        fids.append(fid)
    return fids


_W = load_extension("mcpprof.collect._walk")
#: The sampler's per-thread loop in C for threads whose sample needs nothing new (None: not built).
sample_threads: Optional[Callable[..., Tuple[int, int]]] = getattr(_W, "sample_threads", None)


def stack_key_of(frames_fn: Callable[[], Dict[int, Any]]) -> Optional[Callable[[Any, Dict[int, Dict[int, int]]],
                                                                              Optional[Tuple[int, ...]]]]:
    """``stack_key(frame, locs)`` (frame ids root first straight from the location cache, None if
    one is not cached) for the interpreter's real frames where the C walk is built, else None
    (then the sampler uses :func:`raw_key`; the fakes of the unit tests always do)."""
    return _W.stack_key if _W is not None and frames_fn is sys._current_frames else None


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
