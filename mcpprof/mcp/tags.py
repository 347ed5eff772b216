"""Request tags: which MCP request a piece of work belongs to, and its bounded labels.

:data:`RequestTag` and :func:`tag_for` are the C extension's (:mod:`mcpprof.mcp._hooks`) where it
is built, else the pure-Python :class:`PyRequestTag` and its ``tag_for``; ``MCPPROF_PURE_PYTHON=1``
chooses the pure-Python ones. Also the error kinds a request ends with. Stdlib only; runs inside
profiled servers.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Optional, Tuple

from ..model import labels as L
from ..native import load as load_extension

LabelSet = Tuple[Tuple[str, str], ...]
_LABEL_CACHE_MAX = 4096
#: (method, target, key) -> (labels, method, target): one shared tuple and name strings per name
_label_cache: Dict[Tuple[str, str, str], Tuple[LabelSet, str, str]] = {}


def _label_entry(method: str, target: str, target_key: str) -> Tuple[LabelSet, str, str]:
    """(labels, method, target) of a request name, cached: what outlives the request (spans, tables)
    then holds one string per name, which a leak check must not see growing."""
    cached = _label_cache.get((method, target, target_key))
    if cached is None:
        pairs = [(L.METHOD, method)]
        if target and target_key:
            pairs.append((target_key, target))
        cached = (tuple(sorted(pairs)), method, target)
        if len(_label_cache) >= _LABEL_CACHE_MAX:
            _label_cache.clear()
        _label_cache[(method, target, target_key)] = cached
    return cached


class PyRequestTag:
    """The MCP request a piece of work belongs to. ``labels`` is the bounded label set
    (method and target); ``request_id`` stays out of it (unbounded). ``cpu_ns``: exact CPU charged
    to it; ``duration_ns`` and ``error`` are set when it ends. (The pure-Python form of
    :data:`RequestTag`.)"""

    __slots__ = ("method", "target", "target_key", "request_id", "session_id", "start_ns", "labels", "cpu_ns",
                 "duration_ns", "error")

    def __init__(self, method: str, target: str = "", target_key: str = "", request_id: str = "",
                 session_id: str = "", start_ns: int = 0):
        self.labels, self.method, self.target = _label_entry(method, target, target_key)
        self.target_key = target_key
        self.request_id = request_id
        self.session_id = session_id
        self.start_ns = start_ns
        self.cpu_ns = 0  # exact CPU charged to this request (its metered steps + worker threads)
        self.duration_ns = 0
        self.error: Optional[str] = None

    @property
    def name(self) -> str:
        return f"{self.method} {self.target}" if self.target else self.method

    def __repr__(self) -> str:
        return f"<RequestTag {self.name} id={self.request_id}>"


_TARGETS = {"tools/call": ("name", L.TOOL), "prompts/get": ("name", L.PROMPT)}


def _py_tag_for(method: str, params: Any, request_id: Any = None, session_id: Any = None) -> Any:
    """Build a tag from a JSON-RPC method and its raw params (dict or model)."""
    target, key = "", ""
    if params is not None:
        spec = _TARGETS.get(method)
        if spec is None and method.startswith("resources/"):
            spec = ("uri", L.RESOURCE_URI)
        if spec is not None:
            value = params.get(spec[0]) if type(params) is dict else getattr(params, spec[0], None)
            key = spec[1]
            if value is not None:
                target = value if type(value) is str else str(value)
    # a string id is copied here (allocated by mcpprof, not by the server's JSON parser): the span
    # ring keeps the last ids, and a leak check must not see the parser's strings kept per call
    rid = "" if request_id is None else (request_id.encode().decode() if type(request_id) is str
                                         else str(request_id))
    return RequestTag(method, target, key, rid,
                      "" if session_id is None else str(session_id), time.perf_counter_ns())


_C = load_extension("mcpprof.mcp._hooks")
#: The request tag type: the C extension's where it is built, else :class:`PyRequestTag`.
RequestTag: Any = _C.RequestTag if _C is not None else PyRequestTag
#: ``tag_for(method, params, request_id=None, session_id=None)``: the tag of a request.
tag_for: Callable[..., Any] = _C.tag_for if _C is not None else _py_tag_for


TOOL_ERROR = "tool_error"


def is_tool_error(result: Any) -> bool:
    """A ``tools/call`` result that reports a tool error (``isError``), as a dict or a model."""
    if type(result) is dict:
        return result.get("isError") is True
    return getattr(result, "is_error", False) is True


def error_kind(exc: BaseException) -> str:
    """The error kind recorded for a request that raised: the JSON-RPC error code, or the class."""
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    if code is not None:
        return str(code)
    if exc.__class__.__name__ == "ValidationError":
        return "-32602"
    return exc.__class__.__qualname__
