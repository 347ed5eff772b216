"""Run workloads against a server and produce result documents (:mod:`.results`).

One *run* = a fresh server (unless the target is only a URL), the handshake, ``warmup`` calls,
then the measured calls (closed loop: ``concurrency`` in flight; open loop: a fixed rate; churn:
a whole session per call). Around the measured window it reads the server's CPU from its process
CPU clock (``clock_gettime`` on the pid's clock id: ns, all threads; psutil's 10 ms ticks only as
a fallback), this process's CPU, the server's memory (``/proc/<pid>/smaps_rollup``) and the load.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import TargetError
from ..launch.config import AgentConfig
from ..launch.run import agent_env
from . import results
from .client import CallError, StdioClient
from .http_client import HttpClient
from .openloop import Tally, open_loop
from .sdk_client import SdkClient
from .workload import Target, Workload, check_against_server

_clock = time.perf_counter_ns
Progress = Callable[[str, int, int], None]


# -- measuring the server from outside ------------------------------------------------------------


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


try:
    _libc: Any = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover
    _libc = None


def process_cpu_ns(pid: int) -> Tuple[Optional[int], str]:
    """CPU time (ns, all threads) process ``pid`` has used, and where it came from."""
    if _libc is not None:
        ts = _Timespec()
        if _libc.clock_gettime(ctypes.c_int(((~pid) << 3) | 2), ctypes.byref(ts)) == 0:
            return ts.tv_sec * 1_000_000_000 + ts.tv_nsec, "clock"
    try:
        import psutil

        t = psutil.Process(pid).cpu_times()
        return int((t.user + t.system) * 1e9), "psutil"
    except Exception:
        return None, "none"


def server_memory(pid: int) -> Optional[Dict[str, int]]:
    """RSS, USS (private pages), PSS and anonymous RSS of ``pid`` in bytes (Linux), else None."""
    out: Dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            fields = {k.strip(): int(v.split()[0]) * 1024 for k, v in (ln.split(":", 1) for ln in f if ":" in ln
                                                                        and ln.split(":", 1)[1].strip()[:1].isdigit())}
        out["rss_bytes"] = fields.get("Rss", 0)
        out["pss_bytes"] = fields.get("Pss", 0)
        out["uss_bytes"] = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    out["rss_anon_bytes"] = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return out or None


# -- starting a target ----------------------------------------------------------------------------


@dataclass
class Server:
    """A connected server: its client(s), the pids to measure, and how to stop it."""

    clients: List[Any]
    pids: List[int]
    protocol: str
    server_info: Dict[str, Any]
    closers: List[Callable[[], Any]] = field(default_factory=list)

    async def close(self) -> None:
        for close in reversed(self.closers):
            with contextlib.suppress(Exception):
                res = close()
                if asyncio.iscoroutine(res):
                    await res


def _wait_port(url: str, proc: Optional[subprocess.Popen], timeout: float) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise TargetError(f"the server exited (code {proc.returncode}) before listening on {url}")
        with contextlib.suppress(OSError), socket.create_connection((parts.hostname, parts.port or 80), 0.2):
            return
        time.sleep(0.05)
    raise TargetError(f"nothing listens on {url} after {timeout:g} s")


def server_env(target: Target, profile_dir: Optional[str]) -> Dict[str, str]:
    env = {**os.environ, **target.env}
    if profile_dir:
        os.makedirs(profile_dir, exist_ok=True)
        env = agent_env(AgentConfig(out_dir=profile_dir, quiet=True, command=" ".join(target.command or [])), env)
    return env


async def start_server(target: Target, sessions: int = 1, timeout: float = 30.0,
                       profile_dir: Optional[str] = None, stderr: Any = subprocess.DEVNULL) -> Server:
    """Start (or reach) the target and open ``sessions`` initialized sessions, with mcpprof's lean
    clients or, when ``target.client`` is ``sdk``, the official SDK client."""
    env = server_env(target, profile_dir)
    srv = Server([], [], "legacy", {})
    try:
        if target.url is None:
            for _ in range(sessions):
                c = (StdioClient(target.command or [], env=env, cwd=target.cwd, stderr=stderr, timeout=timeout)
                     if target.client != "sdk" else SdkClient(target.command, env=env, cwd=target.cwd, stderr=stderr,
                                                              timeout=timeout, protocol=target.protocol))
                await c.start()
                srv.closers.append(c.aclose)
                srv.clients.append(c)
                if c.pid:  # the SDK client's server may not be found: measure nothing rather than pid 0
                    srv.pids.append(c.pid)
        else:
            if target.command:
                try:
                    proc = subprocess.Popen(target.command, env=env, cwd=target.cwd, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=stderr)
                except OSError as exc:
                    raise TargetError(f"cannot start the server {target.command[0]!r}: {exc.strerror or exc}") from None
                srv.closers.append(functools.partial(_stop_process, proc))
                srv.pids.append(proc.pid)
                await asyncio.get_running_loop().run_in_executor(None, _wait_port, target.url, proc,
                                                                 target.ready_timeout)
            for _ in range(sessions):
                c = (HttpClient(target.url, protocol=target.protocol, timeout=timeout) if target.client != "sdk"
                     else SdkClient(url=target.url, timeout=timeout, protocol=target.protocol))
                await c.start()
                srv.closers.append(c.aclose)
                srv.clients.append(c)
        for c in srv.clients:
            try:
                await asyncio.wait_for(c.initialize(), target.ready_timeout)
            except (CallError, asyncio.TimeoutError) as exc:
                raise TargetError(f"the server did not complete the MCP handshake: {exc or 'timeout'}") from None
        first = srv.clients[0]
        srv.server_info = first.server_info
        srv.protocol = getattr(first, "era", "legacy")
    except BaseException:
        await srv.close()
        raise
    return srv


def _stop_process(proc: subprocess.Popen, grace: float = 5.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Fanout:
    """Several sessions behind one ``send``: calls go round-robin over the clients."""

    def __init__(self, clients: Sequence[Any]):
        self.clients, self._i = list(clients), 0

    def send(self, method: str, params: Any, on_reply: Any, timeout: Optional[float] = None) -> Any:
        self._i = (self._i + 1) % len(self.clients)
        return self.clients[self._i].send(method, params, on_reply, timeout)


# -- loops ----------------------------------------------------------------------------------------


async def closed_loop(client: Any, tally: Tally, concurrency: int, requests: Optional[int],
                      seconds: Optional[float], timeout: float) -> None:
    """Keep ``concurrency`` calls in flight (callbacks, no task per call) until done."""
    finished = asyncio.get_running_loop().create_future()
    deadline = _clock() + int(seconds * 1e9) if seconds else None
    in_flight = 0

    def admit() -> bool:
        if tally.transport_lost:
            return False
        if requests is not None:
            return tally.issued < requests
        return _clock() < deadline  # type: ignore[operator]

    def issue() -> None:
        nonlocal in_flight
        while in_flight < concurrency and admit():
            k, method, params = tally.next_call()
            t0 = _clock()
            try:
                client.send(method, params, functools.partial(on_reply, k, t0), timeout)
            except CallError as exc:
                tally.record(k, t0, None, exc)
                continue
            in_flight += 1
        if in_flight == 0 and not finished.done():
            finished.set_result(None)

    def on_reply(k: int, t0: int, result: Optional[dict], error: Optional[CallError]) -> None:
        nonlocal in_flight
        in_flight -= 1
        tally.record(k, t0, result, error)
        try:
            issue()
        except BaseException as exc:  # never leave the loop waiting forever
            if not finished.done():
                finished.set_exception(exc)

    issue()
    await finished


async def churn_loop(target: Target, tally: Tally, concurrency: int, requests: Optional[int],
                     seconds: Optional[float], timeout: float, env_dir: Optional[str]) -> None:
    """Each call: a new session (a new process on stdio), handshake, the call, close."""
    from dataclasses import replace

    deadline = _clock() + int(seconds * 1e9) if seconds else None
    if target.url:  # HTTP: the server is already up; each call opens a session on it
        target = replace(target, command=None)

    async def worker() -> None:
        while (tally.issued < requests) if requests is not None else (_clock() < deadline):  # type: ignore[operator]
            k, method, params = tally.next_call()
            t0 = _clock()
            try:
                srv = await start_server(target, 1, timeout, env_dir)
            except TargetError as exc:
                tally.record(k, t0, None, CallError("transport", str(exc)))
                return
            try:
                result = await srv.clients[0].request(method, params, timeout)
                err = None
            except CallError as exc:
                result, err = None, exc
            await srv.close()
            tally.record(k, t0, result, err)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


# -- one workload ---------------------------------------------------------------------------------


async def _measure(workload: Workload, target: Target, srv: Optional[Server], run: int, seed: int,
                   profile_dir: Optional[str]) -> Dict[str, Any]:
    steps = workload.steps
    if workload.warmup and srv is not None:
        await _drive(workload, target, srv, Tally(steps, run, seed), workload.warmup, None, profile_dir)
    tally = Tally(steps, run, seed)
    pids = srv.pids if srv is not None and (workload.mode != "churn" or target.url) else []
    cpu0 = [process_cpu_ns(p) for p in pids]
    c0, w0 = time.process_time_ns(), _clock()
    schedule = await _drive(workload, target, srv, tally, workload.requests, workload.duration, profile_dir)
    w1, c1 = _clock(), time.process_time_ns()
    cpu1 = [process_cpu_ns(p) for p in pids]
    calls = tally.done
    server_cpu, source = None, "none"
    if pids and all(a[0] is not None and b[0] is not None for a, b in zip(cpu0, cpu1)) and calls:
        server_cpu = int(sum(b[0] - a[0] for a, b in zip(cpu0, cpu1)) / calls)  # type: ignore[operator]
        source = cpu1[0][1]
    mem = server_memory(pids[0]) if pids else None
    errors = tally.errors()
    row: Dict[str, Any] = {
        "run": run, "wall_ns": w1 - w0, "calls": calls, "ok": calls - sum(errors.values()),
        "errors": {k: errors.get(k, 0) for k in results.ERROR_KINDS},
        "throughput_per_s": round(calls / ((w1 - w0) / 1e9), 2) if w1 > w0 else 0.0,
        "latency_ns": results.latency_stats(tally.all_latencies()), "steps": tally.step_results(),
        "server_cpu_ns_per_req": server_cpu, "server_cpu_source": source,
        "client_cpu_ns_per_req": int((c1 - c0) / calls) if calls else None,
        "server_memory": mem, "load1": round(os.getloadavg()[0], 2)}
    if schedule:
        row["schedule"] = schedule
    return row


async def _drive(workload: Workload, target: Target, srv: Optional[Server], tally: Tally, requests: Optional[int],
                 seconds: Optional[float], profile_dir: Optional[str]) -> Optional[Dict[str, Any]]:
    if workload.mode == "churn":
        await churn_loop(target, tally, workload.concurrency, requests, seconds, workload.timeout, profile_dir)
        return None
    assert srv is not None
    client = srv.clients[0] if len(srv.clients) == 1 else Fanout(srv.clients)
    if workload.mode == "open":
        return await open_loop(client, tally, float(workload.rate or 1), requests, seconds, workload.timeout)
    await closed_loop(client, tally, workload.concurrency, requests, seconds, workload.timeout)
    return None


async def resolve(workload: Workload, client: Any) -> Workload:
    """Check the workload's steps against what the server lists (unknown tool -> UsageError)."""
    async def listing(method: str, key: str) -> List[Dict[str, Any]]:
        try:
            return (await client.request(method, None))[key] or []
        except CallError:
            return []

    tools = await client.list_tools()
    resources = await listing("resources/list", "resources")
    prompts = await listing("prompts/list", "prompts")
    return check_against_server(workload, tools, resources, prompts)


@contextlib.asynccontextmanager
async def _session(target: Target, workload: Workload, profile_dir: Optional[str],
                   stderr: Any) -> AsyncIterator[Server]:
    srv = await start_server(target, workload.sessions, workload.timeout, profile_dir, stderr)
    try:
        yield srv
    finally:
        await srv.close()


async def run_workload(target: Target, workload: Workload, *, runs: Optional[int] = None, seed: int = 0,
                       profile_dir: Optional[str] = None, progress: Optional[Progress] = None,
                       stderr: Any = subprocess.DEVNULL) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Run ``workload`` ``runs`` times; returns (the workload's result entry, the target's facts)."""
    runs = runs or workload.runs
    per_run: List[Dict[str, Any]] = []
    facts: Dict[str, Any] = {}
    resolved = workload
    for run in range(runs):
        if progress is not None:
            progress(workload.name, run, runs)
        async with _session(target, workload if workload.mode != "churn" else _one(workload), profile_dir, stderr) as srv:
            if run == 0:
                resolved = await resolve(workload, srv.clients[0])
                facts = {"protocol": srv.protocol, "server_info": srv.server_info}
            per_run.append(await _measure(resolved, target, srv, run, seed, profile_dir))
    entry = describe(resolved, runs)
    entry["per_run"] = per_run
    entry["summary"] = results.summarize_runs(per_run)
    return entry, facts


def _one(workload: Workload) -> Workload:
    from dataclasses import replace

    return replace(workload, sessions=1)


def describe(workload: Workload, runs: int) -> Dict[str, Any]:
    return {"workload_id": workload.name, "description": workload.description, "mode": workload.mode,
            "concurrency": workload.concurrency, "sessions": workload.sessions, "rate_per_s": workload.rate,
            "warmup_requests": workload.warmup, "requests_per_run": workload.requests,
            "duration_s": workload.duration, "runs": runs, "steps": [s.describe() for s in workload.steps]}


async def bench(target: Target, workloads: Sequence[Workload], *, runs: Optional[int] = None, seed: int = 0,
                profile_dir: Optional[str] = None, progress: Optional[Progress] = None,
                revision_cwd: Optional[str] = None) -> Dict[str, Any]:
    """Run every workload; the whole result document."""
    doc = results.new_document({**target.describe(), "revision": results.git_revision(revision_cwd)},
                               client=target.client)
    for workload in workloads:
        entry, facts = await run_workload(target, workload, runs=runs, seed=seed, profile_dir=profile_dir,
                                          progress=progress)
        doc["target"].update(facts)
        doc["workloads"].append(entry)
    if profile_dir:
        doc["profiles"] = {"candidate": sorted(os.path.join(profile_dir, f) for f in os.listdir(profile_dir)
                                               if f.endswith(".mcpprof"))}
    return results.finish_document(doc)


__all__ = ["process_cpu_ns", "server_memory", "Server", "start_server", "Fanout", "closed_loop", "churn_loop",
           "run_workload", "resolve", "describe", "bench"]
