"""What every framework server shares: the work, the burn report (CPU measured inside the tools:
the truth attribution is checked against) and the command line. Imported by the server scripts
beside it; it imports no MCP framework itself."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import threading
import time
from typing import Any, Iterator, Optional

_report_fd: Optional[int] = None


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


@contextlib.contextmanager
def burn_meter(tool: str) -> Iterator[None]:
    """Measure this thread's CPU in the block; append ``{"tool", "cpu_ns", "thread"}`` to the report."""
    start = time.thread_time_ns()
    try:
        yield
    finally:
        if _report_fd is not None:
            line = {"tool": tool, "cpu_ns": time.thread_time_ns() - start,
                    "thread": threading.current_thread().name}
            os.write(_report_fd, (json.dumps(line) + "\n").encode())


async def cpu_async(n: int = 18) -> int:
    """fib(n) in an async tool (on the event loop)."""
    with burn_meter("cpu_async"):
        return fib(n)


def cpu_sync(n: int = 18) -> int:
    """fib(n) in a plain def tool (loop thread or worker thread, as the framework decides)."""
    with burn_meter("cpu_sync"):
        return fib(n)


async def _fib_task(n: int) -> int:
    with burn_meter("spawn"):
        return fib(n)


async def spawn(n: int = 18) -> int:
    """fib(n) in an asyncio task the tool starts and awaits."""
    return await asyncio.create_task(_fib_task(n))


def where() -> str:
    """The name of the thread a sync tool runs on."""
    return threading.current_thread().name


async def echo(text: str = "x") -> str:
    return text


async def boom() -> str:
    """Always fails: the client gets an ``isError`` result."""
    raise ValueError("boom")


def config() -> str:
    return json.dumps({"answer": 42})


def greet(name: str = "world") -> str:
    return f"Please greet {name}."


TOOLS = (cpu_async, cpu_sync, spawn, where, echo, boom)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--burn-report")
    ap.add_argument("--instrument", metavar="OUT_DIR",
                    help="no launcher: start the agent and call mcpprof.instrument(server) in code")
    args = ap.parse_args()
    global _report_fd
    if args.burn_report:
        _report_fd = os.open(args.burn_report, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    return args


def instrument_in_code(server: Any, out_dir: str) -> None:
    """What a user does without ``mcpprof run``: start the agent now and instrument the server
    (with exact CPU per request, which the test checks for every framework)."""
    import mcpprof
    from mcpprof.launch.agent import start
    from mcpprof.launch.config import AgentConfig

    start(AgentConfig(out_dir=out_dir, start="now", quiet=True, flush_s=0.5, exact_cpu=True))
    mcpprof.instrument(server, exact_cpu=True)
