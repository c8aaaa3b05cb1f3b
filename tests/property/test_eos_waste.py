"""A drafted EOS ends the work: no draft and no target row past it (all algorithms, any k)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from dsi_core import Config, Coordinator, DecisionRule, KeyedNoise, check_trace
from dsi_core.backends.simulated import SimulatedBackend
from dsi_core.testing.toy import ToyModel

V = 7


def _model():
    # one-hot on (len(context) + 1) % V: the drafter is the target, every draft is accepted
    return ToyModel(V, lambda ctx: tuple(Fraction(int(j == (len(ctx) + 1) % V)) for j in range(V)))


@pytest.mark.parametrize("algorithm", ["dsi", "si"])
@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("eos_pos", [0, 1, 3, 4])
def test_no_draft_or_row_past_a_drafted_eos(algorithm, k, eos_pos):
    prompt = [0]
    eos = (len(prompt) + eos_pos + 1) % V  # the token of generated position eos_pos
    cfg = Config(algorithm, k, 64, 12, eos_token_id=eos)
    coord = Coordinator(cfg, DecisionRule("greedy", KeyedNoise(0)))
    SimulatedBackend(Fraction(1), Fraction(1, 10)).run(coord, _model(), _model(), prompt)
    assert len(coord.committed) == eos_pos + 1 and coord.committed[-1] == eos
    drafted = [e.pos for e in coord.trace if e.what == "draft_start"]
    rows_to = [e.pos for e in coord.trace if e.what == "task_start"]  # context length L
    assert max(drafted, default=-1) <= eos_pos, drafted  # nothing drafted past the EOS
    assert max(rows_to) <= eos_pos, rows_to  # no row past the EOS position is computed
    assert check_trace(coord.trace) == []


@pytest.mark.parametrize("mode", ["greedy", "coupled"])
@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("n", [1, 2, 5])
def test_si_never_drafts_the_last_position(mode, k, n):
    """No row judges the draft of position N - 1; SI (greedy/coupled) does not make it."""
    cfg = Config("si", k, 1, n, mode=mode)
    coord = Coordinator(cfg, DecisionRule(mode, KeyedNoise(0)))
    SimulatedBackend(Fraction(1), Fraction(1, 10)).run(coord, _model(), _model(), [0])
    assert len(coord.committed) == n
    drafted = [e.pos for e in coord.trace if e.what == "draft_start"]
    assert max(drafted, default=-1) <= n - 2, drafted
