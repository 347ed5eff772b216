"""Workloads: what a bench run calls, how hard and how often; read from TOML workload files.

A workload file::

    [target]                      # optional when the command line names the server
    command = "python -m my_server"          # a string (split like a shell) or an array
    # url = "http://127.0.0.1:8000/mcp"      # streamable HTTP; with command: start it, then connect
    protocol = "auto"                        # HTTP: auto | legacy | modern
    # client = "sdk"                         # drive it through the official SDK client (default lean)
    env = { LOG_LEVEL = "warning" }

    [defaults]                    # optional: applies to every workload below
    runs = 5
    warmup = 100

    [[workload]]
    name = "search-mix"
    concurrency = 4               # calls in flight (closed loop) ...
    # rate = 200.0                # ... or a fixed arrival rate in calls/s (open loop)
    requests = 1000               # per run (or duration = 5.0 seconds)
    steps = [
      { tool = "search", arguments = { query = "item {i}" }, weight = 3 },
      { uri = "config://app" },
      { prompt = "summarize", arguments = { topic = "x" } },
      { method = "tools/list" },
    ]

Argument templates: in string values ``{i}`` is the call's index in the run, ``{run}`` the run
number, ``{rand}`` a random integer (seeded per run), ``{x*N}`` N letters ``x`` (payload padding).
Errors are one-line :class:`~mcpprof.errors.UsageError` messages naming the file and the place.
"""

from __future__ import annotations

import random
import re
import shlex
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from ..errors import UsageError
from .results import args_digest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TOOLS_CALL, RESOURCES_READ, PROMPTS_GET = "tools/call", "resources/read", "prompts/get"
MODES = ("closed", "open", "churn")
FIRST = "*"  # a step target meaning "the first one the server lists"
_PLACEHOLDER = re.compile(r"\{(i|run|rand|x\*(\d+))\}")
_TARGET_KEYS = {"command", "url", "protocol", "env", "cwd", "ready_timeout", "transport", "client"}
CLIENTS = ("lean", "sdk")
_WORKLOAD_KEYS = {"name", "description", "concurrency", "rate", "requests", "duration", "warmup", "runs",
                  "timeout", "steps", "step", "mode", "sessions"}
_STEP_KEYS = {"method", "tool", "uri", "prompt", "arguments", "params", "weight"}

Params = Optional[Dict[str, Any]]


@dataclass(frozen=True)
class Step:
    """One kind of call: ``method`` with its tool / URI / prompt ``target`` and ``arguments``
    (which may hold templates)."""

    method: str
    target: str = ""
    arguments: Optional[Mapping[str, Any]] = None
    weight: float = 1.0

    @property
    def step_id(self) -> str:
        """``tools/call echo``, ``resources/read example://config``, ``tools/list``."""
        return f"{self.method} {self.target}" if self.target else self.method

    @property
    def templated(self) -> bool:
        return self.arguments is not None and _has_dynamic(self.arguments)

    def describe(self) -> Dict[str, Any]:
        return {"step_id": self.step_id, "method": self.method, "target": self.target, "weight": self.weight,
                "args_sha256": args_digest(self.arguments)}

    def params_factory(self, run: int = 0, seed: int = 0) -> Callable[[int], Params]:
        """``f(i) -> params`` for call ``i`` of ``run``; the same object every call when static."""
        args = _expand_static(self.arguments)
        if self.templated:
            rng = random.Random(f"{seed}:{run}:{self.step_id}")
            fill = _compile(args, run, rng)
            return lambda i: self._wrap(fill(i))
        fixed = self._wrap(args)
        return lambda i: fixed

    def _wrap(self, args: Any) -> Params:
        if self.method in (TOOLS_CALL, PROMPTS_GET):
            return {"name": self.target, "arguments": dict(args or {})}
        if self.method == RESOURCES_READ:
            return {"uri": self.target}
        return dict(args) if args is not None else None


@dataclass
class Workload:
    """A named list of weighted steps and how to drive them."""

    name: str
    steps: List[Step]
    description: str = ""
    mode: str = "closed"            # closed | open | churn
    concurrency: int = 1
    rate: Optional[float] = None    # calls/s (open loop)
    requests: Optional[int] = 1000  # per run; None when duration is given
    duration: Optional[float] = None
    warmup: int = 100
    runs: int = 10                  # stored-baseline comparisons need >= 10
    timeout: float = 30.0
    sessions: int = 1               # concurrent sessions (HTTP) or server processes (stdio)

    def __post_init__(self) -> None:
        if self.rate is not None and self.mode == "closed":
            self.mode = "open"


@dataclass
class Target:
    """The server: a command (stdio, or started then reached at ``url``) and/or a URL."""

    command: Optional[List[str]] = None
    url: Optional[str] = None
    protocol: str = "auto"
    env: Dict[str, str] = field(default_factory=dict)
    cwd: Optional[str] = None
    ready_timeout: float = 30.0
    client: str = "lean"  # lean: mcpprof's clients; sdk: the official SDK's ClientSession

    @property
    def transport(self) -> str:
        return "http" if self.url else "stdio"

    def describe(self) -> Dict[str, Any]:
        return {"transport": self.transport, "command": self.command, "url": self.url}


@dataclass
class WorkloadFile:
    target: Optional[Target]
    workloads: List[Workload]
    path: str = ""


# -- templates -------------------------------------------------------------------------------------


def _has_dynamic(obj: Any) -> bool:
    if isinstance(obj, str):
        return any(m.group(2) is None for m in _PLACEHOLDER.finditer(obj))
    if isinstance(obj, Mapping):
        return any(_has_dynamic(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_has_dynamic(v) for v in obj)
    return False


def _expand_static(obj: Any) -> Any:
    """Expand ``{x*N}`` padding once, at load time."""
    if isinstance(obj, str):
        return _PLACEHOLDER.sub(lambda m: "x" * int(m.group(2)) if m.group(2) else m.group(0), obj)
    if isinstance(obj, Mapping):
        return {k: _expand_static(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_expand_static(v) for v in obj]
    return obj


def _compile(obj: Any, run: int, rng: random.Random) -> Callable[[int], Any]:
    if isinstance(obj, str) and _has_dynamic(obj):
        def fill(i: int, s: str = obj) -> str:
            return _PLACEHOLDER.sub(lambda m: str(i) if m.group(1) == "i" else str(run) if m.group(1) == "run"
                                    else str(rng.getrandbits(31)), s)
        return fill
    if isinstance(obj, Mapping):
        parts = {k: _compile(v, run, rng) for k, v in obj.items()}
        return lambda i: {k: f(i) for k, f in parts.items()}
    if isinstance(obj, list):
        items = [_compile(v, run, rng) for v in obj]
        return lambda i: [f(i) for f in items]
    return lambda i: obj


# -- reading workload files -----------------------------------------------------------------------


def _fail(where: str, message: str) -> UsageError:
    return UsageError(f"{where}: {message}")


def _check_keys(table: Mapping[str, Any], known: set, where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise _fail(where, f"unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")


def _number(value: Any, where: str, key: str, *, integer: bool = False, minimum: float = 0,
            strict: bool = False, unit: str = "") -> Any:
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or (value <= minimum if strict else value < minimum):
        kind = "an integer" if integer else "a number"
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise _fail(where, f"{key} must be {kind} {bound}{unit}, got {value!r}")
    return value


def parse_step(raw: Any, where: str) -> Step:
    if not isinstance(raw, Mapping):
        raise _fail(where, "a step must be a table like { tool = \"name\", arguments = {...} }")
    _check_keys(raw, _STEP_KEYS, where)
    kinds = [k for k in ("tool", "uri", "prompt") if k in raw]
    if len(kinds) > 1:
        raise _fail(where, f"give one of tool, uri, prompt (got {', '.join(kinds)})")
    implied = {"tool": TOOLS_CALL, "uri": RESOURCES_READ, "prompt": PROMPTS_GET}
    method = raw.get("method") or (implied[kinds[0]] if kinds else None)
    if not isinstance(method, str) or not method:
        raise _fail(where, "a step needs tool, uri, prompt or method")
    if kinds and method != implied[kinds[0]]:
        raise _fail(where, f"{kinds[0]} goes with method {implied[kinds[0]]!r}, not {method!r}")
    if method in implied.values() and not kinds:
        need = {v: k for k, v in implied.items()}[method]
        raise _fail(where, f"method {method!r} needs {need} = \"...\"")
    target = raw.get(kinds[0], "") if kinds else ""
    if kinds and (not isinstance(target, str) or not target):
        raise _fail(where, f"{kinds[0]} must be a non-empty string")
    args = raw.get("arguments", raw.get("params"))
    if args is not None and not isinstance(args, Mapping):
        raise _fail(where, "arguments must be a table")
    weight = _number(raw.get("weight", 1.0), where, "weight")
    return Step(method, target, dict(args) if args is not None else None, float(weight))


def parse_workload(raw: Mapping[str, Any], where: str, defaults: Mapping[str, Any]) -> Workload:
    _check_keys(raw, _WORKLOAD_KEYS, where)
    merged = {**defaults, **raw}
    name = merged.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _fail(where, "every workload table needs a name")
    where = f"{where.rsplit(' workload #', 1)[0]} workload {name!r}"
    steps_raw = raw.get("steps", raw.get("step"))
    if not isinstance(steps_raw, list) or not steps_raw:
        raise _fail(where, "needs steps = [ { tool = \"...\" }, ... ] (at least one)")
    steps = [parse_step(s, f"{where} step {i + 1}") for i, s in enumerate(steps_raw)]
    if sum(s.weight for s in steps) <= 0:
        raise _fail(where, "step weights must have a positive sum")
    rate = merged.get("rate")
    if rate is not None:
        rate = float(_number(rate, where, "rate", strict=True, unit=" calls/s"))
    mode = merged.get("mode", "open" if rate is not None else "closed")
    if mode not in MODES:
        raise _fail(where, f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "open" and rate is None:
        raise _fail(where, "mode = \"open\" needs rate = <calls per second>")
    duration = merged.get("duration")
    requests = merged.get("requests")
    if duration is not None and "requests" in raw:
        raise _fail(where, "give requests or duration, not both")
    if duration is not None:
        duration, requests = float(_number(duration, where, "duration", strict=True, unit=" s")), None
    else:
        requests = int(_number(1000 if requests is None else requests, where, "requests", integer=True, minimum=1))
    return Workload(
        name=name, steps=steps, description=str(merged.get("description", "")), mode=mode,
        concurrency=int(_number(merged.get("concurrency", 1), where, "concurrency", integer=True, minimum=1)),
        rate=rate, requests=requests, duration=duration,
        warmup=int(_number(merged.get("warmup", 100), where, "warmup", integer=True)),
        runs=int(_number(merged.get("runs", 10), where, "runs", integer=True, minimum=1)),
        timeout=float(_number(merged.get("timeout", 30.0), where, "timeout", strict=True, unit=" s")),
        sessions=int(_number(merged.get("sessions", 1), where, "sessions", integer=True, minimum=1)))


def parse_target(raw: Any, where: str) -> Target:
    if not isinstance(raw, Mapping):
        raise _fail(where, "target must be a table")
    _check_keys(raw, _TARGET_KEYS, f"{where} target table")
    command = raw.get("command")
    if isinstance(command, str):
        command = shlex.split(command)
    if command is not None and (not isinstance(command, list) or not command
                                or not all(isinstance(a, str) for a in command)):
        raise _fail(where, "target command must be a string or a non-empty array of strings")
    url = raw.get("url")
    if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
        raise _fail(where, f"target url must start with http:// or https://, got {url!r}")
    if command is None and url is None:
        raise _fail(where, "the target table needs command or url")
    protocol = raw.get("protocol", "auto")
    if protocol not in ("auto", "legacy", "modern"):
        raise _fail(where, f"target protocol must be auto, legacy or modern, got {protocol!r}")
    env = raw.get("env", {})
    if not isinstance(env, Mapping) or not all(isinstance(v, str) for v in env.values()):
        raise _fail(where, "target env must be a table of strings")
    client = raw.get("client", "lean")
    if client not in CLIENTS:
        raise _fail(where, f"target client must be lean or sdk, got {client!r}")
    return Target(command=command, url=url, protocol=protocol, env=dict(env), cwd=raw.get("cwd"), client=client,
                  ready_timeout=float(_number(raw.get("ready_timeout", 30.0), where, "ready_timeout", strict=True)))


def parse_text(text: str, where: str = "workload file") -> WorkloadFile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _fail(where, f"not valid TOML: {exc}") from None
    _check_keys(data, {"target", "defaults", "workload"}, where)
    target = parse_target(data["target"], where) if "target" in data else None
    defaults = data.get("defaults", {})
    if not isinstance(defaults, Mapping):
        raise _fail(where, "defaults must be a table")
    _check_keys(defaults, _WORKLOAD_KEYS - {"name", "steps", "step"}, f"{where} defaults table")
    raw_workloads = data.get("workload")
    if not isinstance(raw_workloads, list) or not raw_workloads:
        raise _fail(where, "no workload tables (each starts with a double-bracketed workload header)")
    workloads = [parse_workload(w, f"{where} workload #{i + 1}", defaults) for i, w in enumerate(raw_workloads)]
    names = [w.name for w in workloads]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise _fail(where, f"two workloads are called {dup!r}")
    return WorkloadFile(target, workloads, where)


def load_file(path: str | Path) -> WorkloadFile:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"workload file {p} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"workload file {p} is a directory") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise UsageError(f"cannot read workload file {p}: {exc}") from None
    return parse_text(text, f"workload file {p}")


def check_against_server(workload: Workload, tools: Sequence[Mapping[str, Any]],
                         resources: Sequence[Mapping[str, Any]] = (),
                         prompts: Sequence[Mapping[str, Any]] = ()) -> Workload:
    """Resolve ``*`` targets to the server's first resource/prompt and reject unknown tools
    and prompts with one line naming the workload, the step and what the server has."""
    tool_names = [t.get("name") for t in tools]
    prompt_names = [p.get("name") for p in prompts]
    steps = []
    for i, step in enumerate(workload.steps):
        where = f"workload {workload.name!r} step {i + 1}"
        if step.method == TOOLS_CALL and step.target not in tool_names:
            raise UsageError(f"{where}: the server has no tool {step.target!r}; its tools: "
                             f"{', '.join(map(str, tool_names)) or 'none'}")
        if step.method == PROMPTS_GET and step.target == FIRST:
            if not prompt_names:
                raise UsageError(f"{where}: the server lists no prompts")
            step = replace(step, target=str(prompt_names[0]))
        elif step.method == PROMPTS_GET and prompts and step.target not in prompt_names:
            raise UsageError(f"{where}: the server has no prompt {step.target!r}; its prompts: "
                             f"{', '.join(map(str, prompt_names))}")
        if step.method == RESOURCES_READ and step.target == FIRST:
            if not resources:
                raise UsageError(f"{where}: the server lists no resources")
            step = replace(step, target=str(resources[0].get("uri")))
        steps.append(step)
    return replace(workload, steps=steps)


def command_target(command: Sequence[str], url: Optional[str] = None, protocol: str = "auto") -> Target:
    return Target(command=list(command) or None, url=url, protocol=protocol)


__all__ = ["Step", "Workload", "Target", "WorkloadFile", "parse_text", "load_file", "check_against_server",
           "command_target", "CLIENTS", "TOOLS_CALL", "RESOURCES_READ", "PROMPTS_GET", "FIRST", "MODES"]
