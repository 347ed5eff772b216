"""What ``mcpprof profile`` (and ``leaks``, ``memory``) call on a server: a :class:`CallSpec` per
kind of call; :func:`select_tools` chooses the tools and their arguments, :func:`arguments_from_schema`
derives minimal valid arguments from a tool's input schema, :func:`load_args_file` reads
user-given arguments, :func:`example_arguments` those of the bundled example server."""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

from ..errors import UsageError
from .jsonfile import read_json

TOOLS_CALL, RESOURCES_READ, PROMPTS_GET = "tools/call", "resources/read", "prompts/get"


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
    data = read_json(p, "arguments file")
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


__all__ = ["CallSpec", "TOOLS_CALL", "RESOURCES_READ", "PROMPTS_GET", "select_tools", "arguments_from_schema", "load_args_file", "example_arguments"]
