"""Runs every z3 theorem of `proofs/` and checks the exact latency evaluators on small cases."""

from __future__ import annotations

import itertools
from fractions import Fraction as F

import pytest
import z3

from proofs import all_theorems
from proofs.expectation import expected_latency, latency_polynomial
from proofs.latency import dsi_unroll, si_unroll
from proofs.latency_model import (
    authors_segment_cost,
    dsi_latency,
    dsi_segments,
    dsi_sp_degree,
    dsi_tasks,
    nonsi_latency,
    si_latency,
    si_segments,
)
from proofs.theorem import Mutant, Problem, Theorem, check

THEOREMS = all_theorems()


@pytest.mark.parametrize("theorem", THEOREMS, ids=[f"{t.family}/{t.name}" for t in THEOREMS])
def test_theorem_outcome_as_expected(theorem: Theorem) -> None:
    result = check(theorem)
    assert result.ok, (result.status, result.mutants, result.detail, result.witness)


# ---------------------------------------------------------------- the checker itself


def _x() -> z3.ArithRef:
    return z3.Real("x")


def test_vacuous_hypotheses_fail() -> None:
    th = Theorem(
        "vacuous",
        "test",
        "x > 1 and x < 0",
        "x = 5",
        "proved",
        100_000,
        lambda: Problem([_x() > 1, _x() < 0], _x() == 5),
        (Mutant("m", lambda: Problem([], _x() == 5)),),
    )
    result = check(th)
    assert result.status == "vacuous" and not result.ok


def test_resource_exhaustion_fails() -> None:
    y = z3.Int("y")
    th = Theorem(
        "tiny rlimit",
        "test",
        "",
        "no cube is 2 mod 7 trick",
        "proved",
        1,
        lambda: Problem([y > 0], y * y * y % 7 != 9),
        (Mutant("m", lambda: Problem([], y == 1)),),
    )
    result = check(th)
    assert result.status == "unknown" and not result.ok


def test_missing_mutant_fails_and_surviving_mutant_fails() -> None:
    good = lambda: Problem([_x() > 0], _x() > -1)  # noqa: E731
    assert not check(Theorem("n", "test", "", "", "proved", 100_000, good)).ok
    survivor = Theorem("s", "test", "", "", "proved", 100_000, good, (Mutant("m", good),))
    assert not check(survivor).ok
    killed = Theorem(
        "k",
        "test",
        "",
        "",
        "proved",
        100_000,
        good,
        (Mutant("m", lambda: Problem([_x() > -5], _x() > -1)),),
    )
    assert check(killed).ok


def test_counterexample_has_witness() -> None:
    th = Theorem(
        "cex",
        "test",
        "",
        "",
        "counterexample",
        100_000,
        lambda: Problem([_x() > 0], _x() > 1),
        (Mutant("m", lambda: Problem([_x() > 2], _x() > 1)),),
    )
    result = check(th)
    assert result.ok and result.status == "counterexample" and "x=" in result.witness


# ---------------------------------------------------------------- evaluators, by hand


def test_nonsi() -> None:
    assert nonsi_latency(5, F(2)) == 10


def test_design_example_under_our_policy() -> None:
    """Block-aligned example: authors' DSI 6 t > SI 17/3 t; ours ties them at 17/3 t."""
    a, t, c = [1, 1, 1, 1, 1, 0, 0], F(1), F(2, 3)
    # SI(2): [0, 7/3] pos 0..2 bonus; [7/3, 14/3] pos 3..5 bonus; [14/3, 17/3] pos 6 (d = 0:
    # the last position is never drafted).
    assert si_latency(a, t, c, 2) == F(17, 3)
    assert [s.committed for s in si_segments(a, t, c, 2)] == [3, 3, 1]
    assert si_segments(a, t, c, 2)[-1].end - si_segments(a, t, c, 2)[-1].begin == t
    # DSI(2): D = 1, 2, 7/3, 10/3, 11/3, 14/3 (reject at 5), then 14/3 + 1.
    assert dsi_latency(a, t, c, 2) == F(17, 3)
    assert [(s.committed, s.reason) for s in dsi_segments(a, t, c, 2)] == [
        (6, "reject"),
        (1, "done"),
    ]


def test_small_cases_by_hand() -> None:
    t = F(1)
    assert si_latency([1, 0], t, F(1, 10), 1) == F(11, 10)  # one segment: draft, verify, bonus
    # the final block no longer waits for the draft of the last position (was 6/5)
    assert dsi_latency([1, 0], t, F(1, 10), 2) == F(11, 10)
    assert dsi_latency([1, 0], t, F(1, 10), 1) == F(11, 10)
    assert dsi_latency([1, 1, 1], t, F(2), 3) == 3  # drafter always behind: non-SI
    assert si_latency([0, 0, 0], t, F(1, 2), 4) == 2 + F(3, 2) + 1  # d = 2, 1, 0
    assert si_latency([1], t, F(1, 10), 3) == t  # N = 1: nothing to draft
    # block alignment: DSI(2) verifies drafts 0..1 together, SI(1) verifies draft 0 alone
    assert dsi_latency([1, 0, 0], t, F(1, 12), 2) == F(13, 6)
    assert si_latency([1, 0, 0], t, F(1, 12), 1) == F(25, 12)


def test_si_never_drafts_the_last_position() -> None:
    """d = min(k, N - 1 - n0): a fully accepted segment always commits d + 1 (the bonus)."""
    t = F(1)
    for n in range(1, 8):
        for a in itertools.product((0, 1), repeat=n):
            for k in (1, 2, 3, 9):
                for seg in si_segments(a, t, F(1, 3), k):
                    d = min(k, n - 1 - seg.start)
                    assert seg.end - seg.begin == d * F(1, 3) + t
                    assert seg.start + d <= n - 1
                    accepted = all(a[seg.start : seg.start + d])
                    assert seg.committed == (
                        d + 1 if accepted else a.index(0, seg.start) - seg.start + 1
                    )


def test_dsi1_closed_form() -> None:
    """For c <= t, DSI(1) costs t for the first position and after a rejection, else c."""
    t = F(1)
    for n in range(1, 9):
        for a in itertools.product((0, 1), repeat=n):
            for c in (F(1, 5), F(1, 2), F(1)):
                want = t + sum(c if x else t for x in a[:-1])
                assert dsi_latency(a, t, c, 1) == want


def test_segments_never_cost_more_than_authors_accounting() -> None:
    t = F(1)
    for n in range(1, 9):
        for a in itertools.product((0, 1), repeat=n):
            for c in (F(1, 4), F(2, 3), F(1), F(3, 2)):
                for k in (1, 2, 3):
                    for seg in dsi_segments(a, t, c, k):
                        m = seg.committed - 1
                        assert seg.end - seg.begin <= authors_segment_cost(m, t, c, k)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_z3_encoding_matches_evaluators(k: int) -> None:
    """The symbolic recurrences of proofs/latency.py equal the Fraction evaluators exactly."""
    for n in range(1, 7):
        a = [z3.Bool(f"a{i}") for i in range(n)]
        t, c = z3.Reals("t c")
        dsi, cons_d = dsi_unroll("d", a, t, c, k)
        si, cons_s = si_unroll("s", a, t, c, k)
        for cv in (F(1, 10), F(1, 3), F(2, 3), F(1), F(3, 2)):
            solver = z3.Solver()
            solver.add(*cons_d, *cons_s, t == 1, c == z3.RealVal(str(cv)))
            for pat in itertools.product((0, 1), repeat=n):
                assumptions = [x if v else z3.Not(x) for x, v in zip(a, pat, strict=True)]
                assert solver.check(*assumptions) == z3.sat
                model = solver.model()
                got_d = F(str(model.eval(dsi[-1].D).as_fraction()))
                got_s = F(str(model.eval(si[-1].sig).as_fraction()))
                assert got_d == dsi_latency(pat, 1, cv, k), (pat, cv)
                assert got_s == si_latency(pat, 1, cv, k), (pat, cv)


def test_tasks_final_block_needs_no_last_draft() -> None:
    """N = 2, k = 2: the only block verifies draft 0 (not draft 1) and starts at c."""
    tasks = dsi_tasks([1, 1], F(1), F(1, 10), 2)
    assert [(x.kind, x.begin, x.stop, x.rows) for x in tasks] == [
        ("zero", 0, 1, (0,)),
        ("block", F(1, 10), F(11, 10), (1,)),
    ]
    for n in range(1, 7):  # every task stops by the end of the segment that started it
        for a in itertools.product((0, 1), repeat=n):
            for k in (1, 2, 3):
                end = dsi_latency(a, F(1), F(1, 4), k)
                assert all(x.begin < x.stop <= end for x in dsi_tasks(a, F(1), F(1, 4), k))


def test_sp_degree_all_rejected_by_hand() -> None:
    """k = 1, c = t/10, all rejected: in [0.9, 1) the zero-draft task and 9 blocks all run."""
    assert dsi_sp_degree([0] * 10, F(1), F(1, 10), 1) == 10
    assert dsi_sp_degree([0], F(1), F(3, 2), 1) == 1


def test_old_final_block_mutant_evaluator() -> None:
    """The mutant flag restores the rule before the fix: the final block waits for draft N-1."""
    t, c = F(1), F(1, 10)
    assert dsi_latency([1, 0], t, c, 2, old_final_block=True) == F(6, 5)
    assert dsi_latency([1, 0], t, c, 2) == F(11, 10)
    for n in range(1, 7):
        for a in itertools.product((0, 1), repeat=n):
            # k = 1 never reaches the cap, so the fix changes nothing there; otherwise it helps
            assert dsi_latency(a, t, c, 1, old_final_block=True) == dsi_latency(a, t, c, 1)
            for k in (2, 3):
                assert dsi_latency(a, t, c, k) <= dsi_latency(a, t, c, k, old_final_block=True)


def test_expectation_polynomial_matches_direct_sum() -> None:
    n, c = 6, F(1, 3)
    for alg, k in (("SI", 2), ("DSI", 2), ("DSI", 3)):
        sums = latency_polynomial(alg, n, c, k)
        ev = si_latency if alg == "SI" else dsi_latency
        assert sums[0] == ev([0] * n, 1, c, k) and sums[n] == ev([1] * n, 1, c, k)
        for rate in (F(0), F(1, 3), F(4, 5), F(1)):
            poly = sum(s * rate**j * (1 - rate) ** (n - j) for j, s in enumerate(sums))
            assert poly == expected_latency(alg, n, c, k, rate)


# ---------------------------------------------------------------- SP degree (proofs/sp_degree*)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_sp_degree_encoding_matches_evaluator(k: int) -> None:
    """The z3 segment encoding of proofs/sp_degree.py gives the Fraction evaluator's degree."""
    from proofs.sp_degree import _segment, segment_busy
    from proofs.sp_degree_model import dsi_server_tasks, max_busy

    t, c = z3.Reals("t c")
    for length in range(1, 7):
        for m in range(length):
            busy = segment_busy(_segment(length, m, k, t, c))
            a = [1] * m + [0] * (length - m)
            for cv in (
                F(1, 10),
                F(1, 7),
                F(1, 4),
                F(1, 3),
                F(2, 5),
                F(1, 2),
                F(2, 3),
                F(1),
                F(3, 2),
            ):
                subst = [(t, z3.RealVal(1)), (c, z3.RealVal(str(cv)))]
                got = max(
                    z3.simplify(z3.substitute(b, *subst)).as_long()
                    for ex, b in busy
                    if z3.is_true(z3.simplify(z3.substitute(ex, *subst)))
                )
                first = [x for x in dsi_server_tasks(a, F(1), cv, k) if x.segment == 0]
                assert got == max_busy(first), (length, m, cv)


def test_sp_degree_closed_forms_by_hand() -> None:
    from proofs.sp_degree_model import (
        sp_degree_latency_formula,
        sp_degree_needed,
        sp_degree_wait_formula,
    )

    t = F(1)
    # k = 1, c = t/10: 11 servers counted (a block starts as the zero-draft task finishes), 10
    # needed for latency; the old conjecture ceil(t/(kc)) + 1 = 11
    assert sp_degree_wait_formula(t, F(1, 10), 1) == 11
    assert sp_degree_latency_formula(t, F(1, 10), 1) == 10
    assert sp_degree_needed(t, F(1, 10), 1, 12) == 11
    # k = 3, c = t/6: 3 (= ceil(t/(kc)) + 1); k = 2, c = t/7: 5 and 4 (ceil(t/(kc)) = 4)
    assert sp_degree_needed(t, F(1, 6), 3, 10) == sp_degree_wait_formula(t, F(1, 6), 3) == 3
    assert sp_degree_wait_formula(t, F(1, 7), 2) == 5
    assert sp_degree_latency_formula(t, F(1, 7), 2) == 4
    # c > t: one server (DSI = non-SI); t/k < c <= t: no closed form, 2 or 3
    assert sp_degree_needed(t, F(3, 2), 2, 8) == 1
    assert sp_degree_wait_formula(t, F(3, 5), 2) is None
    assert sp_degree_needed(t, F(3, 5), 2, 8) == 3 and sp_degree_needed(t, F(3, 4), 2, 8) == 2
