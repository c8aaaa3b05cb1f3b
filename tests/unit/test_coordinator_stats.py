"""The coordinator's counters (``Stats``) against counts kept independently by the test's driver.

Written for the generated mutants of ``scripts/mutation.py --generated`` (docs/mutation.md): a
counter that starts at 1, counts down, counts twice or is never bumped changes no token, so no
protocol test saw it. Here a seeded random driver delivers results in random order, lets some
cancellations fail, and counts actions and events itself; every counter must equal its count.
Also: ``busy`` while anything is unacknowledged, ids unique and positive, SI's drafter idle while
its verification runs, and the range check of a drafter's own token.
"""

from __future__ import annotations

import random

import pytest

from dsi_core.coordinator import (
    Cancel,
    Config,
    Coordinator,
    DraftAborted,
    DraftDone,
    StartDraft,
    StartTarget,
    Stats,
    TargetAborted,
    TargetDone,
)
from dsi_core.errors import DrafterError
from dsi_core.sampling import DecisionRule, KeyedNoise

V = 4
P_REJECTION = (0.5, 0.25, 0.25, 0.0)  # the target row of every position in rejection mode


def y(pos: int) -> int:
    """The greedy target's token at ``pos``."""
    return (3 * pos + 1) % V


def onehot(j: int) -> tuple[float, ...]:
    return tuple(1.0 if i == j else 0.0 for i in range(V))


def drive(cfg: Config, seed: int) -> tuple[Coordinator, dict[str, int]]:
    """Run ``cfg`` to the end under a random schedule; returns the coordinator and the counts."""
    rng = random.Random(seed)
    coord = Coordinator(cfg, DecisionRule(cfg.mode, KeyedNoise(seed)))
    n = {
        "StartDraft": 0,
        "StartTarget": 0,
        "chain": 0,
        "block": 0,
        "Cancel draft": 0,
        "Cancel target": 0,
        "DraftDone": 0,
        "TargetDone": 0,
        "stale": 0,
        "max_busy": 0,
    }
    jobs: dict[tuple[str, int], object] = {}  # unacked work -> its action
    cancelled: set[tuple[str, int]] = set()
    ids: set[int] = set()

    def apply(actions: list) -> None:
        before = [k for k in jobs if k[0] == "target"]  # tasks started by earlier steps
        for a in actions:
            if isinstance(a, StartDraft | StartTarget):
                # ids are unique across drafts and tasks, and positive: -1 means "no id" in
                # the trace, -2 is the workers' stop-everything flag (worker.STOP_ALL)
                i = a.request_id if isinstance(a, StartDraft) else a.task_id
                assert i > 0 and i not in ids
                ids.add(i)
            if isinstance(a, StartDraft):
                n["StartDraft"] += 1
                if cfg.algorithm == "si":
                    # SI's drafter idles while its verification runs; rejection mode's last
                    # draft may start beside the task, but only in the step that starts it
                    live = [k for k in before if k in jobs and k not in cancelled]
                    assert not live, "SI drafts while an earlier verification runs"
                jobs["draft", a.request_id] = a
            elif isinstance(a, StartTarget):
                n["StartTarget"] += 1
                n[a.kind] += 1
                jobs["target", a.task_id] = a
            else:
                assert isinstance(a, Cancel)
                n[f"Cancel {a.what}"] += 1
                cancelled.add((a.what, a.id))
        n["max_busy"] = max(n["max_busy"], sum(w == "target" for w, _ in jobs))
        if coord.done:  # the run is over: everything still in flight has been cancelled
            assert all(k in cancelled for k in jobs)
        assert coord.busy == bool(jobs)  # busy: some action is still unacknowledged

    apply(coord.start())
    steps = 0
    while jobs:
        steps += 1
        assert steps < 10_000
        key = rng.choice(sorted(jobs))
        action = jobs.pop(key)
        aborted = key in cancelled and rng.random() < 0.5  # otherwise the cancel failed
        if aborted:
            ev = DraftAborted(key[1]) if key[0] == "draft" else TargetAborted(key[1])
        elif isinstance(action, StartDraft):
            pos = len(action.context)
            tok = y(pos) if rng.random() < 0.7 else rng.randrange(V)
            if cfg.mode == "rejection":
                tok = rng.randrange(V)
            ev = DraftDone(action.request_id, token=tok)
        else:
            assert isinstance(action, StartTarget)
            rows = []
            for pos in range(action.lo, len(action.context) + 1):
                rows.append(P_REJECTION if cfg.mode == "rejection" else onehot(y(pos)))
            ev = TargetDone(action.task_id, tuple(rows))
        if not aborted:
            n["DraftDone" if key[0] == "draft" else "TargetDone"] += 1
            n["stale"] += key in cancelled
        apply(coord.on_event(ev))
    return coord, n


CONFIGS = [
    Config(alg, k, s, m, eos_token_id=eos, mode=mode)
    for alg, k, s, m, eos, mode in [
        ("dsi", 1, 1, 6, None, "greedy"),
        ("dsi", 2, 3, 8, None, "greedy"),
        ("dsi", 3, 2, 7, 2, "greedy"),
        ("dsi", 2, 2, 6, None, "rejection"),
        ("si", 2, 1, 8, None, "greedy"),
        ("si", 3, 1, 7, 1, "rejection"),
        ("si", 2, 1, 2, None, "rejection"),
        ("si", 1, 1, 5, None, "coupled"),
        ("nonsi", 1, 2, 5, None, "greedy"),
    ]
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.algorithm}-{c.mode}-k{c.lookahead}")
def test_stats_equal_the_drivers_counts(cfg):
    for seed in range(12):
        coord, n = drive(cfg, seed)
        st = coord.stats
        assert coord.done and not coord.busy
        first = coord.trace[0]  # a line without an id or a position says -1 for both
        assert (first.what, first.id, first.pos) == ("config", -1, -1)
        commits = [e for e in coord.trace if e.what == "commit"]
        assert len(commits) == len(coord.committed)
        judged = [e for e in commits if e.data[1] != -1]
        accepted = sum(e.data[0] == e.data[1] for e in judged)
        no_draft = len(commits) - len(judged)
        got = {
            "drafts_started": st.drafts_started,
            "drafts_completed": st.drafts_completed,
            "drafts_accepted": st.drafts_accepted,
            "drafts_rejected": st.drafts_rejected,
            "draft_preempted": st.draft_preempted,
            "target_started": st.target_started,
            "target_completed": st.target_completed,
            "target_preempted": st.target_preempted,
            "stale_results_dropped": st.stale_results_dropped,
            "chain_tasks": st.chain_tasks,
            "block_tasks": st.block_tasks,
            "segments": st.segments,
            "max_busy_servers": st.max_busy_servers,
        }
        speculative = cfg.algorithm != "nonsi"
        want = {
            "drafts_started": n["StartDraft"],
            "drafts_completed": n["DraftDone"],
            "drafts_accepted": accepted,
            "drafts_rejected": len(judged) - accepted,
            "draft_preempted": n["Cancel draft"],
            "target_started": n["StartTarget"],
            "target_completed": n["TargetDone"],
            "target_preempted": n["Cancel target"],
            "stale_results_dropped": n["stale"],
            "chain_tasks": n["chain"],
            "block_tasks": n["block"],
            # one at the start, one after each rejection and each speculative draft-less commit
            "segments": 1 + (len(judged) - accepted) + (no_draft if speculative else 0),
            "max_busy_servers": n["max_busy"],
        }
        assert got == want, f"seed {seed}"
        assert coord.epoch == st.segments
        assert st.max_busy_servers <= cfg.effective_servers
        assert 0 <= st.task_waits <= st.target_started


def test_counters_start_at_zero_and_rate():
    st = Stats()
    assert all(v == 0 for k, v in st.as_dict().items())
    assert st.acceptance_rate == 0.0
    st.drafts_accepted, st.drafts_rejected = 3, 1
    assert st.acceptance_rate == 0.75
    d = st.as_dict()
    assert d["acceptance_rate"] == 0.75 and d["drafts_accepted"] == 3 and d["drafts_rejected"] == 1
    coord = Coordinator(Config("dsi", 2, 2, 4), DecisionRule("greedy", KeyedNoise(0)))
    assert coord.stats == Stats() and coord.epoch == 0 and not coord.busy


def test_task_waits_counts_each_episode_once():
    """DSI, k = 1, one server: a due block waits for the chain; an episode ends at a start."""
    coord = Coordinator(Config("dsi", 1, 1, 4), DecisionRule("greedy", KeyedNoise(0)))
    acts = coord.start()
    (chain,) = [a for a in acts if isinstance(a, StartTarget)]
    (d0,) = [a for a in acts if isinstance(a, StartDraft)]
    assert coord.stats.task_waits == 0
    acts = coord.on_event(DraftDone(d0.request_id, token=y(0)))  # block due, the server busy
    assert coord.stats.task_waits == 1
    (d1,) = [a for a in acts if isinstance(a, StartDraft)]
    coord.on_event(DraftDone(d1.request_id, token=y(1)))  # still the same episode
    assert coord.stats.task_waits == 1
    # position 0 commits; the chain task for position 1 takes the server (a start ends the
    # episode) and the block, still due, waits again: a second episode
    acts = coord.on_event(TargetDone(chain.task_id, (onehot(y(0)),)))
    (nxt,) = [a for a in acts if isinstance(a, StartTarget)]
    assert coord.committed == [y(0)] and nxt.kind == "chain" and nxt.lo == 1
    assert coord.stats.task_waits == 2


def test_drafter_token_outside_q_is_a_drafter_error():
    for bad in (-1, V):  # both ends of 0 <= token < len(q)
        coord = Coordinator(Config("dsi", 2, 2, 4), DecisionRule("greedy", KeyedNoise(0)))
        (d,) = [a for a in coord.start() if isinstance(a, StartDraft)]
        with pytest.raises(DrafterError, match="outside its row q"):
            coord.on_event(DraftDone(d.request_id, q=(0.25,) * V, token=bad))
    coord = Coordinator(Config("dsi", 2, 2, 4), DecisionRule("greedy", KeyedNoise(0)))
    (d,) = [a for a in coord.start() if isinstance(a, StartDraft)]
    with pytest.raises(DrafterError, match="probability 0"):  # its own row excludes it
        coord.on_event(DraftDone(d.request_id, q=(0.5, 0.0, 0.5, 0.0), token=1))
    for ok in (0, V - 1):  # ... and both ends inside it are fine
        coord = Coordinator(Config("dsi", 2, 2, 4), DecisionRule("greedy", KeyedNoise(0)))
        (d,) = [a for a in coord.start() if isinstance(a, StartDraft)]
        (d2,) = [a for a in coord.on_event(DraftDone(d.request_id, q=(0.25,) * V, token=ok))]
        assert d2.context == (ok,)
