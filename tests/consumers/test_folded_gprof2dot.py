"""Folded exports read whole by gprof2dot's collapsed-stack parser (``gprof2dot -f collapse``):
every line parses, the totals are the profile's, and ``function (file:line)`` frames are
recognised as functions of that file."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mcpprof.export import folded
from mcpprof.model import SAMPLES, Frame, ProfileBuilder

gprof2dot = pytest.importorskip("gprof2dot", reason="pip install gprof2dot (in mcpprof's test extra)")


def parse(path):
    with open(path, encoding="utf-8") as f:
        return gprof2dot.CollapseParser(f).parse()


@pytest.mark.parametrize("options", [
    {},
    {"value_type": "samples"},
    {"value_type": "wall", "request_frames": True, "thread_frames": True},
])
def test_totals_match(workload, tmp_path, options):
    path = tmp_path / "cpu.folded"
    path.write_bytes(folded.render(workload, **options))
    total = workload.total(options.get("value_type"))
    parsed = parse(path)
    assert parsed[gprof2dot.SAMPLES] == total
    assert sum(f[gprof2dot.SAMPLES] for f in parsed.functions.values()) == total  # self samples
    modules = {f.name: f.module for f in parsed.functions.values()}
    assert modules["get_forecast"] == "server.py"
    assert modules["JSONDecoder.decode"] == "json/decoder.py"


def test_cli_reads_the_whole_file(workload, tmp_path):
    path = tmp_path / "cpu.folded"
    path.write_bytes(folded.render(workload, request_frames=True))
    out = tmp_path / "cpu.dot"
    proc = subprocess.run([sys.executable, "-m", "gprof2dot", "-f", "collapse", "-n", "0", "-e", "0",
                           "-o", str(out), str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    dot = out.read_text()
    assert dot.startswith("digraph") and "get_forecast" in dot and "rasterise" in dot


def test_hostile_names_do_not_break_the_parser(tmp_path):
    b = ProfileBuilder([SAMPLES])
    b.add([Frame("a;b", "x.py", 1), Frame("tab\there", "x.py", 2), Frame("", "", 0)], [7])
    b.add([Frame("line\nbreak", "x.py", 3)], [5])
    path = tmp_path / "h.folded"
    path.write_bytes(folded.render(b.build()))
    parsed = parse(path)
    assert parsed[gprof2dot.SAMPLES] == 12
    assert {f.name for f in parsed.functions.values()} >= {"a:b", "[unknown]", "line break (x.py:3)"}
