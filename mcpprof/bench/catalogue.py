"""Built-in workloads, adapted from the Erlang plan's baseline workloads to MCP over stdio/HTTP.

The plan timed JSON encoding in-process and called it "tool call"; these make real round trips.
Tool workloads call ``echo``-like tools with one text argument (the bundled example server's
``echo``; pass another tool name for another server); the payload classes replace the plan's
simple / medium (5 params) / complex (20 params) argument sets by sizes: 5 B, 1 KiB, 10 KiB of
structured text, and 256 KiB for ``large-payload``. ``*`` targets resolve to the server's first
listed resource or prompt.

=====================  =====================================================================
name                   what one call is
=====================  =====================================================================
tool-simple            ``tools/call echo`` with ``"hello"``, one in flight (the gate's default)
tool-medium            the same with 1 KiB of text
tool-complex           the same with 10 KiB of JSON-looking text (nested, escaped)
large-payload          the same with 256 KiB of text (transport and JSON cost)
resources-list         ``resources/list``
resources-read         ``resources/read`` of the first resource
prompts-get            ``prompts/get`` of the first prompt
tools-list             ``tools/list``
mix                    weighted: echo 6, tools/list 1, resources/read 2, prompts/get 1
session-churn          open a session (a server process on stdio), initialize, one call, close
many-sessions          16 sessions at once (16 server processes on stdio), one call in flight each
=====================  =====================================================================
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Callable, Dict, List, Optional, Sequence

from ..errors import UsageError
from .workload import FIRST, PROMPTS_GET, RESOURCES_READ, TOOLS_CALL, Step, Workload

#: What ``mcpprof bench`` runs with no ``--workload``: one of each kind of request.
DEFAULT_SET = ("tool-simple", "resources-read", "prompts-get", "tools-list", "mix")


def _complex_text(size: int) -> str:
    item = {"id": 0, "name": "item", "tags": ["a", "b", "c"], "nested": {"x": 1.5, "y": [1, 2, 3], "ok": True},
            "note": "quote \" backslash \\ unicode \u00e9"}
    parts: List[str] = []
    i = 0
    while sum(len(p) for p in parts) < size:
        parts.append(json.dumps({**item, "id": i}))
        i += 1
    return ("[" + ",".join(parts) + "]")[:size]


def _tool(tool: str, text: str) -> Step:
    return Step(TOOLS_CALL, tool, {"text": text})


def _builders(tool: str, arg: Optional[str]) -> Dict[str, Callable[[], Workload]]:
    def call(text: str) -> Step:
        return _tool(tool, arg if arg is not None else text)

    return {
        "tool-simple": lambda: Workload("tool-simple", [call("hello")], "one small tools/call, one in flight"),
        "tool-medium": lambda: Workload("tool-medium", [call("m" * 1024)], "tools/call with 1 KiB of text"),
        "tool-complex": lambda: Workload("tool-complex", [call(_complex_text(10 * 1024))],
                                         "tools/call with 10 KiB of structured text"),
        "large-payload": lambda: Workload("large-payload", [call("L" * (256 * 1024))],
                                          "tools/call with 256 KiB of text", requests=200, warmup=20),
        "resources-list": lambda: Workload("resources-list", [Step("resources/list")], "resources/list"),
        "resources-read": lambda: Workload("resources-read", [Step(RESOURCES_READ, FIRST)],
                                           "resources/read of the first resource"),
        "prompts-get": lambda: Workload("prompts-get", [Step(PROMPTS_GET, FIRST)], "prompts/get of the first prompt"),
        "tools-list": lambda: Workload("tools-list", [Step("tools/list")], "tools/list"),
        "mix": lambda: Workload("mix", [replace(call("hello"), weight=6.0), Step("tools/list", weight=1.0),
                                        Step(RESOURCES_READ, FIRST, weight=2.0), Step(PROMPTS_GET, FIRST, weight=1.0)],
                                "weighted mix of tool calls, lists, reads and prompts", concurrency=4),
        "session-churn": lambda: Workload("session-churn", [call("hello")],
                                          "open a session, initialize, one call, close; latency of the whole",
                                          mode="churn", requests=20, warmup=2, runs=3),
        "many-sessions": lambda: Workload("many-sessions", [call("hello")],
                                          "16 concurrent sessions, one call in flight each",
                                          sessions=16, concurrency=16, requests=2000, warmup=200, runs=3),
    }


NAMES = tuple(_builders("echo", None))


def get(name: str, tool: str = "echo", argument: Optional[str] = None) -> Workload:
    """The built-in workload ``name``; ``tool`` replaces ``echo`` (called with ``{"text": ...}``)."""
    builders = _builders(tool, argument)
    if name not in builders:
        raise UsageError(f"no built-in workload {name!r}; choose from: {', '.join(NAMES)} (or pass a workload file)")
    return builders[name]()


def select(names: Sequence[str], tool: str = "echo") -> List[Workload]:
    return [get(n, tool) for n in (names or DEFAULT_SET)]


__all__ = ["NAMES", "DEFAULT_SET", "get", "select"]
