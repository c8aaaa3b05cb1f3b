"""Directed tests of the coordinator's protocol, driven event by event (no backend)."""

from __future__ import annotations

import pytest

from dsi_core.coordinator import (
    Cancel,
    Config,
    Coordinator,
    DraftAborted,
    DraftDone,
    StartDraft,
    StartTarget,
    TargetAborted,
    TargetDone,
)
from dsi_core.errors import BackendError, InvalidInputError
from dsi_core.sampling import DecisionRule, KeyedNoise

V = 4


def onehot(j: int) -> tuple:
    return tuple(1.0 if i == j else 0.0 for i in range(V))


def make(algorithm="dsi", k=2, servers=3, n=8, mode="greedy"):
    return Coordinator(Config(algorithm, k, servers, n), DecisionRule(mode, KeyedNoise(0)))


def of(actions, cls):
    return [a for a in actions if isinstance(a, cls)]


def test_dsi_starts_chain_task_and_drafter():
    c = make()
    acts = c.start()
    (d,) = of(acts, StartDraft)
    (t,) = of(acts, StartTarget)
    assert d.context == () and t.context == () and t.lo == 0 and t.kind == "chain"


def test_block_every_k_drafts_and_bonus_row():
    c = make(k=2)
    acts = c.start()
    d1 = of(acts, StartDraft)[0]
    acts = c.on_event(DraftDone(d1.request_id, token=3))
    d2 = of(acts, StartDraft)[0]
    assert d2.context == (3,) and not of(acts, StartTarget)
    acts = c.on_event(DraftDone(d2.request_id, token=1))
    (blk,) = of(acts, StartTarget)
    # input ends at the newest draft; rows 1..2: row 2 is the bonus position
    assert blk.kind == "block" and blk.context == (3, 1) and blk.lo == 1


def test_rejection_preempts_everything_and_drops_stale_results():
    c = make(k=1, servers=4)
    acts = c.start()
    chain = of(acts, StartTarget)[0]
    d1 = of(acts, StartDraft)[0]
    acts = c.on_event(DraftDone(d1.request_id, token=3))  # draft for position 0
    blk = of(acts, StartTarget)[0]
    d2 = of(acts, StartDraft)[0]
    # target says position 0 is token 2: the draft 3 is rejected
    acts = c.on_event(TargetDone(chain.task_id, (onehot(2),)))
    assert c.committed == [2]
    cancels = {(a.what, a.id) for a in of(acts, Cancel)}
    assert ("target", blk.task_id) in cancels and ("draft", d2.request_id) in cancels
    assert c.epoch == 2
    # the cancelled work still delivers (cancellation failed): both must be dropped
    acts = c.on_event(DraftDone(d2.request_id, token=0))
    acts += c.on_event(TargetDone(blk.task_id, (onehot(0),)))
    assert c.committed == [2]
    assert c.stats.stale_results_dropped == 2
    # a fresh draft is requested on the new committed prefix
    new_drafts = of(acts, StartDraft)
    assert new_drafts and new_drafts[-1].context == (2,)


def test_drafter_behind_restarts_on_committed_prefix():
    c = make(k=3)
    acts = c.start()
    chain = of(acts, StartTarget)[0]
    d1 = of(acts, StartDraft)[0]
    acts = c.on_event(TargetDone(chain.task_id, (onehot(1),)))  # decided before the draft
    assert c.committed == [1]
    assert Cancel("draft", d1.request_id) in acts
    acts = c.on_event(DraftAborted(d1.request_id))
    (d2,) = of(acts, StartDraft)
    assert d2.context == (1,)


def test_server_limit_counts_unacked_preempted_tasks():
    c = make(k=1, servers=2)
    acts = c.start()
    chain = of(acts, StartTarget)[0]
    d = of(acts, StartDraft)[0]
    acts = c.on_event(DraftDone(d.request_id, token=2))
    assert len(of(acts, StartTarget)) == 1  # second server now busy
    d = of(acts, StartDraft)[0]
    acts = c.on_event(DraftDone(d.request_id, token=2))
    assert not of(acts, StartTarget)  # both servers busy: the block waits
    assert c.stats.task_waits >= 1
    acts = c.on_event(TargetDone(chain.task_id, (onehot(2),)))  # accept, frees a server
    assert of(acts, StartTarget)


def test_si_waits_for_verification_and_commits_bonus():
    c = make("si", k=2)
    acts = c.start()
    assert not of(acts, StartTarget)
    d = of(acts, StartDraft)[0]
    acts = c.on_event(DraftDone(d.request_id, token=1))
    d = of(acts, StartDraft)[0]
    acts = c.on_event(DraftDone(d.request_id, token=2))
    (t,) = of(acts, StartTarget)
    assert not of(acts, StartDraft)  # SI's drafter waits
    assert t.context == (1, 2) and t.lo == 0
    c.on_event(TargetDone(t.task_id, (onehot(1), onehot(2), onehot(3))))
    assert c.committed == [1, 2, 3]  # two accepted drafts plus the bonus token


def test_nonsi_never_drafts():
    c = make("nonsi", n=3)
    acts = c.start()
    for _ in range(3):
        assert not of(acts, StartDraft)
        (t,) = of(acts, StartTarget)
        acts = c.on_event(TargetDone(t.task_id, (onehot(3),)))
    assert c.done and c.committed == [3, 3, 3]


def test_rejection_mode_waits_for_the_draft():
    c = make(mode="rejection", k=4)
    acts = c.start()
    chain = of(acts, StartTarget)[0]
    d = of(acts, StartDraft)[0]
    c.on_event(TargetDone(chain.task_id, (onehot(1),)))
    assert c.committed == []  # row known, draft not yet: rejection mode waits
    c.on_event(DraftDone(d.request_id, token=1, q=onehot(1)))
    assert c.committed == [1]


def test_protocol_errors():
    c = make()
    c.start()
    with pytest.raises(BackendError):
        c.on_event(TargetDone(999, ()))
    with pytest.raises(BackendError):
        c.on_event("nonsense")
    c2 = make()
    acts = c2.start()
    t = of(acts, StartTarget)[0]
    with pytest.raises(BackendError):
        c2.on_event(TargetDone(t.task_id, (onehot(0), onehot(0))))  # wrong number of rows
    c3 = make()
    acts = c3.start()
    t = of(acts, StartTarget)[0]
    c3.on_event(TargetAborted(t.task_id))
    with pytest.raises(BackendError):
        c3.on_event(TargetAborted(t.task_id))  # acked twice
    with pytest.raises(RuntimeError):
        c3.start()


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(lookahead=0),
        dict(servers=0),
        dict(max_new_tokens=0),
        dict(max_new_tokens=10**9),
        dict(algorithm="fast"),
        dict(lookahead=1.5),
        dict(servers=True),
    ],
)
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(InvalidInputError):
        Config(**kwargs)
