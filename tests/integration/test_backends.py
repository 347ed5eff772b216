"""Every CPU backend on real servers and real profilers: same model, valid exports; plus the
in-process parts (yappi tags, pyinstrument conversion, async wait chains, slowest requests)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mcpprof.collect.asyncwait import AsyncWaitSampler, inflight_requests, request_chains
from mcpprof.collect.pyinstrument_collector import PyinstrumentCollector
from mcpprof.collect.yappi_collector import ExactCollector
from mcpprof.export.registry import get_exporter
from mcpprof.jobs.profile import ProfileJob, run_profile_job
from mcpprof.mcp import context
from mcpprof.model import labels as L
from tests.consumers.checks import folded_errors, speedscope_semantic_errors


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


async def _request(name: str, body: Any) -> Any:
    tag = context.tag_for("tools/call", {"name": name}, name)
    handle = context.enter_request(tag)
    try:
        return await body()
    finally:
        context.exit_request(handle, tag)


@pytest.fixture
def tagging():
    context.install_thread_hooks()
    yield
    context.uninstall_thread_hooks()
    context.reset()


def _check_exports(profile: Any) -> None:
    folded = get_exporter("folded").render(profile).decode()
    assert folded and folded_errors(folded) == []
    assert speedscope_semantic_errors(json.loads(get_exporter("speedscope").render(profile))) == []
    assert len(get_exporter("html").render(profile)) > 1000


def test_exact_attributes_every_call_to_its_request(tagging: None) -> None:
    async def main() -> Any:
        collector = ExactCollector(clock="cpu")
        starter = threading.Thread(target=collector.start)  # as the control channel would
        starter.start()
        starter.join()

        async def on_loop() -> int:
            return fib(12)

        async def in_thread() -> int:
            return await asyncio.to_thread(fib, 12)

        await asyncio.gather(_request("loop", on_loop), _request("worker", in_thread), _request("loop", on_loop))
        collector.stop()
        return collector.snapshot()

    profile = asyncio.run(main())
    calls: Counter = Counter()
    for s, frames in profile.iter_stacks():
        if frames[-1].function == "fib":
            calls[(s.label(L.TOOL), s.label(L.THREAD_NAME) == "MainThread")] += s.values[0]
    n = 465  # calls of fib(12)
    assert calls[("loop", True)] == 2 * n
    assert calls[("worker", False)] == n
    assert calls[(None, True)] == calls[(None, False)] == 0
    assert profile.metadata["collector"] == "exact"
    _check_exports(profile)


def test_pyinstrument_converts_the_loop_thread_only(tagging: None) -> None:
    async def main() -> Any:
        collector = PyinstrumentCollector(rate_hz=1000).start()
        await asyncio.to_thread(fib, 20)  # a worker thread: invisible to pyinstrument
        fib(21)
        collector.stop()
        return collector.snapshot()

    profile = asyncio.run(main())
    functions = {f.function for f in profile.frames}
    assert "fib" in functions and "[self]" not in functions
    assert profile.metadata["threads_seen"] == ["MainThread"]
    assert "one" in profile.metadata["limitations"] or "only" in profile.metadata["limitations"]
    assert {s.label(L.THREAD_NAME) for s in profile.samples} == {"MainThread"}
    _check_exports(profile)


def test_async_wait_chains_show_what_requests_wait_on(tagging: None) -> None:
    async def main() -> Any:
        lock = asyncio.Lock()
        proc_done = asyncio.Event()
        sampler = AsyncWaitSampler(rate_hz=200)

        async def holds() -> None:
            async with lock:
                await proc_done.wait()

        async def wants_lock() -> None:
            async with lock:
                pass

        async def child() -> None:
            await asyncio.sleep(0.3)

        async def spawns() -> None:
            await asyncio.create_task(child())

        tasks = [asyncio.create_task(_request(n, b)) for n, b in
                 (("holder", holds), ("blocked", wants_lock), ("spawner", spawns))]
        await asyncio.sleep(0.05)
        sampler.start()
        chains = {tag.target: [f.function for f in frames] for _t, tag, frames in request_chains()}
        inflight = inflight_requests()
        await asyncio.sleep(0.2)
        sampler.stop()
        proc_done.set()
        await asyncio.gather(*tasks)
        return chains, inflight, sampler.snapshot()

    chains, inflight, profile = asyncio.run(main())
    assert "Lock.acquire" in chains["blocked"] and chains["blocked"][-1] == "[await Future]"
    assert "Event.wait" in chains["holder"]
    spawner = chains["spawner"]  # followed into the task it awaits
    assert any(f.startswith("[await Task") for f in spawner) and "sleep" in spawner
    assert len(chains) == 3  # the child task is shown inside its parent, not on its own
    assert {r["target"] for r in inflight} == {"holder", "blocked", "spawner"}
    assert all(r["age_ns"] > 0 for r in inflight)
    wall = Counter()
    for s in profile.samples:
        wall[s.label(L.TOOL)] += s.values[1]
    assert wall["blocked"] > 100_000_000 and wall["spawner"] > 100_000_000
    _check_exports(profile)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sample", "exact", "pyinstrument", "pyspy"])
def test_each_backend_profiles_a_real_server(tmp_path: Path, mode: str) -> None:
    job = ProfileJob(out_dir=str(tmp_path / mode), seconds=1.5, mode=mode, concurrency=4,
                     tools=["cpu_async", "cpu_sync", "echo"])
    result = run_profile_job(job)
    assert result.invalid_stdout_lines == 0
    assert result.exit_code == 0
    assert sum(result.drive.errors.values()) == 0
    profile = result.profile
    assert profile.metadata["collector"] == mode
    assert profile.requests.stats[("tools/call", "cpu_async")].count > 0
    functions = {f.function for f in profile.frames}
    assert "fib" in functions
    tools = {s.label(L.TOOL) for s in profile.samples} - {None}
    assert "cpu_async" in tools
    if mode != "pyinstrument":  # pyinstrument sees the event-loop thread only
        assert "cpu_sync" in tools
    for name in ("cpu.folded", "cpu.speedscope.json", "flamegraph.html"):
        assert Path(result.files[name]).stat().st_size > 0
    assert folded_errors(Path(result.files["cpu.folded"]).read_text()) == []
    assert speedscope_semantic_errors(json.loads(Path(result.files["cpu.speedscope.json"]).read_text())) == []


@pytest.mark.slow
def test_slowest_requests_open_as_their_own_profile(tmp_path: Path) -> None:
    from mcpprof.collect.slowest import slow_request_profile, slowest_requests

    args = tmp_path / "args.json"
    args.write_text(json.dumps({"cpu_async": {"n": 22}}))  # about 20 ms a call: sampled at 500 Hz
    job = ProfileJob(out_dir=str(tmp_path / "o"), seconds=1.5, concurrency=2, rate_hz=500,
                     tools=["cpu_async"], args_file=str(args))
    profile = run_profile_job(job).profile
    rows = [r for r in slowest_requests(profile) if r["target"] == "cpu_async"]
    assert rows and rows == sorted(rows, key=lambda r: -r["duration_ns"])
    worst = rows[0]
    st = profile.requests.stats[("tools/call", "cpu_async")]
    assert worst["duration_ns"] == st.max_ns
    one = slow_request_profile(profile, worst["request_id"])
    assert one is not None
    assert {s.label(L.REQUEST_ID) for s in one.samples} == {worst["request_id"]}
    assert any(f.function == "fib" for f in one.frames)
    _check_exports(one)
