"""The agent's periodic writes are spaced by the time the server ran: a stopped server (SIGSTOP, a
debugger) does no catch-up write when it goes on (a fake sampler's ``ran_ns`` stands for that time;
the waits only leave room for the flush thread's steps, nothing is timed)."""

from __future__ import annotations

import threading
import time

from mcpprof.collect.sampler import Sampler
from mcpprof.launch.agent import Agent
from mcpprof.launch.config import AgentConfig


class RanClock:
    ran_ns = 0


def _agent(tmp_path, sampler) -> tuple:
    agent = Agent(AgentConfig(out_dir=str(tmp_path), flush_s=0.02))
    agent.sampler = sampler
    writes = []
    agent.flush = lambda **kw: writes.append(kw)  # type: ignore[method-assign]
    thread = threading.Thread(target=agent._flush_loop, daemon=True)
    thread.start()
    return agent, thread, writes


def _wait_for(predicate, seconds=5.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_no_periodic_write_while_the_server_does_not_run(tmp_path):
    clock = RanClock()
    agent, thread, writes = _agent(tmp_path, clock)
    try:
        time.sleep(0.3)  # fifteen steps of the flush thread, no time run
        assert writes == []
        clock.ran_ns += 10**9  # it ran a second: one write, not one per step missed
        assert _wait_for(lambda: len(writes) >= 1)
        time.sleep(0.2)
        assert len(writes) == 1
    finally:
        agent._stop.set()
        thread.join()


def test_the_sampler_counts_the_time_it_ran_not_the_gaps_of_a_stop():
    t = [0]
    s = Sampler(100, tagger=lambda i: None, clock=lambda: t[0], frames=lambda: {}, threads=lambda: {})
    s._last_tick = 0
    for _ in range(10):  # ten ticks 10 ms apart
        t[0] += 10_000_000
        s.sample_once()
    t[0] += 5 * 10**9  # stopped five seconds
    s.sample_once()
    assert s.ran_ns == 11 * 10_000_000
