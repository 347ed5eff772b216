"""The workload behind ``mcpprof profile``: a closed loop of MCP calls against one client.

:func:`drive` keeps ``concurrency`` calls in flight, picks each next call by smooth weighted
round-robin over a list of :class:`CallSpec`, and records client-side latencies (ns) and errors
by kind per spec. The helpers choose what to call: :func:`select_tools` (which tools, with which
arguments), :func:`arguments_from_schema` (minimal valid arguments from a tool's input schema) and
:func:`load_args_file` (user-given arguments).
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Sequence

from ..errors import UsageError
from .client import ERROR_KINDS, CallError

TOOLS_CALL, RESOURCES_READ, PROMPTS_GET = "tools/call", "resources/read", "prompts/get"
_clock = time.perf_counter_ns


class CallSpec(NamedTuple):
    """One kind of call in a workload: ``tools/call`` / ``prompts/get`` take a name and
    arguments, ``resources/read`` a URI; any other method sends ``arguments`` as its params."""

    method: str
    name_or_uri: str = ""
    arguments: Mapping[str, Any] | None = None
    weight: float = 1.0

    @property
    def label(self) -> str:
        """``tools/call echo``, ``resources/read example://config``, ``ping``."""
        return f"{self.method} {self.name_or_uri}" if self.name_or_uri else self.method

    def params(self) -> dict[str, Any] | None:
        if self.method in (TOOLS_CALL, PROMPTS_GET):
            return {"name": self.name_or_uri, "arguments": dict(self.arguments or {})}
        if self.method == RESOURCES_READ:
            return {"uri": self.name_or_uri}
        return dict(self.arguments) if self.arguments is not None else None


@dataclass
class CallStats:
    """What happened to the calls of one :class:`CallSpec`."""

    spec: CallSpec
    latencies_ns: list[int] = field(default_factory=list)  # successful calls only
    errors: dict[str, int] = field(default_factory=dict)  # kind -> count
    first_errors: dict[str, str] = field(default_factory=dict)  # kind -> first message

    @property
    def ok(self) -> int:
        return len(self.latencies_ns)

    @property
    def calls(self) -> int:
        return self.ok + sum(self.errors.values())


@dataclass
class DriveResult:
    """Per-spec statistics (in the order of the specs given), wall time and why the loop stopped:
    ``time``, ``max_calls``, ``transport`` (the server went away) or ``error`` (a bug raised)."""

    stats: list[CallStats]
    wall_s: float
    concurrency: int
    stopped: str

    @property
    def calls(self) -> int:
        return sum(s.calls for s in self.stats)

    @property
    def ok(self) -> int:
        return sum(s.ok for s in self.stats)

    @property
    def errors(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for s in self.stats:
            for kind, n in s.errors.items():
                total[kind] = total.get(kind, 0) + n
        return total

    @property
    def throughput(self) -> float:
        """Completed calls per second."""
        return self.calls / self.wall_s if self.wall_s > 0 else 0.0

    def by_label(self) -> dict[str, CallStats]:
        return {s.spec.label: s for s in self.stats}

    def to_dict(self) -> dict[str, Any]:
        return {"wall_s": self.wall_s, "concurrency": self.concurrency, "stopped": self.stopped,
                "calls": [{"method": s.spec.method, "target": s.spec.name_or_uri, "label": s.spec.label,
                           "weight": s.spec.weight, "ok": s.ok, "errors": dict(s.errors),
                           "first_errors": dict(s.first_errors), "latencies_ns": list(s.latencies_ns)}
                          for s in self.stats]}




class _Loop:
    """The closed loop's shared state: what to call next, when to stop, what happened."""

    def __init__(self, calls: Sequence[CallSpec], seconds: float | None, max_calls: int | None):
        self.stats = [CallStats(c) for c in calls]
        self.work = [(c.method, c.params(), c.method == TOOLS_CALL, s) for c, s in zip(calls, self.stats)]
        self.pick = Picker([c.weight for c in calls]).next
        self.start = _clock()
        self.deadline = self.start + int(seconds * 1e9) if seconds else None
        self.max_calls = max_calls
        self.issued = self.done = self.errors = 0
        self.stopped = ""

    def admit(self) -> bool:
        """May one more call start? Sets ``stopped`` when not."""
        if self.stopped:
            return False
        if self.max_calls is not None and self.issued >= self.max_calls:
            self.stopped = "max_calls"
        elif self.deadline is not None and _clock() >= self.deadline:
            self.stopped = "time"
        else:
            self.issued += 1
        return not self.stopped

    def record(self, st: CallStats, is_tool: bool, t0: int, result: dict[str, Any] | None,
               error: CallError | None) -> None:
        if error is None and is_tool and result is not None and result.get("isError"):
            error = CallError("tool", f"{st.spec.label}: the tool reported an error")
        self.done += 1
        if error is None:
            st.latencies_ns.append(_clock() - t0)
            return
        st.errors[error.kind] = st.errors.get(error.kind, 0) + 1
        st.first_errors.setdefault(error.kind, str(error))
        self.errors += 1
        if error.kind == "transport":
            self.stopped = "transport"


async def _run_callbacks(client: Any, loop_: _Loop, concurrency: int, timeout: float) -> None:
    """Closed loop on ``client.send``: each reply's callback records it and sends the next call,
    so no task switch happens per request (the cheapest way to drive a server from asyncio)."""
    finished = asyncio.get_running_loop().create_future()
    in_flight = 0

    def issue() -> None:
        nonlocal in_flight
        while in_flight < concurrency and loop_.admit():
            method, params, is_tool, st = loop_.work[loop_.pick()]
            t0 = _clock()
            try:
                client.send(method, params, functools.partial(on_reply, st, is_tool, t0), timeout)
            except CallError as exc:
                loop_.record(st, is_tool, t0, None, exc)
                continue
            in_flight += 1
        if in_flight == 0 and not finished.done():
            finished.set_result(None)

    def on_reply(st: CallStats, is_tool: bool, t0: int, result: dict[str, Any] | None,
                 error: CallError | None) -> None:
        nonlocal in_flight
        in_flight -= 1
        try:
            loop_.record(st, is_tool, t0, result, error)
            issue()
        except BaseException as exc:  # never leave drive() waiting forever
            loop_.stopped = loop_.stopped or "error"
            if not finished.done():
                finished.set_exception(exc)

    issue()
    await finished


async def _run_tasks(client: Any, loop_: _Loop, concurrency: int, timeout: float) -> None:
    """Closed loop on ``await client.request(...)``: one task per concurrency slot."""

    async def worker() -> None:
        while loop_.admit():
            method, params, is_tool, st = loop_.work[loop_.pick()]
            t0 = _clock()
            try:
                result = await client.request(method, params, timeout)
            except CallError as exc:
                loop_.record(st, is_tool, t0, None, exc)
            else:
                loop_.record(st, is_tool, t0, result, None)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


class Picker:
    """Smooth weighted round-robin (nginx's): deterministic, interleaved, exact proportions."""

    def __init__(self, weights: Sequence[float]):
        self.weights = list(weights)
        self.total = sum(self.weights)
        self.current = [0.0] * len(self.weights)

    def next(self) -> int:
        cur, best = self.current, 0
        for i, w in enumerate(self.weights):
            cur[i] += w
            if cur[i] > cur[best]:
                best = i
        cur[best] -= self.total
        return best


async def drive(client: Any, calls: Sequence[CallSpec], seconds: float | None, concurrency: int = 16,
                max_calls: int | None = None, progress: Callable[[int, int, float], None] | None = None,
                timeout: float = 30.0, progress_interval: float = 0.5) -> DriveResult:
    """Call the server through ``client`` with ``concurrency`` calls in flight until ``seconds``
    have passed or ``max_calls`` were issued (calls in flight are then waited for).

    ``client`` is a :class:`~.client.StdioClient` (driven through its callback ``send``) or
    anything with ``async request(method, params, timeout) -> result`` that raises
    :class:`~.client.CallError`. ``progress(done, errors, elapsed_s)`` is called every
    ``progress_interval`` seconds and once at the end.
    """
    if not calls:
        raise UsageError("no calls to make: the workload is empty")
    if any(c.weight < 0 for c in calls) or sum(c.weight for c in calls) <= 0:
        raise UsageError("call weights must be >= 0 with a positive sum")
    if not seconds and max_calls is None:
        raise ValueError("drive() needs seconds or max_calls")
    concurrency = max(1, concurrency)
    loop_ = _Loop(calls, seconds, max_calls)

    async def ticker() -> None:
        while True:
            await asyncio.sleep(progress_interval)
            progress(loop_.done, loop_.errors, (_clock() - loop_.start) / 1e9)  # type: ignore[misc]

    tick = asyncio.ensure_future(ticker()) if progress is not None else None
    try:
        run = _run_callbacks if callable(getattr(client, "send", None)) else _run_tasks
        await run(client, loop_, concurrency, timeout)
    finally:
        if tick is not None:
            tick.cancel()
    wall = (_clock() - loop_.start) / 1e9
    if progress is not None:
        progress(loop_.done, loop_.errors, wall)
    return DriveResult(loop_.stats, wall, concurrency, loop_.stopped or "max_calls")


# -- choosing what to call ---------------------------------------------------------------------------


def example_arguments() -> dict[str, dict[str, Any]]:
    """The arguments each tool of the bundled example server is called with."""
    try:
        text = resources.files("mcpprof.examples").joinpath("default_args.json").read_text("utf-8")
    except (FileNotFoundError, ModuleNotFoundError):
        return {}
    return json.loads(text)


def select_tools(tools: Sequence[Mapping[str, Any]], names: Sequence[str] | None = None, example: bool = False,
                 arguments: Mapping[str, Mapping[str, Any]] | None = None) -> list[CallSpec]:
    """The ``tools/call`` specs to drive, in the server's order.

    For the bundled example (``example=True``) every tool, with the example's default arguments;
    for another server the tools named in ``names``, else those annotated ``readOnlyHint: true``
    (calling a tool with side effects needs the user to ask for it). Arguments come from
    ``arguments`` (tool -> arguments, e.g. from :func:`load_args_file`), else the example's
    defaults, else :func:`arguments_from_schema`. Unknown names raise :class:`UsageError`.
    """
    by_name = {t.get("name"): t for t in tools if isinstance(t.get("name"), str)}
    available = ", ".join(by_name) or "none"
    unknown = [n for n in list(names or []) + list(arguments or {}) if n not in by_name]
    if unknown:
        raise UsageError(f"the server has no tool {', '.join(map(repr, dict.fromkeys(unknown)))}; "
                         f"its tools: {available}")
    if names:
        chosen = [n for n in by_name if n in set(names)]
    elif example:
        chosen = list(by_name)
    else:
        chosen = [n for n, t in by_name.items() if (t.get("annotations") or {}).get("readOnlyHint") is True]
        if not chosen:
            raise UsageError(f"no tool of this server is marked readOnlyHint, so none is called by default; "
                             f"name the tools to call (its tools: {available})")
    defaults = example_arguments() if example else {}
    specs = []
    for name in chosen:
        if arguments and name in arguments:
            args = dict(arguments[name])
        elif name in defaults:
            args = dict(defaults[name])
        else:
            args = arguments_from_schema(by_name[name].get("inputSchema") or {})
        specs.append(CallSpec(TOOLS_CALL, name, args))
    return specs


def load_args_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a JSON object mapping tool name -> arguments object."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"arguments file {p} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"arguments file {p} is a directory") from None
    except UnicodeDecodeError:
        raise UsageError(f"arguments file {p} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"arguments file {p} is not valid JSON: {exc.msg} at line {exc.lineno} "
                         f"column {exc.colno}") from None
    except OSError as exc:
        raise UsageError(f"cannot read arguments file {p}: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise UsageError(f"arguments file {p} must hold a JSON object mapping tool names to arguments")
    for tool, args in data.items():
        if not isinstance(args, dict):
            raise UsageError(f"arguments file {p}: the arguments of {tool!r} must be a JSON object")
    return data


# -- minimal arguments from a JSON schema ------------------------------------------------------------

_STRING_FORMATS = {"date-time": "2024-01-01T00:00:00Z", "date": "2024-01-01", "time": "00:00:00Z",
                   "email": "mcpprof@example.com", "uri": "https://example.com/", "url": "https://example.com/",
                   "uuid": "00000000-0000-4000-8000-000000000000", "ipv4": "127.0.0.1", "ipv6": "::1",
                   "hostname": "localhost"}


def arguments_from_schema(input_schema: Mapping[str, Any]) -> dict[str, Any]:
    """Minimal valid arguments for a tool: a value for every required property (from ``default``,
    ``examples[0]``, ``const``, the first ``enum`` value, else by type), nested objects likewise.
    Local ``$ref``s (``#/$defs/...``, as pydantic writes them) are followed."""
    value = _value(input_schema, input_schema, 0)
    return value if isinstance(value, dict) else {}


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any], depth: int) -> Mapping[str, Any]:
    while isinstance(schema.get("$ref"), str) and schema["$ref"].startswith("#/") and depth < 32:
        node: Any = root
        for part in schema["$ref"][2:].split("/"):
            node = node.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(node, dict) else {}
        schema, depth = (node if isinstance(node, dict) else {}), depth + 1
    return schema


def _value(schema: Any, root: Mapping[str, Any], depth: int) -> Any:
    if not isinstance(schema, dict) or depth > 32:
        return "mcpprof"
    schema = _resolve(schema, root, depth)
    for key in ("default", "const"):
        if key in schema:
            return schema[key]
    if isinstance(schema.get("examples"), list) and schema["examples"]:
        return schema["examples"][0]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(key) or [] if isinstance(o, dict)]
        non_null = [o for o in options if _resolve(o, root, depth).get("type") != "null"]
        if options:
            return _value((non_null or options)[0], root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), kind[0] if kind else None)
    if kind is None and "properties" in schema:
        kind = "object"
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: _value(props.get(name, {}), root, depth + 1) for name in schema.get("required") or []}
    if kind == "array":
        return [_value(schema.get("items", {}), root, depth + 1)] * int(schema.get("minItems") or 0)
    if kind in ("integer", "number"):
        return _number(schema, 1 if kind == "integer" else 1.0)
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return _string(schema)


def _number(schema: Mapping[str, Any], one: float) -> float:
    integer = isinstance(one, int)
    step = 1 if integer else 0.5
    low, high = schema.get("minimum"), schema.get("maximum")
    if isinstance(schema.get("exclusiveMinimum"), (int, float)):
        low = schema["exclusiveMinimum"] + step
    if isinstance(schema.get("exclusiveMaximum"), (int, float)):
        high = schema["exclusiveMaximum"] - step
    value: float = one
    if isinstance(low, (int, float)) and value < low:
        value = math.ceil(low) if integer else low
    if isinstance(high, (int, float)) and value > high:
        value = math.floor(high) if integer else high
    return int(value) if integer else float(value)


def _string(schema: Mapping[str, Any]) -> str:
    text = _STRING_FORMATS.get(schema.get("format", ""), "mcpprof")
    low, high = int(schema.get("minLength") or 0), schema.get("maxLength")
    if len(text) < low:
        text += "x" * (low - len(text))
    if isinstance(high, int) and len(text) > high:
        text = text[:high]
    return text


__all__ = ["CallSpec", "CallStats", "DriveResult", "drive", "select_tools", "arguments_from_schema",
           "load_args_file", "example_arguments", "ERROR_KINDS"]
