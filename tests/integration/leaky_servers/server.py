"""MCP servers with known memory behaviour, for the leak detector's tests and benchmark.

``python server.py KIND`` with KIND one of:

* ``leak``      ``leaky`` keeps 256 bytes per call (the seeded line is marked ``SEEDED LEAK``);
                ``fine`` allocates 64 KiB per call and keeps nothing.
* ``clean``     ``echo`` and ``work`` (transient lists and dicts); nothing kept.
* ``warmup``    ``lookup`` builds a 2 MiB table on its first call, then only reads it.
* ``retention`` ``churn`` allocates 5 000 small dicts per call and keeps every 64th in a bounded
                deque (1 024): live memory is flat once it is full, the allocator keeps the rest.
* ``cache``     ``cached`` puts a new 1 KiB entry per call into an LRU cache of 30 entries.
"""

from __future__ import annotations

import collections
import sys

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

RO = ToolAnnotations(readOnlyHint=True)
_KEPT: list = []
_TABLE: dict = {}
_SURVIVORS: collections.deque = collections.deque(maxlen=1024)
_CACHE: "collections.OrderedDict[int, bytes]" = collections.OrderedDict()
_COUNTER = [0]


async def leaky(n: int = 1) -> int:
    """Keep 256 bytes per call."""
    _KEPT.append(bytes(256))  # SEEDED LEAK
    return len(_KEPT)


async def fine(kib: int = 64) -> int:
    """Allocate kib KiB and keep nothing."""
    chunks = [bytearray(1024) for _ in range(kib)]
    return sum(len(c) for c in chunks)


async def echo(text: str = "hello") -> str:
    """Return the text."""
    return text


async def work(n: int = 2000) -> int:
    """Build and drop some lists and dicts."""
    rows = [{"i": i, "s": str(i)} for i in range(n)]
    return len({r["s"] for r in rows})


async def lookup(key: int = 7) -> int:
    """Build a table once, then read it."""
    if not _TABLE:
        _TABLE.update({i: str(i) * 4 for i in range(40_000)})
    return len(_TABLE.get(key, ""))


async def churn(n: int = 5_000) -> int:
    """Allocate n small dicts, keep every 64th in a bounded deque."""
    batch = [{"i": i, "v": i * 2} for i in range(n)]
    _SURVIVORS.extend(batch[::64])
    return len(_SURVIVORS)


async def cached(size: int = 1024) -> int:
    """Put a new entry into a bounded LRU cache (30 entries)."""
    _COUNTER[0] += 1
    _CACHE[_COUNTER[0]] = bytes(size)
    while len(_CACHE) > 30:
        _CACHE.popitem(last=False)
    return len(_CACHE)


KINDS = {"leak": (leaky, fine), "clean": (echo, work), "warmup": (lookup,), "retention": (churn,),
         "cache": (cached,)}


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "clean"
    server = MCPServer(f"leaky-{kind}", log_level="WARNING")
    for fn in KINDS[kind]:
        server.tool(annotations=RO)(fn)
    server.run("stdio")


if __name__ == "__main__":
    main()
