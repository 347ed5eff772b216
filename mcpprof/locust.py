"""MCP users for Locust (``pip install 'mcpprof[locust]'``): the same workloads on Locust's
distributed master/worker mode, for load beyond one machine.

In a locustfile::

    from mcpprof.locust import McpHttpUser, McpStdioUser, Step

    class Http(McpHttpUser):           # locust -f this.py --host http://127.0.0.1:8000
        steps = [Step("tools/call", "echo", {"text": "hi {i}"}, weight=3), Step("tools/list")]

    class Stdio(McpStdioUser):         # one server process per simulated user
        command = ["python", "my_server.py"]
        workload = "tool-simple"       # or a built-in workload's name instead of steps (no "*" targets)

Every call is reported to Locust's statistics under its step id (``tools/call echo``) with its
latency in milliseconds as a float: importing this module replaces Locust's response-time
bucketing (whole milliseconds below 100 ms) by three significant digits, so sub-millisecond MCP
calls keep microsecond resolution, also between workers and master. JSON-RPC errors and tool
errors count as failures. Locust runs on gevent: these users speak MCP themselves (blocking
pipes / Locust's HTTP client, both gevent-cooperative), not through the asyncio SDK client.

``python -m mcpprof.locust RESULT.json --json-file LOCUST.json`` converts Locust's ``--json-file``
output into an mcpprof result document (schema mcpprof.bench/1, one run, ``client: "locust"``).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from typing import Any, Dict, List, Optional, Sequence

from .errors import UsageError

try:
    import locust.stats as _stats
    from locust import User, task
    from locust.contrib.fasthttp import FastHttpUser
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise UsageError("mcpprof.locust needs Locust: pip install 'mcpprof[locust]'") from exc

from .bench.catalogue import get as _catalogue
from .bench.client import PROTOCOL_VERSION
from .bench.openloop import Picker
from .bench.workload import TOOLS_CALL, Step

_original_bucket = _stats.bucket_response_time


def bucket_response_time(response_time: float) -> float:
    """Three significant digits below 100 ms (0.457 ms stays 0.457), Locust's buckets above."""
    if response_time < 100:
        return float(f"{response_time:.3g}")
    return _original_bucket(response_time)


_stats.bucket_response_time = bucket_response_time


class _Steps:
    """Weighted step choice and per-call params for one simulated user."""

    def __init__(self, user: Any):
        steps: Sequence[Step] = user.steps or _catalogue(user.workload).steps
        if any(s.target == "*" for s in steps):
            raise UsageError("Locust users need explicit resource URIs and prompt names (no '*' targets)")
        self.steps = list(steps)
        self.params = [s.params_factory() for s in self.steps]
        self.pick = Picker([s.weight for s in self.steps]).next
        self.counter = itertools.count()

    def next(self) -> tuple[Step, Any]:
        k = self.pick()
        return self.steps[k], self.params[k](next(self.counter))


def _failure(step: Step, msg: Dict[str, Any]) -> Optional[str]:
    if "error" in msg:
        err = msg["error"] if isinstance(msg["error"], dict) else {"message": str(msg["error"])}
        return f"jsonrpc {err.get('code')}: {err.get('message')}"
    if step.method == TOOLS_CALL and (msg.get("result") or {}).get("isError"):
        return "tool reported an error"
    return None


def _sse_or_json(body: bytes, content_type: str) -> Dict[str, Any]:
    if content_type.startswith("text/event-stream"):
        for event in body.replace(b"\r\n", b"\n").split(b"\n\n"):
            data = b"\n".join(ln[5:].lstrip() for ln in event.split(b"\n") if ln.startswith(b"data:"))
            if data:
                msg = json.loads(data)
                if isinstance(msg, dict) and ("result" in msg or "error" in msg):
                    return msg
        raise ValueError("no JSON-RPC response in the event stream")
    return json.loads(body)


class McpHttpUser(FastHttpUser):
    """Streamable HTTP, legacy handshake (``initialize`` + ``Mcp-Session-Id``) per user."""

    abstract = True
    path = "/mcp"
    steps: Sequence[Step] = ()
    workload = "tool-simple"

    def on_start(self) -> None:
        self._steps = _Steps(self)
        self._ids = itertools.count(1)
        self._headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        body = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                           "clientInfo": {"name": "mcpprof-locust", "version": "1"}}}
        with self.client.post(self.path, data=json.dumps(body), headers=self._headers, name="initialize",
                              catch_response=True) as resp:
            sid = resp.headers.get("mcp-session-id") if resp.headers else None
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}")
                return
        if sid:
            self._headers["Mcp-Session-Id"] = sid
        self._headers["MCP-Protocol-Version"] = PROTOCOL_VERSION
        self.client.post(self.path, data=json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                         headers=self._headers, name="notifications/initialized")

    def on_stop(self) -> None:
        if "Mcp-Session-Id" in self._headers:
            self.client.request("DELETE", self.path, headers=self._headers, name="session close")

    @task
    def call(self) -> None:
        step, params = self._steps.next()
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": step.method}
        if params is not None:
            body["params"] = params
        with self.client.post(self.path, data=json.dumps(body), headers=self._headers, name=step.step_id,
                              catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}")
                return
            try:
                msg = _sse_or_json(resp.content or b"", resp.headers.get("content-type", ""))
            except ValueError as exc:
                resp.failure(f"bad answer: {exc}")
                return
            problem = _failure(step, msg)
            if problem:
                resp.failure(problem)


class McpStdioUser(User):
    """One stdio server process per simulated user; calls one at a time over its pipes."""

    abstract = True
    command: Sequence[str] = ()
    env: Optional[Dict[str, str]] = None
    steps: Sequence[Step] = ()
    workload = "tool-simple"

    def on_start(self) -> None:
        if not self.command:
            raise UsageError("McpStdioUser needs command = [...] (the server to start)")
        self._steps = _Steps(self)
        self._ids = itertools.count(1)
        self.proc = subprocess.Popen(list(self.command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=self.env)
        self._rpc("initialize", {"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                                 "clientInfo": {"name": "mcpprof-locust", "version": "1"}})
        self._write({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def on_stop(self) -> None:
        proc = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:
            proc.stdin.close()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()

    def _write(self, msg: Dict[str, Any]) -> None:
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
        self.proc.stdin.flush()

    def _rpc(self, method: str, params: Any) -> Dict[str, Any]:
        rid = next(self._ids)
        msg: Dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        self._write(msg)
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise ConnectionError("the server closed its stdout")
            reply = json.loads(line)
            if isinstance(reply, dict) and reply.get("id") == rid and ("result" in reply or "error" in reply):
                return reply

    @task
    def call(self) -> None:
        step, params = self._steps.next()
        t0 = time.perf_counter_ns()
        exc: Optional[Exception] = None
        length = 0
        try:
            reply = self._rpc(step.method, params)
            length = len(json.dumps(reply.get("result") or {}))
            problem = _failure(step, reply)
            if problem:
                exc = RuntimeError(problem)
        except (OSError, ValueError, ConnectionError) as e:
            exc = e
        self.environment.events.request.fire(
            request_type="MCP", name=step.step_id, response_time=(time.perf_counter_ns() - t0) / 1e6,
            response_length=length, exception=exc, context={})
        if isinstance(exc, ConnectionError):
            self.stop()


# -- Locust's output -> mcpprof's result schema --------------------------------------------------


def _percentile_ms(hist: Dict[str, int], total: int, pct: float) -> float:
    """Nearest-rank percentile of a Locust response-time histogram (keys in ms)."""
    need = max(1, -(-int(pct * total) // 100))
    seen = 0
    for key in sorted(hist, key=float):
        seen += hist[key]
        if seen >= need:
            return float(key)
    return float(max(hist, key=float)) if hist else 0.0


def from_locust_json(entries: List[Dict[str, Any]], workload_id: str = "locust", target: Optional[Dict[str, Any]] = None
                     ) -> Dict[str, Any]:
    """An mcpprof result document from Locust's ``--json-file`` entries (one run; latencies are
    Locust's histogram buckets, 3 significant digits below 100 ms with this module loaded)."""
    from .bench import results

    doc = results.new_document(target or {"transport": "http", "command": None, "url": None}, client="locust")
    steps, per_step = [], {}
    calls = failures = 0
    wall = 0.0
    for e in entries:
        name, n = e.get("name"), int(e.get("num_requests", 0))
        if not name or name in ("initialize", "notifications/initialized", "session close") or n == 0:
            continue
        hist = {str(k): int(v) for k, v in (e.get("response_times") or {}).items()}
        lat = {"min": e.get("min_response_time"), **{k: _percentile_ms(hist, n, p) for k, p in results.PERCENTILES},
               "max": e.get("max_response_time"), "mean": e.get("total_response_time", 0) / n}
        fails = int(e.get("num_failures", 0))
        per_step[name] = {"ok": n - fails, "errors": {"jsonrpc": fails} if fails else {},
                          "latency_ns": {k: int(round(float(v or 0) * 1e6)) for k, v in lat.items()}}
        steps.append({"step_id": name, "method": name.split(" ")[0], "target": name.partition(" ")[2], "weight": None})
        calls += n
        failures += fails
        wall = max(wall, float(e.get("last_request_timestamp") or 0) - float(e.get("start_time") or 0))
    run = {"run": 0, "wall_ns": int(wall * 1e9), "calls": calls, "ok": calls - failures,
           "errors": {"timeout": 0, "jsonrpc": failures, "tool": 0, "transport": 0},
           "throughput_per_s": round(calls / wall, 2) if wall else 0.0, "latency_ns": None, "steps": per_step,
           "server_cpu_ns_per_req": None, "server_cpu_source": "none", "client_cpu_ns_per_req": None,
           "server_memory": None, "latency_resolution": "locust histogram, 3 significant digits"}
    doc["workloads"].append({"workload_id": workload_id, "description": "converted from Locust", "mode": "closed",
                             "runs": 1, "steps": steps, "per_run": [run], "summary": {}})
    return results.finish_document(doc)


def main(argv: Optional[List[str]] = None) -> int:
    import argparse

    from .bench import results

    ap = argparse.ArgumentParser(prog="python -m mcpprof.locust", description="Locust --json-file -> mcpprof result")
    ap.add_argument("out")
    ap.add_argument("--json-file", required=True)
    ap.add_argument("--workload", default="locust")
    a = ap.parse_args(argv)
    try:
        with open(a.json_file) as f:
            entries = json.load(f)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: cannot read {a.json_file}: {exc}")
    results.write(from_locust_json(entries, a.workload), a.out)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
