"""speedscope exports checked by speedscope itself: the JSON schema its npm package ships, the
importer's semantic rules, and the real app (its static build) in headless Chromium. The folded
export goes through the same app's collapsed-stack importer."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List

import pytest

from mcpprof.export import folded, speedscope
from mcpprof.model import ALLOC_OBJECTS, ALLOC_SPACE, CPU, SAMPLES, Frame, Profile, ProfileBuilder
from mcpprof.model import labels as L

from .checks import speedscope_semantic_errors

jsonschema = pytest.importorskip("jsonschema", reason="pip install jsonschema (in mcpprof's test extra)")


def edge_profiles() -> Dict[str, Profile]:
    empty = ProfileBuilder([SAMPLES, CPU]).build()
    memory = ProfileBuilder([ALLOC_OBJECTS, ALLOC_SPACE])
    memory.add([Frame("main", "app.py", 1), Frame("load", "app.py", 9)], [12, 48_000],
               {L.METHOD: "tools/call", L.TOOL: "load"})
    memory.add([Frame("main", "app.py", 1)], [1, 64])
    hostile = ProfileBuilder([SAMPLES])
    evil = "<script>alert(1)</script>"
    hostile.add([Frame(evil, "x.py", 1), Frame("semi;colon\ttab", "", 0), Frame("", "", 0)], [3],
                {L.METHOD: "tools/call", L.TOOL: evil})
    hostile.add([Frame("ünïcødé 日本語", "dir with space/f.py", 2)], [2])
    diff = ProfileBuilder([CPU])
    diff.add([Frame("a")], [-5], {"side": "base"})
    diff.add([Frame("a")], [8], {"side": "new"})
    diff.add([Frame("b")], [-3])
    return {"empty": empty, "memory": memory.build(), "hostile": hostile.build(), "diff": diff.build()}


@pytest.fixture
def speedscope_files(tmp_path: Path, workload) -> Dict[str, Path]:
    files = {"workload": tmp_path / "workload.speedscope.json"}
    files["workload"].write_bytes(speedscope.render(workload))
    for name, profile in edge_profiles().items():
        files[name] = tmp_path / f"{name}.speedscope.json"
        files[name].write_bytes(speedscope.render(profile))
    return files


def test_schema_and_semantics(speedscope_files, speedscope_schema):
    validator = jsonschema.Draft7Validator(speedscope_schema)
    for name, path in speedscope_files.items():
        doc = json.loads(path.read_bytes())
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
        assert errors == [], name
        assert speedscope_semantic_errors(doc) == [], name


def test_schema_rejects_what_we_must_not_write(speedscope_schema, workload):
    # the validator is really the strict one: a null where the schema wants a number fails
    validator = jsonschema.Draft7Validator(speedscope_schema)
    doc = json.loads(speedscope.render(workload))
    doc["activeProfileIndex"] = None
    assert list(validator.iter_errors(doc))


SANDWICH_ROW = re.compile(r"^([0-9.,]+\S*) \([^)]*\)\n\t([0-9.,]+\S*) \([^)]*\)\n\t(.+)$", re.M)


def sandwich_table(text: str) -> Dict[str, tuple]:
    """speedscope's sandwich view as {symbol: (total, self)}, read from the page text."""
    return {m.group(3): (m.group(1), m.group(2)) for m in SANDWICH_ROW.finditer(text)}


def _by_file(results: List[dict]) -> Dict[str, dict]:
    return {r["file"]: r for r in results}


@pytest.mark.browser
def test_loads_in_the_speedscope_app(speedscope_files, node_driver, tmp_path):
    results = _by_file(node_driver("speedscope_load.mjs", "--out", str(tmp_path / "shots"),
                                   *map(str, speedscope_files.values())))
    for name, path in speedscope_files.items():
        r = results[path.name]
        assert r["outcome"] == "ok", r
        assert r["importer"] == ["Importing as speedscope json file"], r
        assert not r["dialogs"] and not r["pageErrors"] and not r["offHost"], r
    work = results["workload.speedscope.json"]
    assert work["title"] == "mcpprof sampler profile - speedscope"
    n = len(json.loads(speedscope_files["workload"].read_bytes())["profiles"])
    assert f"CPU \u2014 all requests (1/{n})" in work["text"]
    assert Path(work["screenshot"]).stat().st_size > 10_000


@pytest.mark.browser
def test_sandwich_view_totals(workload, node_driver, tmp_path):
    path = tmp_path / "cpu.speedscope.json"
    path.write_bytes(speedscope.render(workload))
    [r] = node_driver("speedscope_load.mjs", "--view", "sandwich", str(path))
    assert r["outcome"] == "ok", r
    table = sandwich_table(r["text"])
    for symbol in ("get_forecast", "parse_grid", "rasterise", "JSONDecoder.decode", "<script>alert(1)</script>"):
        assert symbol in table, (symbol, r["text"][:2000])
    # speedscope shows nanoseconds as ms: get_forecast has 420+160+240+6+25 ms CPU
    assert table["get_forecast"][0] == "851.00ms", table


@pytest.mark.browser
def test_folded_loads_as_collapsed_stacks(workload, node_driver, tmp_path):
    files = []
    for options in ({}, {"request_frames": True, "thread_frames": True}, {"value_type": "samples"}):
        path = tmp_path / f"workload-{len(files)}.collapsedstack.txt"
        path.write_bytes(folded.render(workload, **options))
        files.append(path)
    hostile = tmp_path / "hostile.collapsedstack.txt"
    hostile.write_bytes(folded.render(edge_profiles()["hostile"], request_frames=True))
    files.append(hostile)
    results = _by_file(node_driver("speedscope_load.mjs", *map(str, files)))
    for path in files:
        r = results[path.name]
        assert r["outcome"] == "ok", r
        assert r["importer"] == ["Importing as collapsed stack format"], r
        assert r["title"] == f"{path.name} - speedscope"
        assert not r["dialogs"] and not r["pageErrors"] and not r["offHost"], r


@pytest.mark.browser
def test_folded_totals_in_sandwich_view(node_driver, tmp_path):
    # the sandwich table shows each symbol's total: 2,000 samples split 1,500 / 500
    b = ProfileBuilder([SAMPLES])
    b.add([Frame("main", "m.py", 1), Frame("semi;colon", "m.py", 2)], [1500])
    b.add([Frame("main", "m.py", 1), Frame("other\tone", "m.py", 3)], [500])
    path = tmp_path / "totals.collapsedstack.txt"
    path.write_bytes(folded.render(b.build()))
    [r] = node_driver("speedscope_load.mjs", "--view", "sandwich", str(path))
    assert r["outcome"] == "ok", r
    text = r["text"]
    assert sandwich_table(text) == {
        "semi:colon (m.py:2)": ("1,500", "1,500"),  # not split into two frames at the ';'
        "other one (m.py:3)": ("500", "500"),  # the tab did not drop the line
        "main (m.py:1)": ("2,000", "0"),
    }, text[:2000]
