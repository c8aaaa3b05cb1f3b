"""Stateful test: hypothesis drives the Coordinator directly, as the worst backend would.

The machine plays the backend. Its rules deliver any in-flight job in any order, ack a
cancellation late or never (the preempted job then delivers a *poisoned* stale result: a target
row whose argmax is a token the reference never emits, or a poisoned draft), and EOS may end the
run early. After every step the invariants hold: the committed tokens are a prefix of plain
greedy decoding (so no poisoned token is ever committed), at most ``S`` target tasks physically
run (cancelled but unacknowledged ones included, counted from the machine's own job table),
the chain row ``n`` is covered by a live task or a stored row unless all ``S`` servers are busy
(DSI, non-SI), some job is in flight while the run is unfinished, and the trace passes
:func:`dsi_core.check_trace`. This machine kills the ``_row_covered`` mutant of issue 8 (a
cancelled, unacknowledged task counted as covering row ``n``): see docs/mutation.md.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from dsi_core import Config, Coordinator, DecisionRule, KeyedNoise, check_trace
from dsi_core.events import (
    Cancel,
    DraftAborted,
    DraftDone,
    StartDraft,
    StartTarget,
    TargetAborted,
    TargetDone,
)

V = 5
POISON = V - 1  # the target never prefers it; poisoned rows and drafts do


def _h(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little")


def target_token(ctx: tuple[int, ...]) -> int:
    return _h("t", ctx) % (V - 1)


def row(ctx: tuple[int, ...], token: int | None = None) -> np.ndarray:
    r = np.full(V, 0.1)
    r[target_token(ctx) if token is None else token] = 0.6
    return r


def draft_token(ctx: tuple[int, ...], accept: list[bool]) -> int:
    """The target's token where ``accept[position]`` holds, another non-poison token else."""
    y = target_token(ctx)
    return y if accept[len(ctx) % len(accept)] else (y + 1) % (V - 1)


def greedy_reference(n: int) -> list[int]:
    out: list[int] = []
    while len(out) < n:
        out.append(target_token(tuple(out)))
    return out


class CoordinatorMachine(RuleBasedStateMachine):
    """A backend that delivers in any order, acks cancellations late or never, and poisons."""

    @initialize(
        algorithm=st.sampled_from(["dsi", "si", "nonsi", "dsi"]),  # DSI is where bugs hide
        k=st.integers(1, 3),
        servers=st.integers(1, 4),
        n=st.integers(2, 8),
        eos_at=st.one_of(st.none(), st.integers(0, 7)),
        accept=st.lists(st.booleans(), min_size=8, max_size=8),
    )
    def setup(self, algorithm, k, servers, n, eos_at, accept):
        full = greedy_reference(n)
        eos = None if eos_at is None or eos_at >= n else full[eos_at]
        self.ref = full[: full.index(eos) + 1] if eos is not None else full
        self.cfg = Config(algorithm, k, servers, n, eos_token_id=eos)
        self.coord = Coordinator(self.cfg, DecisionRule("greedy", KeyedNoise(0)))
        self.accept = accept
        self.jobs: dict[tuple[str, int], dict] = {}  # in flight, in start order
        self.prev: list[int] = []
        self._apply(self.coord.start(0.0))

    # ---------------------------------------------------------------- the backend's side

    def _apply(self, actions):
        for a in actions:
            if isinstance(a, StartDraft):
                self.jobs[("draft", a.request_id)] = {"action": a, "cancelled": False}
            elif isinstance(a, StartTarget):
                self.jobs[("target", a.task_id)] = {"action": a, "cancelled": False}
                busy = sum(1 for kind, _ in self.jobs if kind == "target")
                assert busy <= self.cfg.effective_servers, "more than S tasks physically run"
            elif isinstance(a, Cancel):
                job = self.jobs.get((a.what, a.id))
                assert job is not None, f"cancel of a job not in flight: {a}"
                job["cancelled"] = True
            else:  # pragma: no cover - the protocol has no other action
                raise AssertionError(a)

    def _feed(self, event):
        self._apply(self.coord.on_event(event, float(len(self.coord.trace))))

    def _pick(self, i, cancelled=None):
        keys = [
            key
            for key, job in self.jobs.items()
            if cancelled is None or job["cancelled"] == cancelled
        ]
        return keys[i % len(keys)] if keys else None

    def _result(self, key, poisoned):
        a = self.jobs.pop(key)["action"]
        if key[0] == "draft":
            tok = POISON if poisoned else draft_token(a.context, self.accept)
            return DraftDone(a.request_id, token=tok)
        ctx = a.context
        rows = tuple(row(ctx[:j], POISON if poisoned else None) for j in range(a.lo, len(ctx) + 1))
        return TargetDone(a.task_id, rows)

    @precondition(lambda self: any(not j["cancelled"] for j in self.jobs.values()))
    @rule(i=st.integers(0, 63))
    def deliver_live(self, i):
        """A live job finishes (any of them: completion order is the machine's choice)."""
        self._feed(self._result(self._pick(i, cancelled=False), poisoned=False))

    @precondition(lambda self: any(j["cancelled"] for j in self.jobs.values()))
    @rule(i=st.integers(0, 63))
    def cancellation_fails(self, i):
        """A preempted job runs to completion and delivers a poisoned (stale) result."""
        self._feed(self._result(self._pick(i, cancelled=True), poisoned=True))

    @precondition(lambda self: any(j["cancelled"] for j in self.jobs.values()))
    @rule(i=st.integers(0, 63))
    def cancellation_acked(self, i):
        """A preempted job stops, however long after the cancel (a delayed ack)."""
        kind, ident = self._pick(i, cancelled=True)
        del self.jobs[(kind, ident)]
        self._feed(DraftAborted(ident) if kind == "draft" else TargetAborted(ident))

    @precondition(lambda self: not self.jobs)
    @rule()
    def idle(self):
        """Nothing in flight (only legal once the run is done; an invariant checks that)."""
        assert self.coord.done

    # ---------------------------------------------------------------- invariants

    @invariant()
    def prefix_grows_and_is_the_reference(self):
        c = self.coord.committed
        assert c[: len(self.prev)] == self.prev, "the committed prefix changed"
        assert c == self.ref[: len(c)], (c, self.ref)
        assert POISON not in c
        self.prev = list(c)
        if self.coord.done:
            assert c == self.ref

    @invariant()
    def servers_and_progress(self):
        busy = sum(1 for kind, _ in self.jobs if kind == "target")
        assert busy <= self.cfg.effective_servers
        if not self.coord.done:
            assert self.jobs, "deadlock: the run is unfinished and nothing is in flight"

    @invariant()
    def chain_row_covered(self):
        coord = self.coord
        if coord.done or self.cfg.algorithm == "si":
            return
        n = coord.n
        covered = n in coord._rows or any(
            kind == "target"
            and not j["cancelled"]
            and j["action"].lo <= n <= len(j["action"].context)
            for (kind, _), j in self.jobs.items()
        )
        busy = sum(1 for kind, _ in self.jobs if kind == "target")
        assert covered or busy >= self.cfg.effective_servers, f"row {n} uncovered, a server idle"

    @invariant()
    def trace_passes_the_checker(self):
        assert check_trace(self.coord.trace) == []


# DSI_NO_SHRINK=1 (set by scripts/mutation.py) skips shrinking: a killed mutant is reported at
# once instead of after minutes of minimising the failing run.
_PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
CoordinatorMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    **({"phases": _PHASES} if os.environ.get("DSI_NO_SHRINK") else {}),
)
TestCoordinatorMachine = CoordinatorMachine.TestCase
