"""Label keys carried by samples and requests.

The names follow the OpenTelemetry semantic conventions for MCP and GenAI that the MCP SDKs
already emit on their spans, so mcpprof's labels join with existing traces.
"""

from __future__ import annotations

METHOD = "mcp.method.name"
TOOL = "gen_ai.tool.name"
PROMPT = "gen_ai.prompt.name"
RESOURCE_URI = "mcp.resource.uri"
REQUEST_ID = "jsonrpc.request.id"
SESSION_ID = "mcp.session.id"
THREAD_NAME = "thread.name"
THREAD_ID = "thread.id"
PROCESS_PID = "process.pid"
PHASE = "mcpprof.phase"  # "startup" before the server's first request

STARTUP = "startup"

#: Label keys that name what a request targets, in the order a view should prefer them.
TARGET_KEYS = (TOOL, PROMPT, RESOURCE_URI)

#: Keys whose values are unbounded (one per request or session). They are kept out of the
#: default aggregate and only appear where a view needs them (e.g. the slowest requests).
UNBOUNDED_KEYS = frozenset({REQUEST_ID, SESSION_ID})

#: Display name of the bucket holding work that ran outside any MCP request.
OUTSIDE_REQUESTS = "(transport & dispatch)"
#: Display name of the work done before the first request (imports, server construction).
STARTUP_BUCKET = "(startup)"


def request_name(labels: dict[str, str]) -> str:
    """Human name of the request a label set belongs to: ``tools/call echo``, or the bucket name."""
    method = labels.get(METHOD)
    if not method:
        return STARTUP_BUCKET if labels.get(PHASE) == STARTUP else OUTSIDE_REQUESTS
    for key in TARGET_KEYS:
        target = labels.get(key)
        if target:
            return f"{method} {target}"
    return method
