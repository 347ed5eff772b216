"""Wrap one server of an MCP host's JSON config so the host runs it under ``mcpprof run``.

Formats (research/mcp-frameworks.md 4.1), all ``name -> {"command", "args", "env", ...}``:

* Claude Desktop ``claude_desktop_config.json``, Cursor ``.cursor/mcp.json``, Claude Code
  ``.mcp.json``: ``{"mcpServers": {...}}``;
* Claude Code ``~/.claude.json``: ``mcpServers`` at the top and under ``projects.<path>``;
* VS Code ``.vscode/mcp.json`` / profile ``mcp.json``: ``{"servers": {...}}`` (and ``settings.json``
  with ``{"mcp": {"servers": {...}}}``).

:func:`wrap_server` turns ``{"command": C, "args": A}`` into ``{"command": mcpprof, "args":
["run", "--out", DIR, "--", C, *A]}``, keeping every other key (``env``, ``type``, ...), after copying
the file to ``CONFIG.mcpprof-bak`` and recording the original entry in ``CONFIG.mcpprof-wrap.json``.
:func:`unwrap_server` puts the original entry back (from that record, else from the wrapped
arguments). Writes are atomic and keep the file's indentation. Runs outside servers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from ..atomic import write_atomic
from ..errors import UsageError

BACKUP_SUFFIX = ".mcpprof-bak"
RECORD_SUFFIX = ".mcpprof-wrap.json"


@dataclass
class WrapResult:
    host: str
    location: str
    backup: str = ""
    out_dir: str = ""
    command_line: str = ""


def _load(path: str) -> Tuple[Dict[str, Any], str]:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path} is not plain JSON ({exc.msg} at line {exc.lineno}); if it has comments, "
                         "remove them or edit the entry by hand") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} is not a JSON object; is it an MCP host config?")
    return data, text


def _indent_of(text: str) -> int:
    m = re.search(r'\n( +)"', text)
    return len(m.group(1)) if m else 2


def _save(path: str, data: Dict[str, Any], original_text: str) -> None:
    text = json.dumps(data, indent=_indent_of(original_text), ensure_ascii=False)
    if original_text.endswith("\n"):
        text += "\n"
    write_atomic(path, text, keep_mode=True)


def server_tables(data: Dict[str, Any]) -> List[Tuple[str, str, Dict[str, Any]]]:
    """Every (host, location, servers dict) in a config."""
    out: List[Tuple[str, str, Dict[str, Any]]] = []
    if isinstance(data.get("mcpServers"), dict):
        host = "Claude Code" if isinstance(data.get("projects"), dict) else "Claude Desktop / Cursor / Claude Code"
        out.append((host, "mcpServers", data["mcpServers"]))
    if isinstance(data.get("servers"), dict):
        out.append(("VS Code", "servers", data["servers"]))
    mcp = data.get("mcp")
    if isinstance(mcp, dict) and isinstance(mcp.get("servers"), dict):
        out.append(("VS Code settings", "mcp.servers", mcp["servers"]))
    projects = data.get("projects")
    if isinstance(projects, dict):
        for name, project in projects.items():
            if isinstance(project, dict) and isinstance(project.get("mcpServers"), dict):
                out.append(("Claude Code", f"projects[{name!r}].mcpServers", project["mcpServers"]))
    return out


def _find(data: Dict[str, Any], server: str, path: str) -> Tuple[str, str, Dict[str, Any]]:
    tables = server_tables(data)
    if not tables:
        raise UsageError(f"{path} has no MCP servers (no mcpServers or servers table): is it a host config?")
    hits = [(h, loc, t) for h, loc, t in tables if server in t]
    if not hits:
        names = sorted({n for _, _, t in tables for n in t})
        raise UsageError(f"no server named {server!r} in {path}; it has: {', '.join(names) or 'none'}")
    if len(hits) > 1:
        raise UsageError(f"{server!r} is defined in several places in {path} ({', '.join(h[1] for h in hits)}); "
                         "edit the one you mean by hand")
    return hits[0]


def mcpprof_command() -> List[str]:
    """How a host should start mcpprof (an absolute path: hosts strip PATH down)."""
    here = os.path.join(os.path.dirname(sys.executable), "mcpprof")
    if os.access(here, os.X_OK):
        return [here]
    found = shutil.which("mcpprof")
    if found:
        return [os.path.abspath(found)]
    return [sys.executable, "-m", "mcpprof"]


def is_wrapped(entry: Dict[str, Any]) -> bool:
    args = entry.get("args") or []
    cmd = os.path.basename(str(entry.get("command", "")))
    via_module = args[:2] == ["-m", "mcpprof"]
    return (cmd.startswith("mcpprof") or via_module) and "run" in args and "--" in args


def _safe_name(server: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", server).strip("._") or "server"


def wrap_server(path: str, server: str, out_dir: Optional[str] = None,
                rate_hz: Optional[float] = None) -> WrapResult:
    data, text = _load(path)
    host, location, table = _find(data, server, path)
    entry = table[server]
    if not isinstance(entry, dict):
        raise UsageError(f"{server!r} in {path} is not an object")
    if "command" not in entry:
        kind = entry.get("type") or ("url" if "url" in entry else "no command")
        raise UsageError(f"{server!r} is not a stdio server ({kind}); wrap the command that starts it instead")
    if is_wrapped(entry):
        raise UsageError(f"{server!r} already runs under mcpprof; use --undo first")
    out = os.path.abspath(os.path.expanduser(out_dir or os.path.join("~", ".mcpprof", "runs", _safe_name(server))))
    launcher = mcpprof_command()
    run_args = launcher[1:] + ["run", "--out", out]
    if rate_hz is not None:
        run_args += ["--rate", f"{rate_hz:g}"]
    old_args = entry.get("args") or []
    if not isinstance(old_args, list):
        raise UsageError(f"{server!r} has args that are not a list")
    backup = path + BACKUP_SUFFIX
    shutil.copy2(path, backup)
    record_path = path + RECORD_SUFFIX
    record = _read_record(record_path)
    record[f"{location}/{server}"] = entry
    new_entry = dict(entry)
    new_entry["command"] = launcher[0]
    new_entry["args"] = run_args + ["--", str(entry["command"])] + [str(a) for a in old_args]
    table[server] = new_entry
    _write_record(record_path, record)
    _save(path, data, text)
    return WrapResult(host, location, backup=backup, out_dir=out,
                      command_line=" ".join([new_entry["command"]] + new_entry["args"]))


def unwrap_server(path: str, server: str) -> WrapResult:
    data, text = _load(path)
    host, location, table = _find(data, server, path)
    entry = table[server]
    if not isinstance(entry, dict) or not is_wrapped(entry):
        raise UsageError(f"{server!r} in {path} does not run under mcpprof; nothing to undo")
    record_path = path + RECORD_SUFFIX
    record = _read_record(record_path)
    original = record.pop(f"{location}/{server}", None)
    args = entry["args"]
    rest = args[args.index("--") + 1:]
    if not rest:
        raise UsageError(f"{server!r} has no command after '--' in its args; restore it from {path + BACKUP_SUFFIX}")
    if not (isinstance(original, dict) and [original.get("command")] + list(original.get("args") or []) == rest):
        original = {"command": rest[0], "args": rest[1:],
                    **{k: v for k, v in entry.items() if k not in ("command", "args")}}
    table[server] = original
    _save(path, data, text)
    if record:
        _write_record(record_path, record)
    else:
        try:
            os.unlink(record_path)
        except OSError:
            pass
    return WrapResult(host, location, command_line=" ".join([str(original["command"])] +
                                                             [str(a) for a in original.get("args") or []]))


def _read_record(path: str) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_record(path: str, record: Dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(record, fh, indent=2)
        fh.write("\n")


__all__ = ["wrap_server", "unwrap_server", "server_tables", "is_wrapped", "mcpprof_command", "WrapResult"]
