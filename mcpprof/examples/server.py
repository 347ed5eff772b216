"""The bundled example MCP server: a few small tools with different cost profiles.

Run it with ``python -m mcpprof.examples.server`` (stdio) or
``python -m mcpprof.examples.server --transport http --port 8765`` (streamable HTTP on loopback).
``mcpprof profile`` with no server command profiles this server.

Tools (all read-only):

* ``echo``      returns its text: the cost of the MCP plumbing alone.
* ``cpu_async`` ``async def``: naive ``fib(n)`` on the event-loop thread.
* ``cpu_sync``  plain ``def``: the SDK runs it on a worker thread; ``fib(n)`` again.
* ``spawn``     starts an asyncio task that computes ``fib(n)`` and awaits it.
* ``alloc``     allocates ``kib`` KiB in 1 KiB chunks (``keep`` > 0 retains chunks: a leak).
* ``sleep_io``  awaits ``asyncio.sleep``: wall time without CPU.

plus the resource ``example://config`` and the prompt ``greet``.

The work each tool does lives in a module-level function (``fib``, ``make_chunks``) so it is easy
to find in a flame graph. With ``--burn-report FILE`` every working tool measures its own thread
CPU time and appends ``{"tool", "cpu_ns", "thread"}`` as one JSON line to FILE: the truth a
profile's per-tool attribution can be checked against.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import sys
import threading
import time
from typing import Iterator

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

READ_ONLY = ToolAnnotations(readOnlyHint=True)

# -- the work -------------------------------------------------------------------------------------


def fib(n: int) -> int:
    """Naive recursive Fibonacci: pure-Python CPU work (fib(20) is about 1 ms)."""
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def make_chunks(kib: int) -> list[bytearray]:
    """Allocate ``kib`` KiB as 1 KiB bytearrays."""
    return [bytearray(1024) for _ in range(kib)]


_RETAINED: list[bytearray] = []  # what ``alloc(keep=...)`` leaks on purpose

# -- the burn report: CPU time measured inside the tools --------------------------------------------

_report_fd: int | None = None


@contextlib.contextmanager
def burn_meter(tool: str) -> Iterator[None]:
    """Measure the calling thread's CPU time in the block; report it if ``--burn-report`` is on."""
    start = time.thread_time_ns()
    try:
        yield
    finally:
        cpu_ns = time.thread_time_ns() - start
        if _report_fd is not None:
            line = {"tool": tool, "cpu_ns": cpu_ns, "thread": threading.current_thread().name}
            os.write(_report_fd, (json.dumps(line) + "\n").encode())  # one write: atomic on O_APPEND


# -- the tools -----------------------------------------------------------------------------------


async def echo(text: str = "hello") -> str:
    """Return the text unchanged."""
    return text


async def cpu_async(n: int = 20) -> int:
    """CPU-bound on the event-loop thread: naive fib(n)."""
    with burn_meter("cpu_async"):
        return fib(n)


def cpu_sync(n: int = 20) -> int:
    """CPU-bound in a plain function, which the SDK runs on a worker thread: naive fib(n)."""
    with burn_meter("cpu_sync"):
        return fib(n)


async def fib_task(n: int) -> int:
    """The body of the task ``spawn`` starts."""
    with burn_meter("spawn"):
        return fib(n)


async def spawn(n: int = 20) -> int:
    """Start an asyncio task that computes fib(n), and await it."""
    return await asyncio.create_task(fib_task(n))


async def alloc(kib: int = 256, keep: int = 0) -> int:
    """Allocate kib KiB in 1 KiB chunks and return the byte count; keep > 0 retains that many chunks."""
    with burn_meter("alloc"):
        chunks = make_chunks(kib)
        if keep > 0:
            _RETAINED.extend(chunks[:keep])
        return sum(len(c) for c in chunks)


async def sleep_io(ms: int = 10) -> str:
    """Wait ms milliseconds without using CPU."""
    await asyncio.sleep(ms / 1000)
    return f"slept {ms} ms"


def config() -> str:
    """The example server's configuration, as JSON."""
    return json.dumps({"name": "mcpprof-example", "tools": [t.__name__ for t in TOOLS]})


def greet(name: str = "world") -> str:
    """Ask the model to greet someone."""
    return f"Please greet {name} warmly."


TOOLS = (echo, cpu_async, cpu_sync, spawn, alloc, sleep_io)


def build_server() -> MCPServer:
    """The example server with every tool, the resource and the prompt registered."""
    server = MCPServer("mcpprof-example", log_level="WARNING")
    for fn in TOOLS:
        server.tool(annotations=READ_ONLY)(fn)
    server.resource("example://config", mime_type="application/json")(config)
    server.prompt()(greet)
    return server


# -- command line ----------------------------------------------------------------------------------


def _loopback(host: str) -> str:
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise argparse.ArgumentTypeError(f"{host!r} is not a loopback address; the example binds loopback only")
    return host


def _exit_after(seconds: float) -> None:
    def stop() -> None:
        sys.stderr.write(f"example server: --max-seconds {seconds:g} reached, exiting\n")
        sys.stderr.flush()
        os._exit(0)

    timer = threading.Timer(seconds, stop)
    timer.daemon = True
    timer.start()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m mcpprof.examples.server", description=__doc__.split("\n")[0])
    ap.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    ap.add_argument("--host", type=_loopback, default="127.0.0.1", help="HTTP: loopback address to bind")
    ap.add_argument("--port", type=int, default=8765, help="HTTP: port (default 8765)")
    ap.add_argument("--json-response", action="store_true", help="HTTP: answer with JSON, not SSE")
    ap.add_argument("--max-seconds", type=float, default=None, help="exit after this many seconds")
    ap.add_argument("--burn-report", metavar="FILE", help="append one JSON line per working tool call")
    args = ap.parse_args(argv)

    global _report_fd
    if args.burn_report:
        _report_fd = os.open(args.burn_report, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    if args.max_seconds:
        _exit_after(args.max_seconds)
    server = build_server()
    if args.transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=args.host, port=args.port, json_response=args.json_response)


if __name__ == "__main__":
    main()
