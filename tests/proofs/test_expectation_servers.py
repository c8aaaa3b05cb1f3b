"""The fixed-S expectation polynomials of proofs/expectation_servers.py against direct sums and
fresh simulator runs (the theorems themselves run in test_proofs.py)."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction as F

import pytest

from proofs.expectation_servers import (
    ENOUGH,
    dsi_sim_latencies,
    dsi_sim_polynomial,
    expected_dsi_sim,
    latency_degree_ok,
)
from proofs.latency_model import dsi_latency, nonsi_latency, si_latency
from proofs.simcheck import simulate

_CS = (F(1, 20), F(1, 4), F(1, 2), F(1))


def test_polynomial_equals_direct_sum_of_fresh_runs() -> None:
    """E[DSI_{k,S}](a) from the cached polynomial = sum over patterns of uncached simulator runs."""
    n = 5
    for c, k, s in ((F(1, 10), 1, 2), (F(1, 4), 2, 3), (F(1, 20), 3, 7)):
        sums = dsi_sim_polynomial(n, c, k, s)
        for rate in (F(0), F(1, 3), F(7, 8), F(1)):
            poly = sum(v * rate**j * (1 - rate) ** (n - j) for j, v in enumerate(sums))
            direct = sum(
                rate ** sum(x) * (1 - rate) ** (n - sum(x)) * simulate("dsi", x, 1, c, k, s).end
                for x in itertools.product((0, 1), repeat=n)
            )
            assert poly == direct == expected_dsi_sim(n, c, k, s, rate)


def test_run_reuse_between_server_counts_is_exact() -> None:
    """Runs shared between S values (busy <= S', or no wait) equal fresh runs with that S."""
    n = 6
    for c in (F(1, 10), F(1, 4)):
        for k in (1, 3):
            for s in (7, 3, 2, 1, 4):  # 4 last: reused from a smaller count without waits
                cached = dsi_sim_latencies(n, c, k, s)
                fresh = tuple(
                    simulate("dsi", x, 1, c, k, s).end for x in itertools.product((0, 1), repeat=n)
                )
                assert cached == fresh, (c, k, s)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_enough_servers_equals_latency_model(k: int) -> None:
    """With S large the simulator-based latency is the model's `dsi_latency` on every pattern."""
    n = 6
    for c in _CS:
        lats = dsi_sim_latencies(n, c, k, ENOUGH)
        for x, lat in zip(itertools.product((0, 1), repeat=n), lats, strict=True):
            assert lat == dsi_latency(x, 1, c, k), (x, c, k)
        assert latency_degree_ok(n, c, k, ENOUGH)


def test_one_server_is_nonsi_and_two_servers_never_lose_to_si_same_k() -> None:
    """Pathwise background of the same-k theorem: S = 1 gives non-SI; S = 2 already gives
    DSI_{k,2} <= SI_k on every pattern (N = 6)."""
    n = 6
    for c in (F(1, 20), F(1, 4), F(1)):
        for k in (1, 2, 4):
            one = dsi_sim_latencies(n, c, k, 1)
            two = dsi_sim_latencies(n, c, k, 2)
            for x, l1, l2 in zip(itertools.product((0, 1), repeat=n), one, two, strict=True):
                assert l1 == nonsi_latency(n, 1)
                assert l2 <= si_latency(x, 1, c, k), (x, c, k)


def test_below_degree_by_hand() -> None:
    """The paper's S = 7 with k = 1, c = t/20 on all-accepted patterns: block 7 waits until t."""
    c = F(1, 20)
    assert not latency_degree_ok(8, c, 1, 7)
    assert dsi_sim_latencies(8, c, 1, 7)[-1] == 2  # pattern 1^8, last in itertools order
    assert dsi_latency([1] * 8, 1, c, 1) == F(27, 20) == si_latency([1] * 8, 1, c, 7)


def test_degree_cover_matches_formula_with_horizon_cap() -> None:
    """For k c <= t, 'S covers the degree on horizon n' = S >= min(1 + ceil(x), 1 + ceil((n-1)/k))
    with x = (t - c)/(k c) (the README's reading of the fixed-k hypothesis)."""
    n = 6
    for c in (F(1, 20), F(1, 10), F(1, 4), F(1, 2)):
        for k in (1, 2, 3, 4):
            if k * c > 1:
                continue
            x = (1 - c) / (k * c)
            degree = min(1 + math.ceil(x), 1 + math.ceil(F(n - 1, k)))
            for s in (2, 3, 4, 7):
                assert latency_degree_ok(n, c, k, s) == (s >= degree), (c, k, s, degree)
