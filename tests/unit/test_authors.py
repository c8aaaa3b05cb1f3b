"""The authors' accounting, on hand-computed cases and against docs/design.md's segment formula."""

from __future__ import annotations

import itertools

from dsi_core.experiments.authors import authors_dsi, authors_si
from proofs.latency_model import dsi_latency


def segment_formula(m, t, c, k):
    return min((m // k + 1) * k * c + t, (m + 1) * t)


def test_segment_cost_is_the_design_formula():
    """A mid-run segment with m accepted drafts costs min((m//k+1) k c + t, (m+1) t)."""
    t, c = 1.0, 0.25
    for k in (1, 2, 3):
        for m in range(0, 7):
            rest = [1] * 20
            a = [1] * m + [0] + rest
            want = segment_formula(m, t, c, k) + authors_dsi(rest, t, c, k)
            assert abs(authors_dsi(a, t, c, k) - want) < 1e-9, (k, m)


def test_final_segment_drafts_only_what_is_left():
    t, c = 1.0, 0.25
    for k in (1, 2, 3):
        for m in range(0, 7):
            a = [1] * m + [0]  # the run ends with this segment
            assert abs(authors_dsi(a, t, c, k) - min(m * c + t, (m + 1) * t)) < 1e-9


def test_si_hand_cases():
    t, c = 1.0, 0.1
    assert abs(authors_si([0, 0, 0], t, c, 2) - ((2 * c + t) + (c + t) + t)) < 1e-9
    # all four accepted: 2 drafts + bonus, then the last position alone
    assert abs(authors_si([1, 1, 1, 1], t, c, 2) - ((2 * c + t) + t)) < 1e-9


def test_ours_never_slower_than_the_authors_accounting_with_enough_servers():
    """Our DSI credits the bonus row and starts blocks earlier: pathwise <= the authors'."""
    for n in range(1, 9):
        for a in itertools.product([0, 1], repeat=n):
            for k in (1, 2, 3):
                for c in (0.1, 0.5, 1.0):
                    assert float(dsi_latency(a, 1, c, k)) <= authors_dsi(a, 1.0, c, k) + 1e-9
