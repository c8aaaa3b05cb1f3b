"""The worker every backend shares (``dsi_core.backends.worker``), driven directly.

Written for the generated mutants of worker.py (docs/mutation.md): placement, the preemptible
call, the compaction of logits rows (greedy fast path, position-keyed coupled noise), the
drafter's proposal checks and its greedy fast path, the aborted ack and the forward-time
counter. Fake models only (numpy or torch rows), so this runs in well under a second.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from dsi_core.backends.worker import (
    ServerWorker,
    compute_draft,
    compute_target,
    model_name,
    place,
)
from dsi_core.errors import DrafterError, InvalidDistributionError
from dsi_core.events import (
    DraftAborted,
    DraftDone,
    StartDraft,
    StartTarget,
    TargetAborted,
    TargetDone,
)
from dsi_core.models.base import Preempted, Proposal
from dsi_core.sampling import Decided, DecisionRule, KeyedNoise, argmax, to_probs

V = 50


def _rule(mode: str) -> DecisionRule:
    return DecisionRule(mode, KeyedNoise(7))


class _Placed:
    def __init__(self) -> None:
        self.moved: list[object] = []

    def to(self, device: object) -> None:
        self.moved.append(device)


class _LogitsTarget:
    """Rows of logits (torch) for positions ``start .. len(tokens)``; flat rows by default."""

    row_kind = "logits"
    vocab_size = V
    max_context = None
    name = "logits-target"

    def __init__(self, flat: bool = True) -> None:
        self.flat = flat

    def new_state(self) -> None:
        return None

    def rows(self, state, tokens, start):
        out = []
        for j in range(start, len(tokens) + 1):
            z = torch.zeros(V, dtype=torch.float32)
            if not self.flat:
                z[(3 * j) % V] = 5.0
            out.append(z)
        return out


class _PreemptibleTarget:
    """Probability rows; stops (raises Preempted) when ``should_stop()`` holds."""

    preemptible = True
    vocab_size = 4
    max_context = None

    def __init__(self, delay: float = 0.0) -> None:
        self.stops: list[object] = []
        self.delay = delay

    def new_state(self) -> None:
        return None

    def rows(self, state, tokens, start, should_stop=None):
        self.stops.append(should_stop)
        if self.delay:
            time.sleep(self.delay)
        if should_stop is not None and should_stop():
            raise Preempted
        return [[0.1, 0.2, 0.3, 0.4] for _ in range(start, len(tokens) + 1)]


class _Drafter:
    def __init__(self, prop, kind: str = "probs", vocab: int | None = None, name=None) -> None:
        self.prop = prop
        self.row_kind = kind
        self.vocab_size = vocab
        if name is not None:
            self.name = name

    def new_state(self) -> None:
        return None

    def propose(self, state, tokens):
        return self.prop


def _draft(model, rule=None, context=(1, 2), temperature=1.0):
    return compute_draft(
        model, None, [0], StartDraft(3, 1, tuple(context)), temperature, None, rule
    )


# ---------------------------------------------------------------------------------- placement


def test_place_sets_threads_and_device_only_when_asked():
    before = torch.get_num_threads()
    want = 1 if before != 1 else 2
    m = _Placed()
    try:
        place(m, None, None)
        assert m.moved == [] and torch.get_num_threads() == before
        place(m, "cpu", want)
        assert m.moved == ["cpu"] and torch.get_num_threads() == want
    finally:
        torch.set_num_threads(before)
    place(object(), "cpu", None)  # a model without .to() is left where it is


def test_model_name_is_the_name_or_the_class():
    assert model_name(_Drafter(Proposal(token=1), name="mine")) == "mine"
    assert model_name(_Drafter(Proposal(token=1))) == "_Drafter"
    with pytest.raises(DrafterError, match="drafter mine proposed"):
        _draft(_Drafter(Proposal(token=1.5), name="mine"))


# --------------------------------------------------------------------------------- target side


def test_preemptible_target_gets_should_stop_and_its_rows_come_back():
    m = _PreemptibleTarget()
    stop = lambda: False  # noqa: E731
    ev = compute_target(m, None, [0], StartTarget(5, 1, (1, 2), 1, "block"), 1.0, stop)
    assert m.stops == [stop]
    assert isinstance(ev, TargetDone) and ev.task_id == 5 and len(ev.rows) == 2
    assert [list(r) for r in ev.rows] == [[0.1, 0.2, 0.3, 0.4]] * 2


def test_logits_rows_without_a_rule_come_back_as_probabilities():
    m = _LogitsTarget(flat=False)
    ev = compute_target(m, None, [0], StartTarget(1, 1, (4, 5, 6), 1, "block"), 1.0)
    assert len(ev.rows) == 3
    for i, row in enumerate(ev.rows):
        assert isinstance(row, np.ndarray) and row.shape == (V,)
        assert row.sum() == pytest.approx(1.0) and argmax(row) == (3 * (2 + i)) % V


def test_logits_rows_with_a_greedy_rule_travel_as_tokens():
    m = _LogitsTarget(flat=False)
    act = StartTarget(1, 1, (4, 5, 6), 1, "block")  # rows at sequence lengths 2, 3, 4
    ev = compute_target(m, None, [0], act, 1.0, None, _rule("greedy"))
    assert ev.rows == tuple(Decided((3 * (2 + i)) % V, V) for i in range(3))


def test_coupled_rows_are_keyed_by_their_own_position():
    """Flat logits: the coupled token is the Gumbel argmax at the row's position, so a row
    decided with another position's noise gives (almost surely, V = 50) another token."""
    m = _LogitsTarget(flat=True)
    rule = _rule("coupled")
    lo, ctx = 2, (4, 5, 6, 7, 8)
    ev = compute_target(m, None, [0], StartTarget(1, 1, ctx, lo, "block"), 1.0, None, rule)
    flat = to_probs(torch.zeros(V), "logits", 1.0, "row")
    want = tuple(rule.compact(pos, flat) for pos in range(lo, len(ctx) + 1))
    assert ev.rows == want
    assert len({d.token for d in want}) > 1  # the noise differs by position (not vacuous)


# ---------------------------------------------------------------------------------- draft side


def test_drafter_token_must_be_an_integer_id():
    for bad in (1.5, True, "2", None):
        prop = Proposal(q=None, token=bad)
        with pytest.raises(DrafterError):
            _draft(_Drafter(prop))
    ev = _draft(_Drafter(Proposal(token=np.int64(2))))
    assert ev == DraftDone(3, None, 2) and type(ev.token) is int


def test_token_only_proposal_passes_through_in_every_mode():
    for mode in (None, "greedy", "coupled", "rejection"):
        rule = None if mode is None else _rule(mode)
        assert _draft(_Drafter(Proposal(token=7), vocab=V), rule) == DraftDone(3, None, 7)


@pytest.mark.parametrize("vocab", [None, V])
def test_greedy_logits_drafter_sends_only_its_token(vocab):
    z = torch.zeros(V)
    z[11] = 3.0
    ev = _draft(_Drafter(Proposal(q=z), "logits", vocab), _rule("greedy"))
    assert isinstance(ev, DraftDone) and ev == DraftDone(3, None, 11)


def test_greedy_drafter_with_its_own_token_keeps_token_and_row():
    z = torch.zeros(V)
    z[11] = 3.0  # the drafter chose 4 itself, not the argmax: nothing may override it
    ev = _draft(_Drafter(Proposal(q=z, token=4), "logits", V), _rule("greedy"))
    assert ev.token == 4 and ev.q is not None and len(ev.q) == V


def test_greedy_logits_drafter_of_the_wrong_vocabulary_is_refused():
    z = torch.zeros(V + 1)
    z[3] = 2.0
    with pytest.raises(DrafterError, match=f"has {V + 1} entries"):
        _draft(_Drafter(Proposal(q=z), "logits", V), _rule("greedy"))


def test_greedy_probs_drafter_row_is_checked_not_argmaxed():
    q = torch.tensor([0.5, 0.9, -0.4, 0.0], dtype=torch.float64)  # sums to 1, negative entry
    with pytest.raises(InvalidDistributionError):
        _draft(_Drafter(Proposal(q=q), "probs", 4), _rule("greedy"))


def test_coupled_logits_drafter_draws_with_the_noise_not_the_argmax():
    rule = _rule("coupled")
    z = torch.zeros(V)
    z[0] = 0.5  # a mild favourite: the Gumbel draw is not the argmax at most positions
    drafter = _Drafter(Proposal(q=z), "logits", V)
    flat = to_probs(z, "logits", 1.0, "q")
    toks = []
    for n in range(6):
        ctx = tuple(range(1, n + 1))
        ev = _draft(drafter, rule, ctx)
        assert ev == DraftDone(3, None, rule.draft_token(n, flat))
        toks.append(ev.token)
    assert any(t != 0 for t in toks)  # not vacuous: the argmax would give 0 every time


def test_probs_drafter_row_reduced_to_its_token_only_with_a_vocabulary():
    q = [0.1, 0.6, 0.3]
    assert _draft(_Drafter(Proposal(q=q), "probs", 3), _rule("greedy")) == DraftDone(3, None, 1)
    ev = _draft(_Drafter(Proposal(q=q), "probs", None), _rule("greedy"))
    assert ev.token is None and list(ev.q) == q  # any vocabulary: the row goes on
    ev = _draft(_Drafter(Proposal(q=q), "probs", 3), _rule("rejection"))
    assert ev.token is None and list(ev.q) == q  # rejection decides with the row


def test_proposal_with_neither_token_nor_row_is_refused():
    with pytest.raises(DrafterError, match="neither a token nor a row"):
        _draft(_Drafter(Proposal()))
    with pytest.raises(DrafterError, match="not a dsi_core.models.base.Proposal"):
        _draft(_Drafter((1, None)))


# ------------------------------------------------------------------------------- ServerWorker


def test_preempted_forward_is_acked_as_aborted():
    w = ServerWorker(_PreemptibleTarget(), [0], 1.0)
    flag = [False]

    def stop() -> bool:
        flag[0] = not flag[0]  # False at the handle's first look, True inside the forward
        return not flag[0]

    assert w.handle(StartTarget(9, 1, (1,), 1, "chain"), stop) == TargetAborted(9)
    assert w.handle(StartTarget(10, 1, (1,), 1, "chain"), lambda: True) == TargetAborted(10)
    d = ServerWorker(_Drafter(Proposal(token=1)), [0], 1.0)
    assert d.handle(StartDraft(4, 1, (1,)), lambda: True) == DraftAborted(4)


def test_forward_time_counts_the_model_calls_only():
    w = ServerWorker(_PreemptibleTarget(delay=0.002), [0], 1.0)
    assert w.forward_s == 0.0
    t0 = time.perf_counter()
    ev = w.handle(StartTarget(1, 1, (1, 2), 1, "block"), lambda: False)
    first = w.forward_s
    assert isinstance(ev, TargetDone)
    assert 0.002 <= first <= time.perf_counter() - t0
    w.handle(StartTarget(2, 1, (1, 2), 1, "block"), lambda: False)
    assert 0.004 <= w.forward_s <= time.perf_counter() - t0 and w.forward_s > first
    assert w.last_context == (1, 2)
