"""pprof files read by their reference consumer, ``go tool pprof`` (Debian's ``golang-go``), and
imported by the speedscope app (its protobuf importer)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import List

import pytest

from mcpprof.analyse.ops import diff
from mcpprof.export import pprof
from mcpprof.model import ALLOC_OBJECTS, ALLOC_SPACE, Frame, ProfileBuilder
from mcpprof.model import labels as L

from .conftest import workload_profile


@pytest.fixture(scope="module")
def go() -> str:
    exe = shutil.which("go")
    if not exe:
        pytest.skip("go is not installed (apt-get install golang-go)")
    return exe


def go_pprof(go: str, *args: str) -> str:
    proc = subprocess.run([go, "tool", "pprof", *args], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PPROF_TMPDIR": "/tmp"})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def files(tmp_path: Path) -> List[Path]:
    work = workload_profile()
    work.metadata.update(start_ns=1_700_000_000_000_000_000, duration_ns=2_000_000_000)
    mem = ProfileBuilder([ALLOC_OBJECTS, ALLOC_SPACE], {"collector": "tracemalloc"})
    mem.add([Frame("<module>", "/app/m.py", 1, "m"), Frame("load", "/app/m.py", 9, "m")], [12, 48_000],
            {L.METHOD: "tools/call", L.TOOL: "load"})
    mem.add([Frame("<lambda>", "/app/m.py", 3), Frame("", "", 0)], [1, 64])
    out = []
    for name, profile in (("workload", work), ("memory", mem.build()), ("diff", diff(work, workload_profile()))):
        path = tmp_path / f"{name}.pb.gz"
        path.write_bytes(pprof.render(profile))
        out.append(path)
    return out


def test_go_tool_pprof_reads_it(go, tmp_path):
    work, mem, dif = files(tmp_path)
    raw = go_pprof(go, "-raw", str(work))
    assert "<unknown>" not in raw
    assert "samples/count cpu/nanoseconds[dflt] wall/nanoseconds" in raw
    assert "PeriodType: cpu nanoseconds" in raw and "Period: 1000000" in raw
    assert "gen_ai.tool.name:[render_map]" in raw and "thread.name:[AnyIO worker thread]" in raw
    assert "mcp.method.name:[tools/call]" in raw
    traces = go_pprof(go, "-traces", str(work))
    assert "<unknown>" not in traces
    assert re.search(r"^\s+<module>$", traces, re.M)  # not demangled away
    # leaf first: in the first trace the decoder's leaf precedes parse_grid and get_forecast
    block = traces[traces.index("JSONDecoder.decode"):]
    assert block.index("JSONDecoder.decode") < block.index("parse_grid") < block.index("get_forecast")
    tags = go_pprof(go, "-tags", str(work))
    assert "gen_ai.tool.name: Total" in tags and "851.0ms" in tags  # get_forecast's CPU
    top = go_pprof(go, "-top", "-sample_index=wall", str(work))
    assert "rasterise" in top
    mem_raw = go_pprof(go, "-raw", str(mem))
    assert "alloc_space/bytes[dflt]" in mem_raw and "<unknown>" not in mem_raw
    assert "<lambda>" in go_pprof(go, "-traces", str(mem))
    # a diff profile: base negated, labelled; net zero everywhere for a profile against itself
    assert "mcpprof.diff:[base]" in go_pprof(go, "-raw", str(dif))
    # the Pyroscope variant: the same file with Prometheus label names
    pyro = tmp_path / "pyroscope.pb.gz"
    pyro.write_bytes(pprof.render(workload_profile(), pyroscope=True))
    pyro_raw = go_pprof(go, "-raw", str(pyro))
    assert "gen_ai_tool_name:[render_map]" in pyro_raw and "mcp_method_name:[tools/call]" in pyro_raw


@pytest.mark.browser
def test_speedscope_imports_it(node_driver, tmp_path):
    work = files(tmp_path)[0]
    [r] = node_driver("speedscope_load.mjs", str(work))
    assert r["outcome"] == "ok", r
    assert r["importer"] == ["Importing as protobuf encoded pprof file"], r
    assert not r["pageErrors"] and not r["offHost"], r
