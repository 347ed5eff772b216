"""The sampler's interned tables: frames, stacks, and the raw-stack cache that maps a thread's
``(id(code), f_lasti)`` pairs straight to a stack id (see :mod:`mcpprof.collect.sampler` for the
bounds). A mixin of :class:`~mcpprof.collect.sampler.Sampler`; stdlib only."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..model.profile import Frame
from .stackutil import cached_fids, line_of

OVERFLOW_FUNCTION = "[mcpprof: stack table full]"
TRUNCATED_FUNCTION = "[truncated]"
RAW_CACHE_FRAMES = 50_000


class StackTable:
    """Interning of frames and stacks, bounded by ``max_stacks`` / ``max_frames`` / ``max_depth``."""

    max_stacks: int
    max_frames: int
    max_depth: int

    def _clear_tables(self) -> None:
        """(Re)create the interning tables (kept across reset() unless past half their caps)."""
        self._raw: Dict[Tuple[int, ...], int] = {}  # (id(code), f_lasti, ...) leaf first -> stack id
        self._locs: Dict[int, Dict[int, int]] = {}  # id(code) -> {f_lasti: frame id}
        self._code_refs: Dict[int, Any] = {}  # id(code) -> code: keeps those ids valid
        self._frames: List[Frame] = []
        self._frame_ids: Dict[Frame, int] = {}
        self._stacks: List[Tuple[int, ...]] = []
        self._stack_ids: Dict[Tuple[int, ...], int] = {}
        self._raw_frames = self._nlocs = 0
        self._ovf_sid = -1
        self._call_sids: Dict[int, Tuple[Any, int]] = {}  # id(code or callable) -> (it, one-frame stack id)

    def _resolve(self, top: Any, ids: Optional[Sequence[int]] = None) -> int:
        """Stack id of the stack whose leaf is ``top``, interning what is new (the slow path).
        ``ids``: its (id(code), f_lasti) pairs, leaf first; when every location in it is cached the
        frames are not walked again."""
        if ids:
            fids = cached_fids(ids, self._locs)
            if fids is not None:
                sid = self._stack_id(fids)
                self._remember_raw(ids, sid)
                return sid
        ids = []
        fids: List[int] = []
        locs, refs, full = self._locs, self._code_refs, False
        f = top
        while f is not None:
            code, lasti = f.f_code, f.f_lasti
            ids.append(id(code))
            ids.append(lasti)
            fid = locs.get(id(code), {}).get(lasti)
            if fid is None:
                fid = self._intern_location(f)
                full = full or fid < 0
            fids.append(fid)
            f = f.f_back
        sid = self._overflow_sid() if full else self._stack_id(fids)
        if all(code_id in refs for code_id in ids[::2]):  # every id in the key stays valid
            self._remember_raw(ids, sid)
        return sid

    def _intern_location(self, f: Any) -> int:
        """Frame id of frame ``f``'s location (-1: the frame table is full), cached by
        (id(code), f_lasti) while the caches have room (the code object is then kept alive)."""
        code, lasti = f.f_code, f.f_lasti
        name = getattr(code, "co_qualname", None) or code.co_name
        fid = self._intern(Frame(name, code.co_filename, line_of(code, lasti, f)))
        refs = self._code_refs
        if fid >= 0 and self._nlocs < self.max_frames and (id(code) in refs or len(refs) < self.max_frames):
            refs[id(code)] = code
            self._locs.setdefault(id(code), {})[lasti] = fid
            self._nlocs += 1
        return fid

    def _cache_location(self, f: Any) -> Optional[int]:
        """The C walk's callback for a location not cached: interns it; None when the frame table is
        full (the walk then looks it up again in the cache, where a full cache did not put it)."""
        fid = self._intern_location(f)
        return fid if fid >= 0 else None

    def _call_sid(self, func: Any) -> int:
        """Stack id of a one-frame stack for a callable run on a worker thread: its function (through
        ``functools.partial`` and bound methods) at its ``def`` line."""
        target, code = func, None
        for _ in range(4):
            code = getattr(target, "__code__", None)
            if code is not None:
                break
            target = getattr(target, "func", None) or getattr(target, "__func__", None)
            if target is None:
                break
        key = code if code is not None else func
        hit = self._call_sids.get(id(key))
        if hit is not None and hit[0] is key:
            return hit[1]
        if code is not None:
            frame = Frame(getattr(code, "co_qualname", None) or code.co_name, code.co_filename, code.co_firstlineno)
        else:
            frame = Frame(getattr(func, "__qualname__", None) or type(func).__qualname__, "", 0)
        fid = self._intern(frame)
        sid = self._stack_id([fid]) if fid >= 0 else self._overflow_sid()
        if len(self._call_sids) < 4096:
            self._call_sids[id(key)] = (key, sid)
        return sid

    def _new_stack(self, key: Tuple[int, ...]) -> int:
        """Stack id of a stack key from the C walk (frame ids root first), interned if new."""
        return self._stack_id(list(reversed(key)))

    def _remember_raw(self, ids: Sequence[int], sid: int) -> None:
        if self._raw_frames + len(ids) // 2 > RAW_CACHE_FRAMES:
            self._raw.clear()
            self._raw_frames = 0
        self._raw[ids if type(ids) is tuple else tuple(ids)] = sid
        self._raw_frames += len(ids) // 2

    def _stack_id(self, fids: List[int]) -> int:
        fids.reverse()  # root first
        if len(fids) > self.max_depth:
            del fids[self.max_depth:]
            fids.append(self._intern(Frame(TRUNCATED_FUNCTION), force=True))
        key = tuple(fids)
        sid = self._stack_ids.get(key)
        if sid is None:
            if len(self._stacks) >= self.max_stacks:
                return self._overflow_sid()
            sid = self._stack_ids[key] = len(self._stacks)
            self._stacks.append(key)
        return sid

    def _intern(self, frame: Frame, force: bool = False) -> int:
        fid = self._frame_ids.get(frame)
        if fid is None:
            if len(self._frames) >= self.max_frames and not force:
                return -1
            fid = self._frame_ids[frame] = len(self._frames)
            self._frames.append(frame)
        return fid

    def _overflow_sid(self) -> int:
        if self._ovf_sid < 0:
            key = (self._intern(Frame(OVERFLOW_FUNCTION), force=True),)
            sid = self._stack_ids.get(key)
            if sid is None:
                sid = self._stack_ids[key] = len(self._stacks)
                self._stacks.append(key)
            self._ovf_sid = sid
        return self._ovf_sid

    def frames_of(self, stack_id: int) -> List[Frame]:
        """Root-first frames of one of this sampler's stack ids (valid until the next reset())."""
        frames = self._frames
        return [frames[i] for i in self._stacks[stack_id]]
