"""The leak rules on readings built from known growth patterns (deterministic)."""

from __future__ import annotations

from typing import Dict, List

from mcpprof.analyse.leaks import FILLING, INCONCLUSIVE, LEAK, NO_LEAK, Rules, analyse_tool, leak_profile

WINDOWS = [5, 10, 20]
SITE = [["/srv/tools.py", 42], ["/srv/tools.py", 10]]
NOISE = [["/lib/sdk.py", 7]]


def readings(site_bytes: List[int], noise: List[int] = None, rss: List[int] = None) -> List[Dict]:
    noise = noise or [5000] * len(site_bytes)
    rss = rss or [50 << 20] * len(site_bytes)
    return [{"traced": b + n, "rss": r, "sites": [[SITE, b, b // 256], [NOISE, n, 10]]}
            for b, n, r in zip(site_bytes, noise, rss)]


def cumulative(rates: List[float], windows=WINDOWS, start: int = 1000) -> List[int]:
    out = [start]
    for r, n in zip(rates, windows):
        out.append(int(out[-1] + r * n))
    return out


def test_steady_growth_is_a_leak_with_its_site() -> None:
    r = analyse_tool("leaky", readings(cumulative([300, 300, 300])), WINDOWS)
    assert r.verdict == LEAK and r.site.where == "/srv/tools.py:42"
    assert r.flagged_after == 35 and r.bytes_per_call == 300
    assert r.site.stack[-1].endswith("(/srv/tools.py:42)")


def test_two_windows_are_not_enough_for_a_leak() -> None:
    r = analyse_tool("leaky", readings(cumulative([300, 300], WINDOWS[:2])), WINDOWS[:2])
    assert r.verdict == INCONCLUSIVE


def test_falling_growth_is_a_filling_cache() -> None:
    windows = [5, 10, 20, 40]
    r = analyse_tool("cache", readings(cumulative([1000, 500, 80, 0], windows)), windows)
    assert r.verdict == FILLING and r.site.where == "/srv/tools.py:42"


def test_flat_live_memory_is_no_leak_even_when_rss_grows() -> None:
    mib = 1 << 20
    r = analyse_tool("churn", readings([1000] * 4, rss=[50 * mib, 60 * mib, 61 * mib, 61 * mib]), WINDOWS)
    assert r.verdict == NO_LEAK and r.site is None
    assert any("retention" in line for line in r.evidence)


def test_small_growth_below_the_threshold_is_no_leak() -> None:
    r = analyse_tool("echo", readings(cumulative([40, 40, 40])), WINDOWS, Rules(min_rate=64))
    assert r.verdict == NO_LEAK


def test_growth_profile_holds_only_what_grew() -> None:
    p = leak_profile("leaky", readings(cumulative([300, 300, 300])))
    assert len(p.samples) == 1 and p.samples[0].values[0] == 300 * 35
    assert p.samples[0].label("gen_ai.tool.name") == "leaky"


SDK_PARSE = [["/venv/lib/python3.11/site-packages/pydantic/type_adapter.py", 466],
             ["/venv/lib/python3.11/site-packages/mcp/server/stdio.py", 189]]


def _library(path: str) -> bool:
    return "site-packages/" in path or path.startswith("/lib/")


def test_steady_growth_with_only_library_frames_is_never_a_leak() -> None:
    """What the agent's request spans keep (one tool-name string the SDK's JSON parser allocated per
    call): steady, yet not the tool's; inconclusive with the site and the reason, not a leak."""
    series = cumulative([90, 90, 90])
    reads = [{"traced": b, "rss": 50 << 20, "sites": [[SDK_PARSE, b, b // 90]]} for b in series]
    r = analyse_tool("echo_with_a_long_name", reads, WINDOWS, is_library=_library)
    assert r.verdict == INCONCLUSIVE and r.site.where.endswith("type_adapter.py:466")
    assert r.site.own is False and r.flagged_after is None
    assert any("only library frames" in line for line in r.evidence)
    # without the library test every site counts as the server's (the rule as before)
    assert analyse_tool("echo_with_a_long_name", reads, WINDOWS).verdict == LEAK


def test_a_server_frame_anywhere_on_the_traceback_keeps_the_leak() -> None:
    """A leak made through a library call (``lib.store(...)`` from the tool) is still the tool's."""
    through_lib = [["/venv/lib/python3.11/site-packages/lib/store.py", 9], ["/srv/tools.py", 42]]
    series = cumulative([300, 300, 300])
    reads = [{"traced": b, "rss": 50 << 20, "sites": [[through_lib, b, b // 256], [SDK_PARSE, 5000, 10]]}
             for b in series]
    r = analyse_tool("leaky", reads, WINDOWS, is_library=_library)
    assert r.verdict == LEAK and r.site.own and r.site.where.endswith("store.py:9")
