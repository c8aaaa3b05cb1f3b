"""Statistical test of the real torch path in sampling mode (rejection rule).

Target and drafter are small random Llamas (vocabulary 6) built from configs. DSI generates two
tokens for ``N_RUNS`` seeds on the simulated backend (real torch rows, real keyed noise); the
empirical law of the pair is compared with the target's exact law (computed from the same
model's rows) by a chi-square goodness-of-fit test at level ``ALPHA``.

False-failure rate: for a correct sampler and seeds drawn at random the test fails with
probability ``ALPHA = 1e-4``. The seeds are fixed (0 .. N_RUNS-1), so the test is deterministic.
Power: the same test must reject two broken samplers (wrong residual ``max(0, q - p)``, and
verification against a ``q`` other than the one the draft was sampled from); both are checked
below, so the test demonstrably can fail.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import chisquare

import dsi_core.sampling as sampling
from dsi_core.backends.simulated import SimulatedBackend
from dsi_core.coordinator import Config, Coordinator
from dsi_core.models.hf import tiny_llama
from dsi_core.sampling import DecisionRule, KeyedNoise, to_probs

ALPHA = 1e-4
N_RUNS = 3000
V = 6
PROMPT = [1, 2]
N_NEW = 2


class Memo:
    """Runs the torch model once per distinct request and replays its rows (speed only)."""

    def __init__(self, model):
        self.model = model
        self.vocab_size = model.vocab_size
        self.row_kind = model.row_kind
        self.memo = {}

    def new_state(self):
        return None

    def rows(self, state, tokens, start):
        key = ("rows", tuple(tokens), start)
        if key not in self.memo:
            self.memo[key] = self.model.rows(self.model.new_state(), tokens, start)
        return self.memo[key]

    def propose(self, state, tokens):
        key = ("propose", tuple(tokens))
        if key not in self.memo:
            self.memo[key] = self.model.propose(self.model.new_state(), tokens)
        return self.memo[key]


@pytest.fixture(scope="module")
def models():
    return Memo(tiny_llama(V, seed=3, hidden=32)), Memo(tiny_llama(V, seed=4, hidden=32))


def exact_law(target):
    law = {}
    p0 = to_probs(target.rows(None, PROMPT, len(PROMPT))[0], target.row_kind)
    for a in range(V):
        p1 = to_probs(target.rows(None, PROMPT + [a], len(PROMPT) + 1)[0], target.row_kind)
        for b in range(V):
            law[(a, b)] = p0[a] * p1[b]
    return law


def sample_counts(target, drafter, rule_cls=DecisionRule):
    counts = dict.fromkeys(itertools.product(range(V), repeat=N_NEW), 0)
    for seed in range(N_RUNS):
        coord = Coordinator(Config("dsi", 1, 2, N_NEW), rule_cls("rejection", KeyedNoise(seed)))
        SimulatedBackend(1, 0.4).run(coord, target, drafter, PROMPT)
        counts[tuple(coord.committed)] += 1
    return counts


def p_value(counts, law):
    keys = sorted(law)
    exp = np.array([law[k] for k in keys]) * N_RUNS
    obs = np.array([counts[k] for k in keys], dtype=float)
    # merge cells with expected count < 5 into one (standard validity condition)
    small = exp < 5
    if small.any():
        exp = np.append(exp[~small], exp[small].sum())
        obs = np.append(obs[~small], obs[small].sum())
    return chisquare(obs, exp * obs.sum() / exp.sum()).pvalue


def test_dsi_rejection_sampling_matches_target(models):
    target, drafter = models
    counts = sample_counts(target, drafter)
    assert p_value(counts, exact_law(target)) > ALPHA


def test_detects_wrong_residual(models, monkeypatch):
    target, drafter = models
    monkeypatch.setattr(sampling, "residual", lambda p, q, d: np.maximum(q - p, 0.0))
    assert p_value(sample_counts(target, drafter), exact_law(target)) < ALPHA


class WrongQRule(DecisionRule):
    def decide(self, pos, p, draft=None, q=None):
        if q is not None:
            q = np.full(len(q), 1.0 / len(q))
        return super().decide(pos, p, draft, q)


def test_detects_wrong_q(models):
    target, drafter = models
    assert p_value(sample_counts(target, drafter, WrongQRule), exact_law(target)) < ALPHA
