"""Slowest requests: keep the samples of the N slowest requests per tool, so a p99 outlier can be
opened as its own flame graph.

The agent's sampler calls :attr:`Sampler.sample_hook` for every sample; the recorder finds the
request running on that thread (the tagger's ``tag_of``, read with the sample's frames; else
:func:`mcpprof.mcp.context.tag_for_thread`) and adds the sample
to that request's small buffer (stack ids, not frames: a dict update per sample). When the request
ends its buffer is either dropped or, if the request is among the ``keep`` slowest of its kind so
far, resolved to frames and kept. ``contribute`` puts them into ``profile.extras["slowest"]``:

    {"requests": [{"method", "target", "request_id", "duration_ns", "start_ns", "error"}, ...],
     "profile": <native profile dict; samples labelled with jsonrpc.request.id>}

:func:`slow_request_profile` turns one of them back into a :class:`Profile`. Memory is bounded:
at most ``max_inflight`` request buffers of at most ``max_keys`` (stack, labels) entries, and
``keep`` requests per (method, target). Only the in-process sampler (``sample`` mode) has the
hook; with other collectors the recorder does nothing. Runs inside the server: stdlib only.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional, Tuple

from ..model import labels as L
from ..model.profile import Frame, LabelSet, Profile, ProfileBuilder

KEEP = 5
MAX_INFLIGHT = 4096
MAX_KEYS = 2048


class _Kept:
    __slots__ = ("duration_ns", "tag", "error", "samples")

    def __init__(self, duration_ns: int, tag: Any, error: Optional[str],
                 samples: List[Tuple[List[Frame], LabelSet, List[int]]]):
        self.duration_ns, self.tag, self.error, self.samples = duration_ns, tag, error, samples


class SlowestRecorder:
    """Agent recorder (``RECORDERS["slowest"]``); see the module docstring."""

    def __init__(self, agent: Any, keep: int = KEEP, max_inflight: int = MAX_INFLIGHT):
        self.agent = agent
        self.keep, self.max_inflight = max(1, int(keep)), int(max_inflight)
        self._bufs: Dict[Any, Dict[Tuple[int, LabelSet], List[int]]] = {}
        self._kept: Dict[Tuple[str, str], List[_Kept]] = {}
        self._lock = threading.Lock()
        self._sampler: Any = None
        self._sample_types: List[Any] = []
        self.dropped = 0

    def start(self) -> None:
        from ..mcp import context

        sampler = getattr(self.agent, "sampler", None)
        if sampler is None or not hasattr(sampler, "sample_hook") or not hasattr(sampler, "frames_of"):
            return  # not the in-process sampler: nothing to hook
        self._sampler = sampler
        self._sample_types = list(sampler.sample_types)
        self._tag_for_thread = getattr(getattr(sampler, "tagger", None), "tag_of", None) or context.tag_for_thread
        sampler.sample_hook = self._on_sample
        context.request_sinks.append(self._on_requests)

    def stop(self) -> None:
        from ..mcp import context

        if self._sampler is not None and self._sampler.sample_hook == self._on_sample:
            self._sampler.sample_hook = None
        try:
            context.request_sinks.remove(self._on_requests)
        except ValueError:
            pass

    # -- hot path (sampler thread or SIGALRM handler) -------------------------------------------
    def _on_sample(self, ident: int, sid: int, labels: LabelSet, wall: int, cpu: int) -> None:
        tag = self._tag_for_thread(ident)
        if tag is None:
            return
        buf = self._bufs.get(tag)
        if buf is None:
            if len(self._bufs) >= self.max_inflight:
                self.dropped += 1
                return
            buf = self._bufs[tag] = {}
        key = (sid, labels)
        acc = buf.get(key)
        if acc is None:
            if len(buf) >= MAX_KEYS:
                return
            acc = buf[key] = [0, 0, 0]
        acc[0] += 1
        acc[1] += wall
        acc[2] += cpu

    # -- request end (event-loop thread) ----------------------------------------------------------
    def _on_requests(self, tags: List[Any]) -> None:
        bufs, kept_by_key, keep = self._bufs, self._kept, self.keep
        for tag in tags:
            buf = bufs.pop(tag, None) if bufs else None
            kept = kept_by_key.get((tag.method, tag.target or ""))
            if kept is None or len(kept) < keep or tag.duration_ns > kept[-1].duration_ns:
                self._keep(tag, buf)

    def _keep(self, tag: Any, buf: Optional[Dict[Tuple[int, LabelSet], List[int]]]) -> None:
        key, duration_ns, error = (tag.method, tag.target or ""), tag.duration_ns, tag.error
        samples = []
        for (sid, labels), values in list((buf or {}).items()):
            try:
                samples.append((self._sampler.frames_of(sid), labels, list(values)))
            except Exception:
                continue
        with self._lock:
            kept = self._kept.setdefault(key, [])
            kept.append(_Kept(duration_ns, tag, error, samples))
            kept.sort(key=lambda k: -k.duration_ns)
            del kept[self.keep:]

    # -- results ----------------------------------------------------------------------------------
    def slowest(self) -> Tuple[List[Dict[str, Any]], Profile]:
        builder = ProfileBuilder(self._sample_types or [])
        rows = []
        with self._lock:
            groups = [list(v) for v in self._kept.values()]
        for kept in groups:
            for k in kept:
                t = k.tag
                rows.append({"method": t.method, "target": t.target, "request_id": t.request_id,
                             "duration_ns": k.duration_ns, "start_ns": t.start_ns, "error": k.error})
                for frames, labels, values in k.samples:
                    lab = tuple(sorted(labels + ((L.REQUEST_ID, t.request_id),)))
                    builder.add(frames, values, lab)
        profile = builder.build()
        profile.metadata = {"collector": "sample", "view": f"samples of the {self.keep} slowest requests per kind"}
        return rows, profile

    def contribute(self, profile: Profile, limit: Optional[int] = None) -> None:
        if self._sampler is None:
            return
        from ..model.io import to_dict

        rows, slow = self.slowest()
        profile.extras["slowest"] = {"keep": self.keep, "requests": rows, "profile": to_dict(slow)}


def slowest_requests(profile: Profile) -> List[Dict[str, Any]]:
    """The slowest requests recorded in ``profile`` (slowest first)."""
    data = (profile.extras or {}).get("slowest") or {}
    return sorted(data.get("requests") or [], key=lambda r: -int(r.get("duration_ns", 0)))


def slow_request_profile(profile: Profile, request_id: Optional[str] = None) -> Optional[Profile]:
    """The samples of one slow request (by JSON-RPC id), or of all of them; None if not recorded."""
    data = (profile.extras or {}).get("slowest") or {}
    if not data.get("profile"):
        return None
    from ..model.io import from_dict

    slow = from_dict(data["profile"])
    if request_id is None:
        return slow
    from ..analyse.ops import filter_samples

    return filter_samples(slow, labels={L.REQUEST_ID: str(request_id)})


__all__ = ["SlowestRecorder", "slowest_requests", "slow_request_profile", "KEEP"]


def factory(agent: Any) -> SlowestRecorder:
    """Agent recorder factory (``RECORDERS["slowest"]``)."""
    return SlowestRecorder(agent)
