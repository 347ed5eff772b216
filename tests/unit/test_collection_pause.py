"""The agent writes a profile with automatic collection paused (mcpprof.launch.collection_pause): building
a profile makes thousands of containers at once, which used to start young collections in the
agent's thread and, by promoting the half-built profile, a full collection of the server's heap every
30-40 s under load. Counted with ``gc.callbacks``; nothing is timed."""

from __future__ import annotations

import contextlib
import gc
import json
import threading

import pytest

from mcpprof.launch import collection_pause
from mcpprof.launch.agent import Agent
from mcpprof.launch.config import AgentConfig
from mcpprof.launch.collection_pause import gc_paused
from mcpprof.model.io import load

from .sampler_fakes import Code, Env, chain


@pytest.fixture
def gc_on():
    was = gc.isenabled()
    gc.enable()
    yield
    (gc.enable if was else gc.disable)()


def test_pause_turns_collection_off_and_on_again(gc_on):
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():  # nested
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_pause_leaves_collection_off_if_it_was_off(gc_on):
    gc.disable()
    with gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_pause_is_shared_by_threads_and_ends_with_the_last(gc_on):
    inside, release = threading.Event(), threading.Event()

    def other():
        with gc_paused():
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=other)
    thread.start()
    assert inside.wait(5)
    with gc_paused():
        pass
    assert not gc.isenabled()  # the other thread's pause still runs
    release.set()
    thread.join()
    assert gc.isenabled()


def test_pause_ends_when_the_block_raises(gc_on):
    with pytest.raises(RuntimeError):
        with gc_paused():
            raise RuntimeError("write failed")
    assert gc.isenabled()


def _agent_with_many_stacks(tmp_path) -> Agent:
    env = Env()
    for i in range(3000):  # 3000 distinct stacks: thousands of containers when written
        env.frames = {1: chain(Code("main"), Code(f"handler_{i}"), (Code("leaf"), 2 * i, i))}
        env.tick(cpu_ms={1: 1})
    agent = Agent(AgentConfig(out_dir=str(tmp_path)))
    agent.sampler = env.sampler
    return agent


def _collections_during(action) -> list:
    """The generations of the collections that ran during ``action`` in this test's threads (the
    main one and ``test-channel``; another test's leftover thread may allocate meanwhile)."""
    generations = []

    def callback(phase, info):
        if phase == "start" and threading.current_thread().name in ("MainThread", "test-channel"):
            generations.append(info["generation"])

    threshold = gc.get_threshold()
    gc.collect()
    gc.set_threshold(100, 10, 10)  # as if the server's heap were already near a collection
    gc.callbacks.append(callback)
    try:
        action()
    finally:
        gc.callbacks.remove(callback)
        gc.set_threshold(*threshold)
    return generations


def test_a_periodic_write_starts_no_collection(tmp_path, gc_on):
    agent = _agent_with_many_stacks(tmp_path)
    generations = _collections_during(lambda: agent.flush(level=0))
    # at most one young collection, as the pause ends, of what the write keeps (caches); none older
    assert generations in ([], [0]), generations
    assert len(load(agent.path).samples) == 3000
    assert gc.isenabled()


def test_without_the_pause_the_same_write_collects(tmp_path, gc_on, monkeypatch):
    agent = _agent_with_many_stacks(tmp_path)
    monkeypatch.setattr(collection_pause, "gc_paused", contextlib.nullcontext)  # what the agent did before
    generations = _collections_during(lambda: agent.flush(level=0))
    assert len(generations) > 50 and 1 in generations, generations  # 299 here, 24 of generation 1


def _snapshot_over_channel(agent: Agent) -> bytes:
    """The raw reply (decoded by the caller: decoding makes containers in this process too)."""
    import socket

    from mcpprof.launch.channel import ControlChannel

    channel = ControlChannel(agent)
    ours, theirs = socket.socketpair()
    server = threading.Thread(target=channel._serve, args=(ours, 0), name="test-channel")
    server.start()
    theirs.sendall(b'{"cmd": "snapshot"}\n')
    theirs.shutdown(socket.SHUT_WR)
    data = b""
    while chunk := theirs.recv(1 << 20):
        data += chunk
    server.join()
    theirs.close()
    return data


def test_a_snapshot_over_the_control_channel_is_built_with_collection_paused(tmp_path, gc_on, monkeypatch):
    from mcpprof.launch import channel

    agent = _agent_with_many_stacks(tmp_path)
    replies = []
    generations = _collections_during(lambda: replies.append(_snapshot_over_channel(agent)))
    reply = json.loads(replies[0])
    assert reply["ok"] and len(reply["profile"]["samples"]) == 3000
    # the reply's containers live on while it is sent: a young collection may meet them then
    assert generations.count(0) <= 2 and not {1, 2} & set(generations), generations

    monkeypatch.setattr(channel, "gc_paused", contextlib.nullcontext)  # without the pause
    generations = _collections_during(lambda: _snapshot_over_channel(agent))
    assert len(generations) > 50 and 1 in generations, generations
