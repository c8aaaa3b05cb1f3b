"""The hypothesis strategies of dsi_core.testing.strategies drive the exact conformance check.

Properties: drawn rows are exact probability vectors; the reference rule is exactly lossless on
every drawn case; two mutants are flagged on *every* drawn pair with ``p != q`` (so these
properties can fail); DSI on the simulated backend under drawn schedules emits exactly the
target's law. Exact rational comparisons: no false failures.
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsi_core.backends.simulated import SimulatedBackend
from dsi_core.coordinator import Config, Coordinator
from dsi_core.sampling import DecisionRule
from dsi_core.testing.conformance import MUTANTS, Case, check_rule_exact, reference_rule
from dsi_core.testing.exact import Enumerator, grid_size, target_distribution
from dsi_core.testing.strategies import cases, row_pairs, rows, schedules
from dsi_core.testing.toy import ToyModel

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(rows())
def test_rows_are_exact_distributions(row):
    assert 2 <= len(row) <= 5
    assert all(isinstance(x, Fraction) and x >= 0 for x in row)
    assert sum(row) == 1


@FAST
@given(cases(vocabs=(2, 3, 4), max_drafts=3))
def test_reference_rule_lossless_on_drawn_cases(case):
    assert check_rule_exact(reference_rule, [case]).passed


def _constant_case(p, q, k=1):
    return Case("pair", ToyModel(len(p), lambda c: p), ToyModel(len(q), lambda c: q), k)


@FAST
@given(row_pairs().filter(lambda pq: pq[0] != pq[1]), st.sampled_from(["leq", "wrong_residual"]))
def test_mutants_flagged_whenever_p_differs_from_q(pq, mutant):
    """``p != q`` means some draft ``x`` has ``q(x) > p(x)``: ``u <= p/q`` then accepts it one
    grid step too often, and a rejection (probability > 0) samples the wrong residual."""
    case = _constant_case(*pq)
    assert check_rule_exact(reference_rule, [case]).passed
    assert not check_rule_exact(MUTANTS[mutant], [case]).passed


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(row_pairs(vocab=2), schedules(), st.sampled_from([(1, 1), (2, 2), (1, 3)]))
def test_dsi_lossless_under_drawn_schedules(pq, schedule, shape):
    p, q = pq
    target = ToyModel(2, lambda c: p if len(c) % 2 else tuple(reversed(p)))
    drafter = ToyModel(2, lambda c: q)
    k, servers = shape
    n_new = 3

    def run(noise):
        coord = Coordinator(Config("dsi", k, servers, n_new), DecisionRule("rejection", noise))
        SimulatedBackend(1, **schedule).run(coord, target, drafter, [0])
        return tuple(coord.committed)

    got = Enumerator(grid_size(target, drafter, [0], n_new)).distribution(run)
    assert got == target_distribution(target, [0], n_new)
