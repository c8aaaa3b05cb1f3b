"""Exact losslessness: SI and DSI in rejection mode emit exactly the target's distribution.

For vocabularies 2-4 and up to 3 new tokens, every outcome of the keyed uniforms is enumerated
(:mod:`dsi_core.testing.exact`) through the real coordinator on the simulated backend, for many
completion orders (time-based with fast and slow drafters, FIFO, LIFO, all targets first, all
drafts first, random, and failed cancellations that deliver stale results), lookaheads, server
counts and drafters (random, always-wrong, perfect). The law of the output is compared with
the target's own law in exact rational arithmetic: no tolerance, no false failures.
Three broken samplers must make the same comparison fail.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest

import dsi_core.sampling as sampling
from dsi_core.backends.simulated import SimulatedBackend
from dsi_core.coordinator import Config, Coordinator
from dsi_core.sampling import DecisionRule
from dsi_core.testing.exact import Enumerator, grid_size, target_distribution
from dsi_core.testing.toy import adversarial_drafter, random_table_model

PROMPT = [0]
SCHEDULES = [
    dict(draft_latency=Fraction(1, 3)),
    dict(draft_latency=Fraction(2)),
    dict(order="fifo"),
    dict(order="lifo"),
    dict(order="drafts_last"),
    dict(order="targets_last"),
    dict(order="random:7"),
    dict(order="lifo", cancellation="fails"),
    dict(draft_latency=Fraction(1, 2), cancellation="fails"),
]
SHAPES = [(1, 1), (1, 3), (2, 2), (3, 1), (2, 5)]  # (lookahead, servers)


def _program(target, drafter, n_new, algorithm, k, servers, schedule, rule_cls=DecisionRule):
    def run(noise):
        coord = Coordinator(Config(algorithm, k, servers, n_new), rule_cls("rejection", noise))
        SimulatedBackend(
            1,
            schedule.get("draft_latency", Fraction(1, 3)),
            order=schedule.get("order"),
            cancellation=schedule.get("cancellation", "instant"),
        ).run(coord, target, drafter, PROMPT)
        return tuple(coord.committed)

    return run


def _models(vocab, kind, seed=5):
    target = random_table_model(vocab, seed)
    if kind == "random":
        drafter = random_table_model(vocab, seed + 100)
    elif kind == "adversarial":
        drafter = adversarial_drafter(target)
    else:
        drafter = target
    return target, drafter


def _exact(target, drafter, n_new, algorithm, k, servers, schedule, rule_cls=DecisionRule):
    M = grid_size(target, drafter, PROMPT, n_new)
    prog = _program(target, drafter, n_new, algorithm, k, servers, schedule, rule_cls)
    return Enumerator(M).distribution(prog)


@pytest.mark.parametrize("algorithm", ["si", "dsi"])
@pytest.mark.parametrize("drafter_kind", ["random", "adversarial", "perfect"])
@pytest.mark.parametrize("vocab,n_new", [(2, 3), (3, 2), (3, 3), (4, 2)])
def test_exact_law_equals_target(vocab, n_new, drafter_kind, algorithm):
    target, drafter = _models(vocab, drafter_kind)
    want = target_distribution(target, PROMPT, n_new)
    for (k, servers), schedule in itertools.product(SHAPES, SCHEDULES):
        got = _exact(target, drafter, n_new, algorithm, k, servers, schedule)
        assert got == want, (k, servers, schedule)


def test_exact_law_vocab4_three_tokens():
    target, drafter = _models(4, "random", seed=9)
    want = target_distribution(target, PROMPT, 3)
    for schedule in (SCHEDULES[0], SCHEDULES[3]):
        assert _exact(target, drafter, 3, "dsi", 2, 3, schedule) == want


def test_exact_law_nonsi():
    target, _ = _models(3, "random")
    M = grid_size(target, None, PROMPT, 3)
    got = Enumerator(M).distribution(_program(target, None, 3, "nonsi", 1, 1, {}))
    assert got == target_distribution(target, PROMPT, 3)


# ----------------------------------------------------------------------------- mutants


class _LeqNoise:
    """Turns the acceptance test ``u < p/q`` into ``u <= p/q``."""

    def __init__(self, noise):
        self.noise = noise

    def uniform(self, pos, stream):
        u = self.noise.uniform(pos, stream)
        if stream != sampling.Stream.ACCEPT:
            return u

        class Leq:
            def __lt__(self, r):
                return u <= r

        return Leq()

    def gumbel(self, pos, size):
        return self.noise.gumbel(pos, size)


class LeqRule(DecisionRule):
    def __init__(self, mode, noise):
        super().__init__(mode, _LeqNoise(noise))


class WrongQRule(DecisionRule):
    """Verifies with a uniform q instead of the row the draft was sampled from."""

    def decide(self, pos, p, draft=None, q=None):
        if q is not None:
            q = tuple(Fraction(1, len(q)) for _ in q)
        return super().decide(pos, p, draft, q)


def _mutant_caught(rule_cls, monkeypatch=None):
    """True iff the broken rule changes the law in at least one small configuration."""
    for vocab, n_new, kind in [(2, 2, "random"), (3, 2, "random"), (2, 3, "adversarial")]:
        target, drafter = _models(vocab, kind)
        want = target_distribution(target, PROMPT, n_new)
        for algorithm in ("si", "dsi"):
            got = _exact(target, drafter, n_new, algorithm, 2, 2, SCHEDULES[0], rule_cls)
            if got != want:
                return True
    return False


def test_mutant_leq_is_caught():
    assert _mutant_caught(LeqRule)


def test_mutant_wrong_q_is_caught():
    assert _mutant_caught(WrongQRule)


def test_mutant_wrong_residual_is_caught(monkeypatch):
    orig = sampling.residual

    def bad_residual(p, q, draft):  # max(0, q - p) instead of max(0, p - q)
        if q is None:
            return orig(p, q, draft)
        return [max(Fraction(0), b - a) for a, b in zip(p, q, strict=True)]

    monkeypatch.setattr(sampling, "residual", bad_residual)
    assert _mutant_caught(DecisionRule)
