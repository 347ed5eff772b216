"""`mcpprof wrap`: rewriting one server of a host's JSON config, and --undo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcpprof.cli.main import main
from mcpprof.errors import UsageError
from mcpprof.launch.hosts import is_wrapped, unwrap_server, wrap_server

TIME = {"command": "uvx", "args": ["mcp-server-time"], "env": {"TZ": "UTC"}}
OTHER = {"command": "node", "args": ["other.js"]}

CONFIGS = {
    "claude_desktop_config.json": {"mcpServers": {"time": TIME, "other": OTHER}},
    "cursor-mcp.json": {"mcpServers": {"time": dict(TIME)}},
    "claude-code-project.mcp.json": {"mcpServers": {"time": {"type": "stdio", **TIME}}},
    "claude.json": {"numStartups": 3, "mcpServers": {"other": OTHER},
                    "projects": {"/home/me/p": {"mcpServers": {"time": dict(TIME)}, "allowedTools": []}}},
    "vscode-mcp.json": {"servers": {"time": {"type": "stdio", **TIME}}, "inputs": []},
    "vscode-settings.json": {"editor.fontSize": 12, "mcp": {"servers": {"time": dict(TIME)}}},
}


def _entry(data: dict) -> dict:
    for table in (data.get("mcpServers"), data.get("servers"), (data.get("mcp") or {}).get("servers")):
        if table and "time" in table:
            return table["time"]
    return data["projects"]["/home/me/p"]["mcpServers"]["time"]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_wrap_then_undo_restores_the_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    original = json.dumps(CONFIGS[name], indent=4) + "\n"
    path.write_text(original)
    result = wrap_server(str(path), "time", out_dir=str(tmp_path / "runs"))
    data = json.loads(path.read_text())
    entry = _entry(data)
    assert is_wrapped(entry)
    assert entry["args"][-3:] == ["--", "uvx", "mcp-server-time"]
    assert ["--out", str(tmp_path / "runs")] == entry["args"][entry["args"].index("--out"):][:2]
    assert entry["env"] == {"TZ": "UTC"}  # the rest of the entry is kept
    assert entry["command"].startswith("/")  # absolute: hosts strip PATH
    assert Path(result.backup).read_text() == original
    assert path.read_text().startswith("{\n    ")  # indentation kept
    if "other" in json.dumps(CONFIGS[name]):
        assert "other.js" in path.read_text()
    unwrap_server(str(path), "time")
    assert json.loads(path.read_text()) == CONFIGS[name]
    assert path.read_text() == original


def test_undo_without_the_record_parses_the_wrapped_args(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"mcpServers": {"time": TIME}}))
    wrap_server(str(path), "time")
    Path(str(path) + ".mcpprof-wrap.json").unlink()
    unwrap_server(str(path), "time")
    assert json.loads(path.read_text())["mcpServers"]["time"] == TIME


@pytest.mark.parametrize("config,server,needle", [
    ({"mcpServers": {"time": TIME}}, "nope", "no server named 'nope'"),
    ({"servers": {"web": {"type": "http", "url": "http://x"}}}, "web", "not a stdio server"),
    ({"something": 1}, "time", "no MCP servers"),
])
def test_bad_input_is_a_usage_error(tmp_path: Path, config: dict, server: str, needle: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config))
    with pytest.raises(UsageError) as err:
        wrap_server(str(path), server)
    assert needle in str(err.value)
    assert json.loads(path.read_text()) == config  # untouched


def test_twice_and_undo_of_unwrapped_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"mcpServers": {"time": TIME}}))
    with pytest.raises(UsageError, match="nothing to undo"):
        unwrap_server(str(path), "time")
    wrap_server(str(path), "time")
    with pytest.raises(UsageError, match="already runs under mcpprof"):
        wrap_server(str(path), "time")


def test_cli_exit_codes_and_jsonc(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "mcp.json"
    path.write_text('{\n  // a comment\n  "servers": {}\n}\n')
    assert main(["wrap", str(path), "time"]) == 2
    err = capsys.readouterr().err
    assert "not plain JSON" in err and len(err.strip().splitlines()) == 1
    path.write_text(json.dumps({"mcpServers": {"time": TIME}}))
    assert main(["wrap", str(path), "time", "--out", str(tmp_path / "o")]) == 0
    assert main(["wrap", str(path), "time", "--undo"]) == 0
    assert json.loads(path.read_text())["mcpServers"]["time"] == TIME
    assert capsys.readouterr().out == ""  # messages go to stderr
