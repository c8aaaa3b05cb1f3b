"""The cancellation delay d in the simulator, and what DSI keeps under it (tested, bounded N).

``SimulatedBackend(cancellation=d)``: a preempted job keeps its server (or the drafter) until
``min(cancel + d, finish)``; ``"instant"`` is ``d = 0`` and ``"fails"`` is ``d = infinity``.
Results here are *tested* on every pattern up to the stated N, not proved:

* DSI <= non-SI for every d in {0, 1/10, 1/4, 1/2, fails} x t, S in {1, 2, 64}, k <= 3,
  c/t in {1/10, 1/4, 1/2, 1}, every pattern with N <= 5, greedy decisions; checked as the
  inductive step D_p <= D_{p-1} + t on every commit (the policy is unchanged: no server is
  reserved; the argument why none is needed is in proofs/README.md).
* With enough servers (S = 64), DSI(d) <= DSI(0) + R d, where R is the number of segment
  restarts: each restart can wait at most d for the preempted draft to free the drafter.
* DSI_1 <= SI fails for every tested d > 0: a = 1010, c = t/2 gives DSI_1 = 3t + min(d, c)
  against SI's best 3t (the drafter's preempted draft delays the restart), and the issue's
  witness a = 101011, c = t/2 under failed cancellation: DSI_1 = 11/2 t > SI_1 = 9/2 t.

Every run's trace also passes :func:`dsi_core.check_trace`.
"""

from __future__ import annotations

import itertools
from fractions import Fraction as F

import pytest

from dsi_core import check_trace
from dsi_core.backends.simulated import SimulatedBackend
from dsi_core.errors import InvalidInputError
from dsi_core.testing.replay import replay_pattern
from proofs.latency_model import si_latency

DELAYS = ["instant", F(1, 10), F(1, 4), F(1, 2), "fails"]
CS = [F(1, 10), F(1, 4), F(1, 2), F(1)]


def _patterns(nmax):
    for n in range(1, nmax + 1):
        yield from (list(b) for b in itertools.product([0, 1], repeat=n))


@pytest.mark.parametrize("d", DELAYS, ids=str)
@pytest.mark.parametrize("servers", [1, 2, 64])
def test_dsi_never_slower_than_nonsi_under_delay(d, servers):
    for a, k, c in itertools.product(_patterns(5), [1, 2, 3], CS):
        end, coord = replay_pattern("dsi", a, k, servers, F(1), c, cancellation=d)
        assert end <= len(a), (a, k, c, end)
        # the inductive step itself: D_p <= D_{p-1} + t (D_{-1} = 0), see proofs/README.md
        prev = F(0)
        for e in coord.trace:
            if e.what == "commit":
                assert e.time <= prev + 1, (a, k, c, e.pos)
                prev = e.time
        assert check_trace(coord.trace) == []


@pytest.mark.parametrize("d", [F(1, 10), F(1, 4), F(1, 2)], ids=str)
def test_delay_costs_at_most_d_per_restart_with_enough_servers(d):
    for a, k, c in itertools.product(_patterns(5), [1, 2, 3], CS):
        e0, c0 = replay_pattern("dsi", a, k, 64, F(1), c)
        ed, _ = replay_pattern("dsi", a, k, 64, F(1), c, cancellation=d)
        assert e0 <= ed <= e0 + (c0.stats.segments - 1) * d, (a, k, c, e0, ed)


@pytest.mark.parametrize("d", [F(1, 1000), F(1, 10), F(1, 2), "fails"], ids=str)
def test_dsi1_slower_than_si_under_any_delay(d):
    a = [1, 0, 1, 0]
    best_si = min(si_latency(a, F(1), F(1, 2), k) for k in range(1, len(a) + 1))
    end, _ = replay_pattern("dsi", a, 1, 64, F(1), F(1, 2), cancellation=d)
    assert best_si == 3
    assert end == 3 + min(F(1, 2), d if d != "fails" else F(1, 2))
    # instant preemption: DSI_1 ties SI here (the proved DSI_1 <= SI)
    assert replay_pattern("dsi", a, 1, 64, F(1), F(1, 2))[0] == 3


def test_issue_witness_failed_cancellation():
    a = [1, 0, 1, 0, 1, 1]
    end, _ = replay_pattern("dsi", a, 1, 64, F(1), F(1, 2), cancellation="fails")
    assert end == F(11, 2) and si_latency(a, F(1), F(1, 2), 1) == F(9, 2)


@pytest.mark.parametrize("d", [F(1, 20), F(1, 4), F(3, 4), "fails"], ids=str)
def test_delayed_cancellation_acks_at_min_of_cancel_plus_d_and_finish(d):
    """Every preempted job is acked at min(cancel + d, its finish): aborted if the delay ran
    out first, a stale result otherwise (t = 1 for tasks, c = 1/10 for drafts)."""
    a = [1, 0, 1, 1, 0, 0, 1]
    _, coord = replay_pattern("dsi", a, 1, 64, F(1), F(1, 10), cancellation=d)
    start, cancel, seen = {}, {}, 0
    for e in coord.trace:
        if e.what in ("task_start", "draft_start"):
            start[e.id] = (e.time, F(1) if e.what == "task_start" else F(1, 10))
        elif e.what == "preempt":
            cancel[e.id] = e.time
        elif e.id in cancel and e.what in ("task_aborted", "draft_aborted", "stale"):
            t0, lat = start[e.id]
            limit = t0 + lat if d == "fails" else min(cancel[e.id] + d, t0 + lat)
            assert e.time == limit, (e, t0, cancel[e.id])
            assert (e.what == "stale") == (d == "fails" or cancel[e.id] + d >= t0 + lat)
            seen += 1
    assert seen >= 3  # the pattern preempts several jobs


@pytest.mark.parametrize("bad", ["sometimes", -1, True, None])
def test_bad_cancellation_is_rejected(bad):
    with pytest.raises(InvalidInputError):
        SimulatedBackend(cancellation=bad)
