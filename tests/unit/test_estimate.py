"""``dsi estimate``: per-position acceptance and predictions (structure, not timings)."""

from __future__ import annotations

import pytest

from dsi_core.experiments.estimate import PairProfile, estimate_table, predict, profile_pair
from dsi_core.models.hf import tiny_llama
from dsi_core.models.lookup import LookupDrafter


def test_profile_and_prediction():
    """Measured timings vary run to run: only timing-free facts are asserted on them."""
    target = tiny_llama(64, seed=0)
    prompts = {"a": [1, 2, 3, 1, 2], "b": [5, 6, 7]}
    prof = profile_pair(target, target, prompts, n_tokens=8, repeats=1)
    # the target drafting for itself is always right: acceptance exactly 1, nothing censored
    assert [len(p) for p in prof.patterns] == [8, 8] and prof.acceptance == 1.0
    nonsi, waited = predict(prof, "nonsi", 1, 1)
    assert not waited
    assert nonsi == pytest.approx(16 * prof.task_cost(1), rel=1e-9)  # one 1-row forward/token
    lookup = profile_pair(target, LookupDrafter(), prompts, n_tokens=8, repeats=1)
    assert 0.0 <= lookup.acceptance <= 1.0
    text = estimate_table(prof, [1, 2], 4)
    assert "recommended:" in text
    dsi_rows = [ln for ln in text.splitlines() if ln.startswith("dsi ")]
    assert len(dsi_rows) == 2
    assert all("needed S = " in ln or "waits even at S=4" in ln for ln in dsi_rows)


def test_estimate_table_on_fixed_timings():
    """A profile with fixed timings: the table's numbers are exact (t = 1 s, c = t/4)."""
    prof = PairProfile(
        0.01, 1.0, {1: 1.0, 2: 1.0, 3: 1.0}, 0.25, [[1] * 8, [1, 0, 1, 1, 0, 1, 1, 1]]
    )
    text = estimate_table(prof, [1, 2], 4)
    assert "nonsi         1       16.000" in text
    assert "waits even at S=4" in text  # k = 1 needs 5 servers at c = t/4
    assert "needed S = 3" in text  # k = 2: 2 + floor((t - c)/(k c)) = 3
    assert "recommended: dsi k=1 S=4" in text
