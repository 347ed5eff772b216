"""Workload files: parsing, templates, one-line errors; the built-in catalogue; the open loop's
schedule arithmetic (deterministic: an injected clock, no sleeping)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mcpprof.bench import catalogue
from mcpprof.bench.openloop import Picker, Tally, due_count, open_loop, scheduled_ns
from mcpprof.bench.workload import Step, check_against_server, load_file, parse_text
from mcpprof.errors import UsageError

GOOD = '''
[target]
command = "python -m mcpprof.examples.server"

[defaults]
runs = 3
warmup = 10

[[workload]]
name = "mix"
concurrency = 4
requests = 500
steps = [
  { tool = "echo", arguments = { text = "item {i} of run {run}" }, weight = 3 },
  { uri = "example://config" },
  { prompt = "greet", arguments = { name = "x" } },
  { method = "tools/list" },
]

[[workload]]
name = "open"
rate = 250.5
duration = 2.0
steps = [{ tool = "echo", arguments = { text = "{x*8}" } }]
'''


def test_parse_good_file():
    wf = parse_text(GOOD)
    assert wf.target.command == ["python", "-m", "mcpprof.examples.server"] and wf.target.transport == "stdio"
    mix, opn = wf.workloads
    assert (mix.name, mix.concurrency, mix.requests, mix.runs, mix.warmup, mix.mode) == ("mix", 4, 500, 3, 10, "closed")
    assert [s.step_id for s in mix.steps] == ["tools/call echo", "resources/read example://config",
                                             "prompts/get greet", "tools/list"]
    assert mix.steps[0].weight == 3
    assert (opn.mode, opn.rate, opn.duration, opn.requests) == ("open", 250.5, 2.0, None)


def test_templates_and_padding():
    wf = parse_text(GOOD)
    echo = wf.workloads[0].steps[0]
    make = echo.params_factory(run=2)
    assert make(7) == {"name": "echo", "arguments": {"text": "item 7 of run 2"}}
    pad = wf.workloads[1].steps[0]
    assert not pad.templated
    fixed = pad.params_factory()
    assert fixed(0) is fixed(1) and fixed(0)["arguments"]["text"] == "x" * 8
    rnd = Step("tools/call", "t", {"q": "{rand}"}).params_factory(run=0, seed=1)
    first, second = rnd(0), rnd(1)
    assert first != second  # seeded per run: the same sequence again
    assert Step("tools/call", "t", {"q": "{rand}"}).params_factory(0, 1)(0) == first


@pytest.mark.parametrize("text,fragment", [
    ("[[workload]\nname='x'", "not valid TOML"),
    ("[[workload]]\nname='x'\nsteps=[{tool='echo'}]\nrate=-3", "rate must be a number > 0 calls/s, got -3"),
    ("[[workload]]\nname='x'\nsteps=[{tool='echo'}]\nrate='fast'", "rate must be a number > 0"),
    ("[[workload]]\nname='x'\nsteps=[{tool='echo'}]\nmode='open'", "needs rate"),
    ("[[workload]]\nname='x'\nsteps=[]", "needs steps"),
    ("[[workload]]\nname='x'\nsteps=[{tool='echo', bogus=1}]", "unknown key 'bogus'"),
    ("[[workload]]\nname='x'\nsteps=[{tool='echo', uri='a://b'}]", "give one of tool, uri, prompt"),
    ("[[workload]]\nname='x'\nsteps=[{method='tools/call'}]", "needs tool"),
    ("[[workload]]\nname='x'\nsteps=[{tool='echo'}]\nconcurrency=0", "concurrency must be an integer >= 1"),
    ("[[workload]]\nname='x'\nsteps=[{tool='echo'}]\nrequests=10\nduration=1", "not both"),
    ("[target]\nprotocol='auto'\n[[workload]]\nname='x'\nsteps=[{tool='echo'}]", "the target table needs command or url"),
    ("[target]\nurl='ftp://x'\n[[workload]]\nname='x'\nsteps=[{tool='echo'}]", "url must start with http"),
    ("[[workload]]\nname='x'\nsteps=[{tool='echo'}]\n[[workload]]\nname='x'\nsteps=[{tool='echo'}]", "two workloads"),
    ("[defaults]\nruns=5", "no workload tables"),
    ("[[workload]]\nsteps=[{tool='echo', weight=0}]\nname='x'", "positive sum"),
])
def test_bad_files_give_one_line_errors(text, fragment):
    with pytest.raises(UsageError) as info:
        parse_text(text, "workload file w.toml")
    msg = str(info.value)
    assert fragment in msg and "\n" not in msg.strip() and msg.startswith("workload file w.toml")


def test_missing_file(tmp_path: Path):
    with pytest.raises(UsageError, match="does not exist"):
        load_file(tmp_path / "nope.toml")
    (tmp_path / "d.toml").mkdir()
    with pytest.raises(UsageError, match="is a directory"):
        load_file(tmp_path / "d.toml")


def test_unknown_tool_and_first_targets():
    wf = parse_text(GOOD)
    tools = [{"name": "echo"}, {"name": "other"}]
    ok = check_against_server(wf.workloads[0], tools, [{"uri": "example://config"}], [{"name": "greet"}])
    assert [s.step_id for s in ok.steps][0] == "tools/call echo"
    bad = parse_text("[[workload]]\nname='w'\nsteps=[{tool='nosuch'}]").workloads[0]
    with pytest.raises(UsageError, match="workload 'w' step 1: the server has no tool 'nosuch'; its tools: echo, other"):
        check_against_server(bad, tools)
    first = catalogue.get("mix")
    resolved = check_against_server(first, tools, [{"uri": "a://1"}, {"uri": "a://2"}], [{"name": "p"}])
    assert "resources/read a://1" in [s.step_id for s in resolved.steps]
    assert "prompts/get p" in [s.step_id for s in resolved.steps]


def test_catalogue_covers_the_plan():
    for name in ("tool-simple", "tool-medium", "tool-complex", "large-payload", "resources-list", "resources-read",
                 "prompts-get", "tools-list", "mix", "session-churn", "many-sessions"):
        w = catalogue.get(name)
        assert w.steps and w.name == name
    assert len(catalogue.get("tool-complex").steps[0].arguments["text"]) == 10 * 1024
    assert catalogue.get("session-churn").mode == "churn" and catalogue.get("many-sessions").sessions == 16
    assert catalogue.get("tool-simple", tool="ping_tool").steps[0].target == "ping_tool"
    with pytest.raises(UsageError, match="no built-in workload 'nope'"):
        catalogue.get("nope")


def test_picker_weights_exact_and_interleaved():
    pick = Picker([3, 1]).next
    seq = [pick() for _ in range(8)]
    assert seq.count(0) == 6 and seq.count(1) == 2 and seq[:4].count(1) == 1


# -- the open loop's schedule ------------------------------------------------------------------------


def test_schedule_arithmetic():
    assert [scheduled_ns(1000, i, 200.0) for i in range(4)] == [1000, 5_001_000, 10_001_000, 15_001_000]
    assert scheduled_ns(0, 3, 3.0) == 1_000_000_000
    assert due_count(0, 200.0, 0, 0) == 1            # call 0 is due at the start
    assert due_count(0, 200.0, 1, 4_999_999) == 0
    assert due_count(0, 200.0, 1, 5_000_000) == 1
    assert due_count(0, 200.0, 1, 50_000_000) == 10  # woke late: everything due goes out at once
    assert due_count(0, 200.0, 0, 10**12, limit=100) == 100
    assert due_count(10, 200.0, 0, 5) == 0
    for rate in (1.0, 3.0, 7.0, 333.3, 1000.0):  # exactly the calls whose time has come, never more
        for now in (0, 1, 999_999, 10**9, 10**9 + 1, 3 * 10**9 + 7):
            n = due_count(0, rate, 0, now)
            assert scheduled_ns(0, n - 1, rate) <= now < scheduled_ns(0, n, rate)


class FakeClock:
    def __init__(self):
        self.now = 0

    def __call__(self):
        return self.now


class InstantClient:
    """Answers every call at once and advances the fake clock by ``step`` ns per send."""

    def __init__(self, clock: FakeClock, step: int):
        self.clock, self.step, self.sent_at = clock, step, []

    def send(self, method, params, on_reply, timeout=None):
        self.sent_at.append(self.clock.now)
        self.clock.now += self.step
        asyncio.get_running_loop().call_soon(on_reply, {"content": []}, None)


def test_open_loop_sends_on_schedule_and_measures_from_it(monkeypatch):
    clock = FakeClock()
    client = InstantClient(clock, step=0)

    async def fake_sleep(seconds):  # jump the fake clock instead of waiting
        clock.now += int(seconds * 1e9) + 1

    monkeypatch.setattr("mcpprof.bench.openloop.asyncio.sleep", fake_sleep)
    tally = Tally([Step("tools/call", "echo", {"text": "x"})])
    report = asyncio.run(open_loop(client, tally, 100.0, 20, None, 5.0, clock=clock))
    start = 1_000_000
    assert report["sent"] == report["scheduled"] == 20 and tally.done == 20
    assert [t - start for t in client.sent_at] == [round(i * 1e7) + 1 for i in range(20)]
    assert report["scheduled_span_ns"] == 190_000_000


def test_open_loop_catches_up_without_thinning(monkeypatch):
    """A stall (the clock jumps 95 ms) makes the missed calls go out at once; every call is still
    sent and the ones that waited are charged from their scheduled time (no coordinated omission)."""
    clock = FakeClock()
    client = InstantClient(clock, step=0)
    stalled = []

    async def fake_sleep(seconds):
        clock.now += int(seconds * 1e9) + 1
        if not stalled and clock.now > 20_000_000:
            stalled.append(True)
            clock.now += 95_000_000

    monkeypatch.setattr("mcpprof.bench.openloop.asyncio.sleep", fake_sleep)
    monkeypatch.setattr("mcpprof.bench.openloop._clock", clock)
    tally = Tally([Step("tools/call", "echo", {"text": "x"})])
    report = asyncio.run(open_loop(client, tally, 100.0, 30, None, 5.0, clock=clock))
    assert report["sent"] == 30 and tally.done == 30
    burst = max(client.sent_at.count(t) for t in set(client.sent_at))
    assert burst >= 9  # ~9-10 calls were due during the stall and left together
    lat = sorted(tally.per_step[0].latencies_ns)
    assert lat[-1] >= 85_000_000  # the first call due in the stall waited ~90 ms: charged to it
    assert report["send_lag_ns"]["max"] >= 85_000_000
