"""The bundled example server with one tool made slower: a stand-in for "a build of the same server
that regressed". ``python tests/integration/bench_slow_server.py --slow-us 40 [--tool echo]`` adds a
busy wait of that many microseconds to every call of that tool (default ``echo``); every other
argument goes to the example server's command line. Test and benchmark use only."""

from __future__ import annotations

import argparse
import functools
import sys
import time

from mcpprof.examples import server as example


def spin(us: float) -> None:
    """Busy-wait ``us`` microseconds on this thread (CPU work, like a slower code path)."""
    end = time.perf_counter_ns() + int(us * 1000)
    while time.perf_counter_ns() < end:
        pass


def slowed(fn, us: float):
    @functools.wraps(fn)
    async def wrapper(*args, **kwargs):
        spin(us)
        result = fn(*args, **kwargs)
        return await result if hasattr(result, "__await__") else result

    return wrapper


def main() -> None:
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--slow-us", type=float, default=0.0)
    ap.add_argument("--tool", default="echo")
    args, rest = ap.parse_known_args()
    if args.slow_us > 0:
        tools = tuple(slowed(fn, args.slow_us) if fn.__name__ == args.tool else fn for fn in example.TOOLS)
        example.TOOLS = tools
    example.main(rest)


if __name__ == "__main__":
    sys.exit(main())
