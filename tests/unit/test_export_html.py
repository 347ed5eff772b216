"""HTML flame graph: golden JSON island, escaping, no network, no absolute paths, pruning.
(The page's behaviour in a real browser is checked in tests/consumers/test_html_chromium.py.)"""

from __future__ import annotations

import json
import re

import pytest

from mcpprof import __version__
from mcpprof.errors import UsageError
from mcpprof.export import html
from mcpprof.model import CPU, SAMPLES, Frame, ProfileBuilder
from mcpprof.model import labels as L

ISLAND = re.compile(r'<script type="application/json" class="fg-data">(.*?)</script>', re.S)
EVIL = "<script>alert(1)</script>"


def page_of(profile, **options) -> str:
    out = html.render(profile, **options)
    assert isinstance(out, bytes)
    return out.decode("utf-8")


def island_of(page: str) -> dict:
    found = ISLAND.findall(page)
    assert len(found) == 1
    return json.loads(found[0])


def test_golden_island(mcp_profile, golden):
    data = island_of(page_of(mcp_profile))
    assert data["generator"] == f"mcpprof {__version__}"
    data["generator"] = "mcpprof <version>"
    golden("mcp.flamegraph.island.json", json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def test_island_matches_the_profile(mcp_profile):
    data = island_of(page_of(mcp_profile))
    assert [t["name"] for t in data["types"]] == ["samples", "cpu", "wall"]
    assert data["types"][data["default"]]["name"] == "cpu"
    assert [t["total"] for t in data["types"]] == [mcp_profile.total(t) for t in ("samples", "cpu", "wall")]
    assert [t["label"] for t in data["types"]] == ["Samples", "CPU", "Wall"]
    assert data["types"][0]["noun"] == "samples"
    n = len(data["name"])
    assert len(data["parent"]) == n and all(len(v) == n for v in data["values"])
    names = [data["names"][i] for i in data["name"]]
    assert names[0] == "all" and "tools/call echo" in names and "echo (server.py:20)" in names
    assert island_of(page_of(mcp_profile, value_type="wall"))["default"] == 2


def test_hostile_strings_stay_text():
    b = ProfileBuilder([SAMPLES])
    b.add([Frame("main", "srv.py", 1), Frame(EVIL, "srv.py", 2)], [5],
          {L.METHOD: "tools/call", L.TOOL: EVIL})
    b.add([Frame("a&b</script><!--", "srv.py", 3)], [5])
    page = page_of(b.build(), title=EVIL)
    assert EVIL not in page
    assert "</script><!--" not in page and "<!--" not in page
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt;</title>" in page
    raw = ISLAND.findall(page)[0]
    assert "<" not in raw and ">" not in raw and "&" not in raw
    data = json.loads(raw)
    assert f"tools/call {EVIL}" in data["names"] and f"{EVIL} (srv.py:2)" in data["names"]
    assert data["title"] == EVIL


def test_no_network_no_absolute_paths(mcp_profile):
    page = page_of(mcp_profile)
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"""\b(?:src|href|action|poster)\s*=\s*["']?(?!data:|#)[^"'\s>]""", page)
    assert "@import" not in page and "url(" not in page and "@font-face" not in page
    assert "fetch(" not in page and "XMLHttpRequest" not in page and "WebSocket" not in page
    assert f'content="{html.CSP}"' in page and "default-src 'none'" in html.CSP
    for secret in ("/home/alice", "/opt/venv", "/usr/lib/python3"):
        assert secret not in page
    full = page_of(mcp_profile, full_paths=True)
    assert "/home/alice/srv/server.py:20" in full


def test_assets_are_package_data_and_safe_to_inline():
    js, css = html.script(), html.asset("flamegraph.css")
    assert "fg-data" in js and "mcpprofFlameUtil" in js and ".mcpprof-flamegraph" in css
    for text in (js, css):
        assert "</script" not in text.lower() and "</style" not in text.lower()
        assert "http" not in text.replace("XMLHttpRequest", "")
    # every CSS rule is scoped, so the fragment can sit in a bigger page
    rules = [r.strip() for r in re.sub(r"/\*.*?\*/", "", css, flags=re.S).split("}") if r.strip()]
    for rule in rules:
        selectors = rule.split("{")[0]
        assert all(s.strip().startswith(".mcpprof-flamegraph") for s in selectors.split(",")), rule


def test_fragment_embeds_without_page(mcp_profile):
    frag = html.render_fragment(mcp_profile)
    assert frag.startswith('<div class="mcpprof-flamegraph">') and frag.endswith("</div>")
    assert "<html" not in frag and "<style" not in frag
    assert html.stylesheet() == html.asset("flamegraph.css")


def test_pruning_is_stated(mcp_profile):
    data = island_of(page_of(mcp_profile, min_fraction=0.07))
    names = [data["names"][i] for i in data["name"]]
    assert "[pruned]" in names and "tools/list" not in names
    cpu = data["types"][1]
    assert cpu["pruned"] == 1_000_000 and data["pruned_subtrees"] == 1 and data["min_fraction"] == 0.07
    # nothing pruned at 0
    data = island_of(page_of(mcp_profile, min_fraction=0))
    assert "[pruned]" not in data["names"] and all(t["pruned"] == 0 for t in data["types"])


def test_big_profile_is_pruned_to_a_small_page():
    b = ProfileBuilder([SAMPLES, CPU])
    for i in range(3000):
        b.add([Frame("main", "m.py", 1), Frame(f"f{i % 300}", "m.py", 2), Frame(f"g{i}", "m.py", 3)],
              [1 + i % 2, 1000 * (1 + i % 2)])
    page = page_of(b.build())  # 4,500 samples: boxes under 2.25 samples (0.05 %) are merged
    data = island_of(page)
    assert not any(n.startswith("g") for n in data["names"])
    assert len(data["name"]) == 3 + 300 + 300  # all, request, main; f0..f299, one [pruned] under each
    assert len(page) < 40_000 + len(html.script()) + len(html.asset("flamegraph.css"))


@pytest.mark.parametrize("bad", [-0.1, 1.0, 2])
def test_bad_min_fraction(mcp_profile, bad):
    with pytest.raises(UsageError):
        html.render(mcp_profile, min_fraction=bad)


def test_unknown_value_type(mcp_profile):
    with pytest.raises(UsageError, match="alloc_space"):
        html.render(mcp_profile, value_type="alloc_space")


def test_empty_profile_renders():
    data = island_of(page_of(ProfileBuilder([CPU]).build()))
    assert data["names"] == ["all"] and data["types"][0]["total"] == 0


def test_script_once_per_page_and_one_page_shell(mcp_profile):
    frag = html.render_fragment(mcp_profile, script_inline=False)
    assert "<script>" not in frag and 'class="fg-data"' in frag
    page = html.page(EVIL, frag + frag + f"<script>{html.script()}</script>", "p{}")
    assert page.count("<script>") == 1 and f'content="{html.CSP}"' in page
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt;</title>" in page and "<style>p{}</style>" in page
    from mcpprof.report import render_report

    report = render_report(mcp_profile).decode()
    assert report.count('class="mcpprof-flamegraph"') > 1
    assert report.count("<script>") == 2  # the flame graph script (every view) and the view switcher
    head = page_of(mcp_profile).split("<title>")[0]
    assert report.split("<title>")[0] == head  # the same page head
