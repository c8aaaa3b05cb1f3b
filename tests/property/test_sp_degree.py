"""SP degree: the exact evaluator of busy servers == the coordinator on the simulated backend.

`proofs.sp_degree_model.dsi_max_busy` (task intervals with the backend's tie order) must equal
`coord.stats.max_busy_servers` exactly on random patterns, latencies and lookaheads (64
servers, instant preemption). The degree it predicts over all patterns of length N
(`sp_degree_needed`, via the segment reduction) must be enough -- no task waits on the worst
pattern -- and one server fewer must make a task wait there; the closed forms must agree.
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from proofs.latency_model import dsi_latency
from proofs.simcheck import simulate
from proofs.sp_degree_model import (
    dsi_max_busy,
    sp_degree_latency_formula,
    sp_degree_wait_formula,
    worst_pattern,
)

latencies = st.tuples(
    st.sampled_from([Fraction(1), Fraction(3, 2), Fraction(2)]),
    st.fractions(min_value=Fraction(1, 12), max_value=Fraction(3), max_denominator=12),
)


@settings(max_examples=max(300, settings.default.max_examples))
@given(a=st.lists(st.integers(0, 1), min_size=1, max_size=14), tc=latencies, k=st.integers(1, 5))
def test_evaluator_equals_coordinator_max_busy(a, tc, k):
    t, c = tc
    run = simulate("dsi", a, t, c, k)
    assert run.stats.max_busy_servers == dsi_max_busy(a, t, c, k), (a, t, c, k)
    assert run.stats.task_waits == 0 and run.end == dsi_latency(a, t, c, k)


@settings(max_examples=max(120, settings.default.max_examples))
@given(n=st.integers(2, 10), tc=latencies, k=st.integers(1, 5))
def test_needed_degree_is_enough_and_one_fewer_waits(n, tc, k):
    t, c = tc
    s, a = worst_pattern(t, c, k, n)
    enough = simulate("dsi", a, t, c, k, s)
    assert enough.stats.max_busy_servers == s
    assert enough.stats.task_waits == 0 and enough.end == dsi_latency(a, t, c, k)
    if s > 1:
        assert simulate("dsi", a, t, c, k, s - 1).stats.task_waits > 0
    formula = sp_degree_wait_formula(t, c, k, n)
    if formula is None:  # t/k < c <= t: the chain runs beside the blocks
        assert 2 <= s <= 3
    else:
        assert s == formula


def test_latency_degree_by_brute_force():
    """S_lat = 1 + ceil((t - c)/(k c)): fewest servers with the model's latency on every
    pattern of length 7 (c = t/7 with k = 2 is the case where it is one below S_wait)."""
    import itertools

    t = Fraction(1)
    for k, c in (
        (1, Fraction(2, 7)),
        (1, Fraction(1, 3)),
        (2, Fraction(1, 7)),
        (2, Fraction(1, 4)),
        (3, Fraction(1, 5)),
    ):
        s_lat = sp_degree_latency_formula(t, c, k)
        pats = list(itertools.product((0, 1), repeat=7))
        assert all(simulate("dsi", a, t, c, k, s_lat).end == dsi_latency(a, t, c, k) for a in pats)
        assert any(
            simulate("dsi", a, t, c, k, s_lat - 1).end > dsi_latency(a, t, c, k) for a in pats
        )


def test_all_n_theorem_facts_hold_on_the_evaluator():
    """The facts `proofs/sp_degree.py::_all_n` proves with symbolic indices, read off the exact
    evaluator's task list (first segment of `1^m 0^(L-m)`, every `L <= 12`, `m < L`, `k <= 4`,
    every `c = t/q`, `q <= 16`, with `k c <= t`): only the zero-draft task and blocks, block `j`
    starts at `min(j k, L - 1) c` while that is no later than `D_m = bb(m) + t`, and at each
    block's start the running blocks have index `>= j - v - 1`, the zero-draft task runs only
    if `j <= v + 1`, and no more than `v + 2` tasks run; of those still running after that
    instant, the index is `>= j - u` (`u = ceil(x)`), the zero-draft task only if `j <= u`, and
    no more than `u + 1` (`sp_degree_lat_all_n`)."""
    import math

    from proofs.sp_degree_model import BLOCK_START, STOP, dsi_server_tasks

    t, checked = Fraction(1), 0
    for k in range(1, 5):
        for q in range(k, 17):
            c = t / q
            v = math.floor((t - c) / (k * c))
            u = math.ceil((t - c) / (k * c))
            for length in range(2, 13):
                for m in range(length):
                    a = [1] * m + [0] * (length - m)
                    tasks = [x for x in dsi_server_tasks(a, t, c, k) if x.segment == 0]
                    assert {x.kind for x in tasks} <= {"zero", "block"}
                    zero = [x for x in tasks if x.kind == "zero"]
                    blocks = [x for x in tasks if x.kind == "block"]
                    assert len(zero) == 1 and (zero[0].begin, zero[0].stop) == (0, t)
                    end = min(-(-m // k) * k, length - 1) * c + t if m else t
                    want = []
                    for j in range(1, length):
                        if (j - 1) * k + 1 > length - 1 or min(j * k, length - 1) * c > end:
                            break
                        want.append(min(j * k, length - 1) * c)
                    assert [x.begin for x in blocks] == want
                    for j, bj in enumerate(blocks, start=1):
                        assert bj.stop <= bj.begin + t
                        running = [
                            i for i, bi in enumerate(blocks[:j], start=1) if bi.stop >= bj.begin
                        ]
                        assert min(running) >= j - v - 1, (k, c, length, m, j)
                        zero_runs = zero[0].stop >= bj.begin
                        assert not zero_runs or j <= v + 1
                        assert len(running) + zero_runs <= v + 2
                        # still running after the start (S_lat, `sp_degree_lat_all_n`)
                        later = [
                            i for i, bi in enumerate(blocks[:j], start=1) if bi.stop > bj.begin
                        ]
                        zero_later = zero[0].stop > bj.begin
                        assert all(i >= j - u for i in later) and (not zero_later or j <= u)
                        assert len(later) + zero_later <= u + 1
                        assert BLOCK_START < STOP  # the tie order the counts above assume
                    checked += 1
    assert checked > 1000
