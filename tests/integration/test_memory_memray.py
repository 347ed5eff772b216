"""memray attach to a running stdio MCP server under load: no request fails, the capture converts."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import threading
from pathlib import Path

import pytest

from mcpprof.bench.client import StdioClient
from mcpprof.bench.drive import CallSpec, drive
from mcpprof.collect.memray_collector import attach, read_capture
from mcpprof.export.registry import get_exporter

pytest.importorskip("memray")
SERVER = Path(__file__).parent / "leaky_servers" / "server.py"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("gdb") is None, reason="memray attach needs gdb")
def test_attach_under_load_fails_no_request_and_exports(tmp_path: Path) -> None:
    capture = str(tmp_path / "cap.bin")
    box: dict = {}

    async def main() -> None:
        async with StdioClient([sys.executable, str(SERVER), "leak"]) as client:
            await client.initialize()
            calls = [CallSpec("tools/call", "leaky", {}), CallSpec("tools/call", "fine", {"kib": 8})]
            worker = threading.Thread(target=lambda: box.setdefault("path", attach(client.pid, 2.0, capture)))
            loop = asyncio.get_running_loop()
            loop.call_later(0.5, worker.start)
            during = []  # load in 1 s chunks until attach + 2 s of tracking + detach are over
            while not during or worker.is_alive():
                during.append(await drive(client, calls, seconds=1.0, concurrency=4))
            worker.join()
            box["during_ok"] = sum(r.ok for r in during)
            box["during_errors"] = sum(sum(r.errors.values()) for r in during)
            box["after"] = await drive(client, calls, seconds=None, max_calls=20, concurrency=2)
            box["ok"] = client.invalid_lines == 0

    asyncio.run(main())
    assert box["path"] == capture and box["ok"]
    assert box["during_ok"] > 100 and box["during_errors"] == 0
    assert box["after"].ok == 20 and not box["after"].errors
    profile = read_capture(capture)
    assert profile.metadata["collector"] == "memray" and profile.samples
    leaky = [s for s, frames in profile.iter_stacks() if any(f.function == "leaky" for f in frames)]
    assert leaky or profile.metadata["python_allocator"]  # small objects may stay inside pymalloc arenas
    speedscope = json.loads(get_exporter("speedscope").render(profile))
    assert speedscope["profiles"][0]["unit"] == "bytes"
    assert b"<html" in get_exporter("html").render(profile).lower()
