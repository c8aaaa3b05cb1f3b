"""Rejection mode: the latency model == the coordinator on the simulated backend, exactly.

In ``rejection`` mode every speculative position waits for its draft and SI defers its bonus
(coordinator docstring). ``proofs.latency_model.dsi_rejection_latency`` /
``si_rejection_latency`` model that; here the real coordinator runs in rejection mode on the
simulated backend with :class:`PatternTarget` (one-hot rows at ``y(i)``) and
:class:`PatternDrafter` (a one-hot ``q`` at its token): a draft ``y(i)`` has ``p(x)/q(x) = 1``
and is accepted for every uniform ``u < 1``, any other draft has ``p(x) = 0`` and is rejected
for every ``u`` (the residual is ``p``), so the run realises the pattern ``a`` whatever the
seed, and every run commits ``y(0..N-1)``. Its virtual end time must equal the model exactly
(Fractions). A mismatch means the model or the code is wrong; neither may be loosened.

Also checked here, on every commit of every run, the two hypotheses of
``proofs/rejection.py``'s step theorem: ``D_p <= max(A_p, D_{p-1} + t)`` (``A_p`` the arrival of
the draft of ``p``) and ``A_p <= T + delta + (i + 1) c`` with the drafter's restart delay
``delta <= min(d, c)`` (``T`` the segment's start, ``i = p - n0``); and the consequence
``DSI <= N t`` whenever ``c + min(d, c) <= t``, for ``S`` in {1, 2, 64} and cancellation
delays ``d`` in {0, t/10, t/2, fails}.
"""

from __future__ import annotations

import dataclasses
import itertools
from fractions import Fraction as F

import pytest

from dsi_core import check_trace
from dsi_core.backends.simulated import SimulatedBackend
from dsi_core.coordinator import Config, Coordinator
from dsi_core.sampling import DecisionRule, KeyedNoise
from dsi_core.testing.synthetic import PatternDrafter, PatternTarget, y
from proofs.latency_model import (
    dsi_latency,
    dsi_rejection_latency,
    nonsi_latency,
    si_rejection_latency,
)

T = F(1)
CS = [F(1, 10), F(1, 3), F(1, 2), F(2, 3), F(1), F(3, 2)]


def run(algorithm, a, k, servers, c, cancellation="instant", seed=0):
    cfg = Config(algorithm, k, servers, len(a))
    coord = Coordinator(cfg, DecisionRule("rejection", KeyedNoise(seed)))
    drafter = PatternDrafter(a, 1) if algorithm != "nonsi" else None
    backend = SimulatedBackend(T, c, cancellation=cancellation)
    end = backend.run(coord, PatternTarget(1), drafter, [0])
    assert coord.committed == [y(i) for i in range(len(a))]
    assert check_trace(coord.trace, cfg) == []
    return end, coord


def patterns(nmax, nmin=1):
    for n in range(nmin, nmax + 1):
        yield from (tuple(b) for b in itertools.product([0, 1], repeat=n))


def _restart_delay(c, d):
    if d == "instant":
        return F(0)
    return c if d == "fails" else min(d, c)


def check_steps(coord, c, d):
    """D_p <= max(A_p, D_{p-1} + t) and A_p <= T + delta + (i + 1) c on every commit, with the
    step theorem's T and n0: a segment starts at n0 = the number of commits so far, at
    T = D_{n0-1} (0 for the first), and every position is committed once, in order."""
    arrived: dict[tuple[int, int], F] = {}
    seg_start, seg_pos, prev, first, commits = F(0), 0, F(0), True, 0
    # c + min(d, c) <= t: the draft never binds (`rejection_draft_never_binds_any_delay`), so
    # every decision happens at an instant when a target task delivered (and freed its server)
    row_driven = c + _restart_delay(c, d) <= T
    delivered = {e.time for e in coord.trace if e.what == "task_done"}
    for e in coord.trace:
        if e.what == "segment":
            seg_start, seg_pos = e.time, e.pos
            assert (seg_start, seg_pos) == (prev, commits), (e.pos, e.time, prev, commits)
            delta = F(0) if first else _restart_delay(c, d)
            first = False
        elif e.what == "draft_done":
            arrived[(e.epoch, e.pos)] = e.time
        elif e.what == "commit":
            assert e.pos == commits and not first, (e.pos, commits)
            a_p = arrived[(e.epoch, e.pos)]  # rejection mode: every position has its draft
            assert e.time <= max(a_p, prev + T), (e.pos, e.time, a_p, prev)
            assert a_p <= seg_start + delta + (e.pos - seg_pos + 1) * c, (e.pos, a_p, seg_start)
            assert not row_driven or e.time in delivered, ("decided by a draft", e.pos, e.time)
            prev, commits = e.time, commits + 1
    assert commits == coord.config.max_new_tokens


def _exact(nmax, ks, cs, nmin=1):
    for a, k, c in itertools.product(patterns(nmax, nmin), ks, cs):
        end, coord = run("dsi", a, k, 64, c)
        assert end == dsi_rejection_latency(a, T, c, k), ("dsi", a, k, c, end)
        assert coord.stats.task_waits == 0
        if c <= T:  # the wait for the draft never binds: the greedy model's latency
            assert end == dsi_latency(a, T, c, k), ("DSI, greedy model", a, k, c, end)
        end, _ = run("si", a, k, 64, c)
        assert end == si_rejection_latency(a, T, c, k), ("si", a, k, c, end)


def test_model_equals_simulator_exhaustive_small():
    """Every pattern N <= 5, k <= 4, six c/t, enough servers, instant preemption."""
    _exact(5, [1, 2, 3, 4], CS)


@pytest.mark.slow
def test_model_equals_simulator_exhaustive_larger():
    """N = 6, k <= 5, seven c/t (the default test covers N <= 5)."""
    _exact(6, [1, 2, 3, 4, 5], [*CS, F(2)], nmin=6)


@pytest.mark.parametrize("servers", [1, 2])
def test_fewer_servers_only_add_waits(servers):
    """S in {1, 2}: never faster than the model; equal to it when no task waited."""
    for a, k, c in itertools.product(patterns(4), [1, 2, 3], [F(1, 10), F(1, 2), F(1)]):
        end, coord = run("dsi", a, k, servers, c)
        model = dsi_rejection_latency(a, T, c, k)
        assert end >= model, (a, k, c, servers, end, model)
        if coord.stats.task_waits == 0:
            assert end == model, (a, k, c, servers, end, model)


@pytest.mark.parametrize("d", ["instant", F(1, 10), F(1, 2), "fails"], ids=str)
@pytest.mark.parametrize("servers", [1, 2, 64])
def test_step_and_dsi_le_nonsi(servers, d):
    """The step theorem's hypotheses on every commit; DSI <= N t when c + min(d, c) <= t, and
    the bound N max(t, c + min(d, c)) of `rejection_dsi_bound_step` (so also c > t)."""
    cs = [F(1, 4), F(1, 2), F(3, 4), F(1), F(3, 2)]
    for a, k, c in itertools.product(patterns(4), [1, 2, 3], cs):
        end, coord = run("dsi", a, k, servers, c, cancellation=d)
        check_steps(coord, c, d)
        if c + _restart_delay(c, d) <= T:
            assert end <= len(a) * T, (a, k, c, servers, d, end)
        assert end <= len(a) * max(T, c + _restart_delay(c, d))


def test_witnesses():
    # non-SI in rejection mode samples plainly from p: N t
    assert run("nonsi", (1, 0, 1), 1, 1, F(1, 2))[0] == nonsi_latency(3, T)
    # c > t: every draft is waited for; all accepted gives N c (the bound N max(t, c) is tight)
    for n in (1, 2, 5):
        assert run("dsi", (1,) * n, 2, 64, F(3, 2))[0] == n * F(3, 2)
    # d > 0 with c = t: the preempted draft delays the drafter's restart, DSI > non-SI
    assert run("dsi", (0, 0), 1, 64, F(1), F(1, 10))[0] == F(21, 10)
    assert run("dsi", (0, 0), 1, 64, F(1))[0] == 2
    # SI's final position after a rejection with c > t: the task starts before the drafter
    # (a preempted draft was unacknowledged), so the last draft follows it (t + c, not c)
    assert run("si", (0, 0), 2, 1, F(3, 2))[0] == F(5)
    assert run("si", (0,), 2, 1, F(3, 2))[0] == F(3, 2)  # no preempted draft: they overlap
    # DSI(3) slower than SI(2) in rejection mode (proofs/rejection.py, counterexample)
    a, c = (1, 0, 1, 0), F(1, 12)
    assert run("dsi", a, 3, 64, c)[0] == F(7, 3) > run("si", a, 2, 1, c)[0] == F(9, 4)


def test_seed_does_not_matter():
    """The forced patterns decide every position for every uniform (so the tests cover u)."""
    a, k, c = (1, 1, 0, 1, 0, 1), 2, F(1, 3)
    ends = {run("dsi", a, k, 64, c, seed=s)[0] for s in range(5)}
    assert ends == {dsi_rejection_latency(a, T, c, k)}


def test_check_steps_ties_the_segment_start_to_the_last_decision():
    """check_steps fails on a trace whose segment starts later than D_{n0-1}, or whose drafter
    restarts later than T + delta (so the step's T, n0 and A_p are the runtime's)."""
    _, coord = run("dsi", (0, 1, 0), 1, 64, F(1, 2))
    check_steps(coord, F(1, 2), "instant")
    events = coord.trace
    late_segment = [
        dataclasses.replace(e, time=e.time + F(1, 10)) if e.what == "segment" and e.pos else e
        for e in events
    ]
    late_draft = [
        dataclasses.replace(e, time=e.time + F(1, 10)) if e.what == "draft_done" else e
        for e in events
    ]
    for trace in (late_segment, late_draft):
        coord.trace = trace
        with pytest.raises(AssertionError):
            check_steps(coord, F(1, 2), "instant")
