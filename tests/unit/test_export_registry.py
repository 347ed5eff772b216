"""The exporter registry: names, extensions, lookup, guessing from file names, option checks."""

from __future__ import annotations

import inspect

import pytest

from mcpprof.errors import UsageError
from mcpprof.export import folded, html, speedscope
from mcpprof.export.registry import EXPORTERS, Exporter, get_exporter, guess_from_filename


MINE = ["folded", "speedscope", "html"]  # pprof and trace are registered (and tested) by their modules


def test_registered_exporters():
    assert list(EXPORTERS)[:3] == MINE
    assert [EXPORTERS[n].extension for n in MINE] == [".folded", ".speedscope.json", ".html"]
    assert EXPORTERS["folded"].render is folded.render
    assert EXPORTERS["speedscope"].render is speedscope.render
    assert EXPORTERS["html"].render is html.render
    assert not any(EXPORTERS[n].binary for n in MINE)
    extensions = [ext for e in EXPORTERS.values() for ext in (e.extension,) + e.extra_extensions]
    assert len(extensions) == len(set(extensions))
    for name, e in EXPORTERS.items():
        assert isinstance(e, Exporter) and e.name == name
        assert e.description and e.extension.startswith(".")
        params = list(inspect.signature(e.render).parameters.values())
        assert params[0].name == "profile"
        assert all(p.default is not inspect.Parameter.empty for p in params[1:]), name


def test_frozen():
    with pytest.raises(Exception):
        EXPORTERS["html"].name = "x"  # type: ignore[misc]


def test_get_exporter():
    assert get_exporter("speedscope") is EXPORTERS["speedscope"]
    assert get_exporter("HTML") is EXPORTERS["html"]
    with pytest.raises(UsageError) as err:
        get_exporter("svg")
    assert str(err.value) == f"unknown export format 'svg'; choose one of: {', '.join(EXPORTERS)}"
    assert str(err.value).startswith("unknown export format 'svg'; choose one of: folded, speedscope, html")


@pytest.mark.parametrize("path, expected", [
    ("cpu.folded", "folded"),
    ("out/cpu.collapsedstack.txt", "folded"),
    ("x.collapsed", "folded"),
    ("/tmp/cpu.speedscope.json", "speedscope"),
    ("CPU.SPEEDSCOPE.JSON", "speedscope"),
    ("flamegraph.html", "html"),
    ("page.htm", "html"),
    ("trace.json", None),
    ("notes.txt", None),
    ("profile.mcpprof", None),
    ("folded", None),
    (".html", None),
])
def test_guess_from_filename(path, expected):
    got = guess_from_filename(path)
    assert (got.name if got else None) == expected


def test_options_and_checked_export(mcp_profile):
    assert EXPORTERS["folded"].options == ("value_type", "thread_frames", "request_frames", "full_paths")
    assert "min_fraction" in EXPORTERS["html"].options
    out = EXPORTERS["folded"].export(mcp_profile, value_type="wall", request_frames=True)
    assert out == folded.render(mcp_profile, value_type="wall", request_frames=True)
    with pytest.raises(UsageError, match="the speedscope exporter has no option min_fraction"):
        EXPORTERS["speedscope"].export(mcp_profile, min_fraction=0.1)


@pytest.mark.parametrize("name", MINE)
def test_every_exporter_renders_bytes(mcp_profile, name):
    out = get_exporter(name).render(mcp_profile)
    assert isinstance(out, bytes) and out
    assert out == get_exporter(name).render(mcp_profile)  # deterministic
    import mcpprof

    assert mcpprof.export(mcp_profile, name) == out  # the package is callable: the public function


@pytest.mark.parametrize("seed", range(6))
def test_random_profiles_stay_valid_everywhere(seed):
    """Odd names, empty stacks, zero and negative values, many label sets: every exporter still
    writes what its consumers accept, and the totals agree."""
    import json
    import random

    from mcpprof.export.tree import build_call_tree
    from mcpprof.model import CPU, SAMPLES, WALL, Frame, ProfileBuilder
    from mcpprof.model.folded import profile_from_folded
    from tests.consumers.checks import folded_errors, speedscope_semantic_errors

    rng = random.Random(seed)
    odd = ["a", "a b", "a;b", "#c", " pad ", "", "\t", "f (x.py:1)", "f (x.py:10)", "ü", "<b>&", "1", "10"]
    frames = [Frame(rng.choice(odd) + rng.choice(["", str(i)]), rng.choice(["", "x.py", "/abs/y.py"]),
                    rng.choice([0, 1, 10])) for i in range(25)]
    b = ProfileBuilder([SAMPLES, CPU, WALL], {"sys_path": ["/abs"]})
    for _ in range(150):
        stack = [rng.choice(frames) for _ in range(rng.randint(0, 6))]
        labels = {"thread.name": rng.choice(["T1", "T2", ""])}
        if rng.random() < 0.6:
            labels.update({"mcp.method.name": "tools/call", "gen_ai.tool.name": rng.choice(["x", "y;z", "<t>"])})
        n = rng.randint(-3, 9)
        b.add(stack, [n, n * rng.randint(0, 5), n * 7], labels)
    p = b.build()

    for options in ({}, {"request_frames": True, "thread_frames": True}, {"value_type": "samples"}):
        text = folded.render(p, **options).decode()
        assert folded_errors(text) == [], options
        back = profile_from_folded(text) if text else None
        kept = sum(v for v in _line_totals(p, options).values() if v > 0)  # lines summing to > 0
        assert (back.total() if back else 0) == kept
    doc = json.loads(speedscope.render(p))
    assert speedscope_semantic_errors(doc) == []
    tree = build_call_tree(p, min_fraction=0.02)
    for k in range(3):
        assert sum(tree.self_values(k).values()) == tree.totals[k]
    island = html.island(p)
    assert len(island["parent"]) == len(island["name"])


def _line_totals(profile, options):
    """What folded's lines must sum to: values summed per line, before dropping <= 0."""
    from mcpprof.export.folded import _prefix, sanitise
    from mcpprof.export.tree import FrameNames

    names = FrameNames(profile)
    idx = profile.value_index(options.get("value_type") or profile.default_type())
    out = {}
    for s in profile.samples:
        parts = _prefix(dict(s.labels), options.get("request_frames", False), options.get("thread_frames", False))
        parts += [sanitise(names(f)) for f in profile.stacks[s.stack]] or ([] if parts else ["[unknown]"])
        key = tuple(parts)
        out[key] = out.get(key, 0) + s.values[idx]
    return out
