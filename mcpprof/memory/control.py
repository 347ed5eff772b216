"""The memory control channel: a folder the launcher and a server's agent share.

The job writes ``<dir>/<pid>/req-<n>.json`` (atomically); a service thread in the server (service
name ``memctl``) polls for it every 20 ms, runs the command and answers with ``rep-<n>.json``. It
needs no socket and no extra thread on the event loop; readings are taken from its own thread
(under the GIL, so a ``gc.collect()`` or a snapshot briefly pauses the server). Commands:

``ping``; ``tracemalloc_start {nframe}``; ``tracemalloc_stop``; ``sampled_start {interval, max_frames}``
(sampled allocations, the optional C extension; fails with the reason when it is not built for this
Python); ``sampled_stop``; ``reading {collect}`` (traced bytes,
RSS, gc objects, every traceback's bytes and count); ``snapshot {path}`` (an in-use profile from whichever
of tracemalloc or sampled runs, written as ``.mcpprof``); ``report {trim}`` (process memory and fragmentation);
``memray_start {path, native, python_allocators}`` / ``memray_stop``.

Server side: stdlib only, never writes to stdout, a failed command gets an error reply.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import threading
import time
from typing import Any, Callable, Dict, Optional
from ..atomic import write_atomic

ENV_DIR = "MCPPROF_MEMCTL"
POLL_S = 0.02


def _write_json(path: str, data: Any) -> None:
    write_atomic(path, json.dumps(data))


class MemoryControl:
    """The server side: a polling thread that runs memory commands."""

    def __init__(self, agent: Any = None, folder: Optional[str] = None):
        base = folder or os.environ.get(ENV_DIR) or os.path.join(getattr(getattr(agent, "config", None), "out_dir", "")
                                                                  or tempfile.gettempdir(), "memctl")
        self.dir = os.path.join(base, str(os.getpid()))
        self.agent = agent
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._collector: Any = None
        self._tracker: Any = None

    def start(self) -> None:
        os.makedirs(self.dir, exist_ok=True)
        _write_json(os.path.join(self.dir, "ready.json"), {"pid": os.getpid(), "time_ns": time.time_ns()})
        self._thread = threading.Thread(target=self._run, name="mcpprof-memctl", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._tracker is not None:
            try:
                self._memray_stop({})
            except Exception:
                pass

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                names = sorted(n for n in os.listdir(self.dir) if n.startswith("req-") and n.endswith(".json"))
            except OSError:
                continue
            for name in names:
                self._serve(name)

    def _serve(self, name: str) -> None:
        path = os.path.join(self.dir, name)
        reply_path = os.path.join(self.dir, "rep-" + name[4:])
        try:
            with open(path) as fh:
                req = json.load(fh)
            os.unlink(path)
            handler = getattr(self, "_" + str(req.get("cmd", "")), None)
            if handler is None or str(req.get("cmd", "")).startswith("_"):
                raise ValueError(f"unknown command {req.get('cmd')!r}")
            reply = {"ok": True, "result": handler(req.get("args") or {})}
        except Exception as exc:
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        try:
            _write_json(reply_path, reply)
        except Exception:
            pass

    # -- commands ------------------------------------------------------------------------------
    def _ping(self, args: Dict[str, Any]) -> Dict[str, Any]:
        return {"pid": os.getpid()}

    def _tracemalloc_start(self, args: Dict[str, Any]) -> Dict[str, Any]:
        from ..collect.tracemalloc_collector import TracemallocCollector

        if self._collector is not None and not isinstance(self._collector, TracemallocCollector):
            raise RuntimeError(f"{self._collector.name} is already running")
        if self._collector is None:
            self._collector = TracemallocCollector(nframe=int(args.get("nframe", 1)))
        self._collector.start()
        return {"nframe": self._collector.nframe}

    def _tracemalloc_stop(self, args: Dict[str, Any]) -> Dict[str, Any]:
        if self._collector is not None:
            self._collector.stop()
            self._collector = None
        return {}

    def _sampled_start(self, args: Dict[str, Any]) -> Dict[str, Any]:
        from ..collect.allocsample_collector import DEFAULT_INTERVAL, DEFAULT_MAX_FRAMES, SampledCollector

        if self._collector is not None and not isinstance(self._collector, SampledCollector):
            raise RuntimeError(f"{self._collector.name} is already running")
        collector = self._collector or SampledCollector(
            interval_bytes=int(args.get("interval") or DEFAULT_INTERVAL),
            max_frames=int(args.get("max_frames") or DEFAULT_MAX_FRAMES))
        collector.start()  # raises with the reason when the extension is not built for this Python
        self._collector = collector
        return {"interval": collector.interval_bytes, "max_frames": collector.max_frames}

    def _sampled_stop(self, args: Dict[str, Any]) -> Dict[str, Any]:
        if self._collector is not None and self._collector.name == "sampled":
            self._collector.stop()
            self._collector = None
        return {}

    def _reading(self, args: Dict[str, Any]) -> Dict[str, Any]:
        import gc
        import tracemalloc

        from ..collect.tracemalloc_collector import site_readings
        from .procmem import process_memory

        t0 = time.perf_counter()
        out: Dict[str, Any] = {}
        if tracemalloc.is_tracing():
            out.update(site_readings(collect=bool(args.get("collect", True))))
        elif args.get("collect", True):
            gc.collect()
        mem = process_memory()
        out.update(rss=mem.get("rss", 0), rss_anon=mem.get("rss_anon", 0), gc_objects=len(gc.get_objects()))
        out["reading_s"] = round(time.perf_counter() - t0, 4)
        return out

    def _snapshot(self, args: Dict[str, Any]) -> Dict[str, Any]:
        from ..model.io import save

        if self._collector is None:
            raise RuntimeError("no memory backend was started (tracemalloc_start or sampled_start)")
        profile = self._collector.snapshot(collect=bool(args.get("collect", True)))
        save(profile, args["path"])
        reply = {"path": args["path"], "metadata": profile.metadata}
        if args.get("allocated_path") and hasattr(self._collector, "allocated"):
            save(self._collector.allocated(), args["allocated_path"])  # sampled: allocated since start
            reply["allocated_path"] = args["allocated_path"]
        return reply

    def _report(self, args: Dict[str, Any]) -> Dict[str, Any]:
        from .fragmentation import measure

        return measure(trim=bool(args.get("trim", False))).to_dict()

    def _memray_start(self, args: Dict[str, Any]) -> Dict[str, Any]:
        import memray  # the memray extra, in the server's environment

        if self._tracker is not None:
            raise RuntimeError("memray is already tracking")
        tracker = memray.Tracker(args["path"], native_traces=bool(args.get("native", False)),
                                 trace_python_allocators=bool(args.get("python_allocators", False)),
                                 follow_fork=False)
        self._on_loop_thread(tracker.__enter__)
        self._tracker = tracker
        return {"path": args["path"]}

    def _memray_stop(self, args: Dict[str, Any]) -> Dict[str, Any]:
        tracker, self._tracker = self._tracker, None
        if tracker is None:
            raise RuntimeError("memray is not tracking")
        self._on_loop_thread(lambda: tracker.__exit__(None, None, None))
        return {}

    def _on_loop_thread(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Run ``fn`` on the server's event-loop thread when one is known (memray tracks the thread
        that enters its Tracker most completely), else here."""
        from ..mcp import context

        loop = next((lp for lp in list(context.loops.values()) if lp.is_running()), None)
        if loop is None:
            return fn()
        done = threading.Event()
        box: Dict[str, Any] = {}

        def run() -> None:
            try:
                box["result"] = fn()
            except BaseException as exc:
                box["error"] = exc
            done.set()

        loop.call_soon_threadsafe(run)
        if not done.wait(timeout):
            raise TimeoutError("the event loop did not run the command in time")
        if "error" in box:
            raise box["error"]
        return box.get("result")


def factory(agent: Any) -> MemoryControl:
    return MemoryControl(agent)


# -- the job side -------------------------------------------------------------------------------


class ControlError(Exception):
    """A command failed in the server, or the server did not answer."""


class ControlClient:
    """Sends commands to the ``memctl`` service of one server process."""

    def __init__(self, folder: str, pid: Optional[int] = None):
        self.base = folder
        self.pid = pid
        self._n = 0

    def _dir(self) -> Optional[str]:
        if self.pid is not None:
            d = os.path.join(self.base, str(self.pid))
            return d if os.path.exists(os.path.join(d, "ready.json")) else None
        try:
            ready = [n for n in os.listdir(self.base) if os.path.exists(os.path.join(self.base, n, "ready.json"))]
        except OSError:
            return None
        if ready:
            self.pid = int(sorted(ready)[-1])
            return os.path.join(self.base, str(self.pid))
        return None

    async def wait_ready(self, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while self._dir() is None:
            if time.monotonic() > deadline:
                raise ControlError("the server's memory control channel did not start (is the agent loaded?)")
            await asyncio.sleep(POLL_S)
        return int(self.pid or 0)

    async def call(self, cmd: str, timeout: float = 120.0, **args: Any) -> Any:
        folder = self._dir()
        if folder is None:
            raise ControlError("the server's memory control channel is not ready")
        self._n += 1
        name = f"{self._n:08d}.json"
        _write_json(os.path.join(folder, "req-" + name), {"cmd": cmd, "args": args})
        reply_path = os.path.join(folder, "rep-" + name)
        deadline = time.monotonic() + timeout
        while not os.path.exists(reply_path):
            if time.monotonic() > deadline:
                raise ControlError(f"the server did not answer {cmd!r} within {timeout:g} s")
            await asyncio.sleep(POLL_S / 2)
        with open(reply_path) as fh:
            reply = json.load(fh)
        os.unlink(reply_path)
        if not reply.get("ok"):
            raise ControlError(f"{cmd} failed in the server: {reply.get('error')}")
        return reply.get("result")
