"""Fake frames, code objects, clocks and thread environments for the sampler's unit tests."""

from __future__ import annotations

from mcpprof.collect.sampler import Sampler  # noqa: F401  (used by Env)

MS = 1_000_000


# -- fakes -----------------------------------------------------------------------------------------

class Code:
    def __init__(self, name, filename="/app/server.py", qualname=None):
        self.co_name = name
        self.co_filename = filename
        if qualname is not None:
            self.co_qualname = qualname


class FakeFrame:
    """A frame: f_lineno is counted so tests can see when the sampler computes it."""

    lineno_reads = 0

    def __init__(self, code, lasti=0, line=1, back=None):
        self.f_code, self.f_lasti, self._line, self.f_back = code, lasti, line, back

    @property
    def f_lineno(self):
        FakeFrame.lineno_reads += 1
        return self._line


def chain(*specs):
    """Leaf frame of a stack given root first as (code, lasti, line) or a bare Code."""
    frame = None
    for spec in specs:
        code, lasti, line = spec if isinstance(spec, tuple) else (spec, 0, 1)
        frame = FakeFrame(code, lasti, line, frame)
    return frame


class Clock:
    def __init__(self, t=1_000 * MS):
        self.t = t

    def __call__(self):
        return self.t


class Env:
    """Fake frames, clock, per-thread CPU clocks and thread names driving one Sampler."""

    def __init__(self, **kwargs):
        self.clock = Clock()
        self.cpu = {}
        self.frames = {}
        self.names = {1: ("MainThread", 101), 2: ("worker", 102)}
        self.forgotten = []
        env = self

        class Cpu:
            def __call__(self, ident):
                return env.cpu.get(ident)

            def forget(self, ident):
                env.forgotten.append(ident)

        kwargs.setdefault("tagger", lambda ident: None)
        self.sampler = Sampler(100.0, clock=self.clock, cpu_clock=Cpu(), frames=lambda: dict(env.frames),
                               threads=lambda: dict(env.names), **kwargs)

    def tick(self, advance_ms=10, cpu_ms=None):
        """Advance the clock (and CPU clocks by ``cpu_ms[ident]``), then take one sample."""
        self.clock.t += advance_ms * MS
        for ident, ms in (cpu_ms or {}).items():
            self.cpu[ident] = self.cpu.get(ident, 0) + ms * MS
        self.sampler.sample_once()

    def profile(self):
        return self.sampler.snapshot()


def by_stack(profile):
    """{(function names root first, labels dict): values}."""
    out = {}
    for sample, frames in profile.iter_stacks():
        key = (tuple(f.function for f in frames), tuple(sorted(sample.labels)))
        assert key not in out
        out[key] = sample.values
    return out


MAIN = (("thread.name", "MainThread"),)
WORKER = (("thread.name", "worker"),)

