"""``dsi estimate``: per-position acceptance and predictions (structure, not timings)."""

from __future__ import annotations

from dsi_core.experiments.estimate import estimate_table, predict, profile_pair
from dsi_core.models.hf import tiny_llama
from dsi_core.models.lookup import LookupDrafter


def test_profile_and_prediction():
    target = tiny_llama(64, seed=0)
    prompts = {"a": [1, 2, 3, 1, 2], "b": [5, 6, 7]}
    prof = profile_pair(target, target, prompts, n_tokens=8, repeats=1)
    # the target drafting for itself is always right: acceptance exactly 1, nothing censored
    assert [len(p) for p in prof.patterns] == [8, 8] and prof.acceptance == 1.0
    nonsi, waited = predict(prof, "nonsi", 1, 1)
    assert not waited
    assert abs(nonsi - 16 * prof.decode_s) < 1e-9  # one 1-row forward per token
    lookup = profile_pair(target, LookupDrafter(), prompts, n_tokens=8, repeats=1)
    assert 0.0 <= lookup.acceptance <= 1.0
    text = estimate_table(prof, [1, 2], 4)
    assert "recommended:" in text and "needed S" in text
