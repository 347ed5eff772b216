"""Each request's CPU on the event-loop threads, from a profile's samples.

The default agent measures a request's worker-thread CPU exactly but leaves its event-loop CPU to
the sampler, whose CPU column charges each tick the loop thread's CPU clock delta since the
previous tick. That delta is right in total but lands on whatever runs at the tick, and a tick
that finds the loop idle carries its delta to the next running sample: the request that runs
first after an idle spell collects CPU that others used. The wall-clock ticks themselves are
evenly spaced, so the share of *running* ticks (not waiting in ``select``) a request holds is an
unbiased estimate of its share of the loop's busy time. :func:`loop_cpu_by_request` therefore
splits the loop threads' CPU total by the wall time of their running samples.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional

from ..collect.threads import is_idle_leaf
from ..model import labels as L


def loop_cpu_by_request(profile: Any, loop_threads: Iterable[str], cpu_i: int,
                        weight_i: Optional[int]) -> Dict[str, int]:
    """``{request name: CPU ns}`` on the threads named ``loop_threads`` while serving (start-up
    samples left out): their CPU total split by the ``weight_i`` column (wall time, else sample
    counts) of the samples that found them running. Requests with no running sample get nothing;
    the names include the outside-requests bucket."""
    names = set(loop_threads)
    total = 0
    weights: Dict[str, int] = {}
    idle: Dict[int, bool] = {}
    for s in profile.samples:
        labels = dict(s.labels)
        if labels.get(L.THREAD_NAME) not in names or labels.get(L.PHASE) == L.STARTUP:
            continue
        total += s.values[cpu_i]
        ids = profile.stacks[s.stack]
        leaf = ids[-1] if ids else -1
        is_idle = idle.get(leaf)
        if is_idle is None:
            f = profile.frames[leaf] if leaf >= 0 else None
            is_idle = idle[leaf] = f is not None and is_idle_leaf(f.file, f.function, f.function.rsplit(".", 1)[-1])
        if not is_idle:
            name = L.request_name(labels)
            weights[name] = weights.get(name, 0) + (s.values[weight_i] if weight_i is not None else 1)
    busy = sum(weights.values())
    if not busy:
        return {}
    return {name: total * w // busy for name, w in weights.items()}
