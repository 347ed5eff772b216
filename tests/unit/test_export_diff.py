"""Differential output: folded stacks with two counts per line (sorted, zero where a side lacks
the stack), and the differential flame graph's data and page (its drawing in a browser: red where
a share grew, blue where it shrank, is checked in tests/consumers/test_diff_chromium.py)."""

from __future__ import annotations

import json
import re

import pytest

from mcpprof.analyse.ops import diff
from mcpprof.errors import UsageError
from mcpprof.export import diff as D
from mcpprof.export import html
from mcpprof.export.registry import get_exporter, guess_from_filename
from mcpprof.model import CPU, SAMPLES, WALL

from .conftest import MCP_METADATA, profile_from_sections

BASE = [({"mcp.method.name": "tools/call", "gen_ai.tool.name": "echo"}, """
main (a.py:1);echo (a.py:5) 10 100
main (a.py:1);echo (a.py:5);dumps (j.py:2) 20 200
main (a.py:1);gone (a.py:9) 5 50
""")]
NEW = [({"mcp.method.name": "tools/call", "gen_ai.tool.name": "echo"}, """
main (a.py:1);echo (a.py:5) 10 100
main (a.py:1);echo (a.py:5);dumps (j.py:2) 60 600
main (a.py:1);added (a.py:3) 7 70
""")]


def pair():
    return (profile_from_sections(BASE, [SAMPLES, CPU], MCP_METADATA),
            profile_from_sections(NEW, [SAMPLES, CPU], MCP_METADATA))


def test_two_counts(golden):
    base, new = pair()
    out = D.render_folded(diff(base, new))
    golden("diff.cpu.folded", out)
    assert out.decode().splitlines() == [
        "tools/call echo;main (a.py:1);added (a.py:3) 0 70",
        "tools/call echo;main (a.py:1);echo (a.py:5) 100 100",
        "tools/call echo;main (a.py:1);echo (a.py:5);dumps (j.py:2) 200 600",
        "tools/call echo;main (a.py:1);gone (a.py:9) 50 0",
    ]
    assert D.folded_pair(base, new, "samples") == D.render_folded(diff(base, new), "samples")


def test_normalize_scales_base_to_new_total():
    base, new = pair()
    lines = D.folded_pair(base, new, normalize=True).decode().splitlines()
    a = sum(int(line.split()[-2]) for line in lines)
    b = sum(int(line.split()[-1]) for line in lines)
    assert abs(a - b) <= len(lines) and b == 770


def test_mcp_profile_against_itself_and_errors(mcp_profile):
    out = D.folded_pair(mcp_profile, mcp_profile, WALL).decode()
    assert all(line.split()[-1] == line.split()[-2] for line in out.splitlines())
    with pytest.raises(UsageError):
        D.render_folded(mcp_profile)  # not a diff profile
    with pytest.raises(UsageError):
        D.folded_pair(mcp_profile, mcp_profile, "alloc_space")


# -- the differential flame graph (HTML) ----------------------------------------------------------

ISLAND = re.compile(r'<script type="application/json" class="fg-data">(.*?)</script>', re.S)
EVIL = "<script>alert(1)</script>"
ECHO = {"mcp.method.name": "tools/call", "gen_ai.tool.name": "echo"}
FETCH = {"mcp.method.name": "tools/call", "gen_ai.tool.name": "fetch"}
HOSTILE = {"mcp.method.name": "tools/call", "gen_ai.tool.name": EVIL}
# CPU: base total 500, new total 1000 (a run twice as long). dumps grows in share (40% -> 60%);
# tools/call fetch grows in value (150 -> 200) but shrinks in share (30% -> 20%); gone is only in
# the base, added only in the new run.
BASE2 = [(ECHO, """
main (a.py:1);echo (a.py:5) 10 100
main (a.py:1);echo (a.py:5);dumps (j.py:2) 20 200
main (a.py:1);gone (a.py:9) 4 40
"""), (FETCH, "main (a.py:1);fetch (f.py:3) 15 150"), (HOSTILE, f"main (a.py:1);{EVIL} (e.py:1) 1 10")]
NEW2 = [(ECHO, """
main (a.py:1);echo (a.py:5) 10 100
main (a.py:1);echo (a.py:5);dumps (j.py:2) 60 600
main (a.py:1);added (a.py:3) 9 90
"""), (FETCH, "main (a.py:1);fetch (f.py:3) 20 200"), (HOSTILE, f"main (a.py:1);{EVIL} (e.py:1) 1 10")]


def diff_pair():
    """(base, new) of the differential flame graph tests (also drawn in tests/consumers)."""
    return (profile_from_sections(BASE2, [SAMPLES, CPU], MCP_METADATA),
            profile_from_sections(NEW2, [SAMPLES, CPU], MCP_METADATA))


def nodes(data: dict) -> dict:
    """{path (names from the root's child down): (base, new)} of the island's default type."""
    t = data["default"]
    paths = {0: ()}
    out = {}
    for i, (ni, p) in enumerate(zip(data["name"], data["parent"])):
        if i:
            paths[i] = paths[p] + (data["names"][ni],)
            out[paths[i]] = (data["base"][t][i], data["values"][t][i])
    return out


def share_change(data: dict, path: tuple) -> float:
    """The change the page shows for a frame (in %), comparing shares: that of its total
    (inclusive) share of the whole profile, each side divided by its own total."""
    t = data["default"]
    b, n = nodes(data)[path]
    bt, nt = data["types"][t]["base_total"], data["types"][t]["total"]
    return 100 * ((n / nt) / (b / bt) - 1)


def test_island_keeps_both_sides(golden):
    base, new = diff_pair()
    data = D.island(diff(base, new))
    assert data["types"][data["default"]]["name"] == "cpu"
    assert [(t["base_total"], t["total"]) for t in data["types"]] == [(50, 100), (500, 1000)]
    assert data["diff"] == {"normalize": True, "sides": ["base", "new"]}
    assert len(data["base"]) == len(data["values"]) == 2 and len(data["base"][1]) == len(data["name"])
    got = nodes(data)
    dumps = ("tools/call echo", "main (a.py:1)", "echo (a.py:5)", "dumps (j.py:2)")
    fetch = ("tools/call fetch",)
    gone = ("tools/call echo", "main (a.py:1)", "gone (a.py:9)")
    added = ("tools/call echo", "main (a.py:1)", "added (a.py:3)")
    assert got[dumps] == (200, 600)
    assert share_change(data, dumps) == pytest.approx(50.0)        # grew: red, "share +50.0%"
    assert got[fetch] == (150, 200)
    assert share_change(data, fetch) == pytest.approx(-100 / 3)    # shrank: blue, "share -33.3%"
    assert got[gone] == (40, 0) and got[added] == (0, 90)         # only in base / only in new
    data["generator"] = "mcpprof <version>"
    golden("diff.flamegraph.island.json", json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def test_page_is_the_flame_graph_page_with_a_second_value():
    base, new = diff_pair()
    page = D.html_pair(base, new).decode()
    assert page == html.render(diff(base, new)).decode()  # the html exporter draws diffs too
    assert page.count("<script>") == 1 and 'class="mcpprof-flamegraph fg-diff"' in page
    for control in ('class="fg-side"', 'class="fg-norm"', 'class="fg-req"', 'class="fg-gone"', 'class="fg-search"'):
        assert control in page
    assert "default-src 'none'" in page and "http://" not in page and "https://" not in page
    data = json.loads(ISLAND.findall(page)[0])
    assert data["title"] == "mcpprof sampler profile \u2014 differential"
    off = json.loads(ISLAND.findall(D.html_pair(base, new, normalize=False, title="t").decode())[0])
    assert off["diff"]["normalize"] is False and off["title"] == "t"


def test_hostile_names_stay_text():
    base, new = diff_pair()
    page = D.html_pair(base, new, title=EVIL).decode()
    assert EVIL not in page and "<title>&lt;script&gt;alert(1)&lt;/script&gt;</title>" in page
    raw = ISLAND.findall(page)[0]
    assert "<" not in raw and ">" not in raw and "&" not in raw
    names = json.loads(raw)["names"]
    assert f"tools/call {EVIL}" in names and f"{EVIL} (e.py:1)" in names


def test_base_only_frames_survive_pruning():
    base, new = diff_pair()
    data = D.island(diff(base, new), min_fraction=0.07)  # gone is 8% of the base, 0% of the new run
    names = [data["names"][i] for i in data["name"]]
    assert "gone (a.py:9)" in names and "added (a.py:3)" in names and "[pruned]" in names
    t = data["types"][data["default"]]
    assert t["base_pruned"] == 10 and t["pruned"] == 10  # the hostile tool: 2% and 1%, in both
    tops = {p: bn for p, bn in nodes(data).items() if len(p) == 1}
    assert tops[("[pruned]",)] == (10, 10) and sum(b for b, _ in tops.values()) == 500


def test_diff_exporters_are_registered_and_refuse_plain_profiles(mcp_profile):
    assert get_exporter("diff-html").render is D.render_html
    assert get_exporter("diff-folded").render is D.render_folded
    assert guess_from_filename("x.diff.html") is get_exporter("diff-html")
    assert guess_from_filename("x.html") is get_exporter("html")
    with pytest.raises(UsageError, match="not a diff profile"):
        D.render_html(mcp_profile)
    base, _ = diff_pair()
    with pytest.raises(UsageError, match="different sample types"):
        D.html_pair(base, mcp_profile)


def test_cli_writes_html_or_folded_by_suffix(tmp_path, monkeypatch, capsys):
    import mcpprof
    from mcpprof.cli.main import main

    base, new = diff_pair()
    mcpprof.save(base, tmp_path / "a.mcpprof")
    mcpprof.save(new, tmp_path / "b.mcpprof")
    monkeypatch.chdir(tmp_path)
    assert main(["diff", "a.mcpprof", "b.mcpprof", "-o", "d.html", "--top", "3"]) == 0
    err = capsys.readouterr().err
    assert "wrote d.html (differential flame graph" in err and "dumps (j.py:2)" in err
    assert (tmp_path / "d.html").read_bytes() == D.html_pair(base, new)
    assert main(["diff", "a.mcpprof", "b.mcpprof", "-o", "d.html"]) == 2  # no overwrite without --force
    assert "d.html exists" in capsys.readouterr().err
    assert main(["diff", "a.mcpprof", "b.mcpprof", "-o", "d.html", "--force", "--no-normalize", "--top", "0"]) == 0
    assert json.loads(ISLAND.findall((tmp_path / "d.html").read_text())[0])["diff"]["normalize"] is False
    assert main(["diff", "a.mcpprof", "b.mcpprof", "--top", "0"]) == 0  # the default: diff.folded
    assert (tmp_path / "diff.folded").read_bytes() == D.folded_pair(base, new)
    assert main(["diff", "a.mcpprof", "b.mcpprof", "-o", "n.folded", "--normalize", "--top", "0"]) == 0
    assert (tmp_path / "n.folded").read_bytes() == D.folded_pair(base, new, normalize=True)
    assert main(["diff", "a.mcpprof", "b.mcpprof", "-o", "x.html", "--type", "alloc_space"]) == 2
    assert "no value type 'alloc_space'" in capsys.readouterr().err
