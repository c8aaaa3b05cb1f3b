"""The trace checker: clean runs pass, and each invariant catches a tampered trace or a mutant."""

from __future__ import annotations

import dataclasses
import itertools
import json
from fractions import Fraction

import pytest

from dsi_core import Coordinator, generate
from dsi_core.checker import TraceCheckError, assert_trace_ok, check_trace, load_trace
from dsi_core.cli import main
from dsi_core.testing.replay import replay_pattern
from dsi_core.testing.toy import random_table_model

ORDERS = [None, "fifo", "lifo", "drafts_last", "targets_last", "random:7"]


def _run(algorithm="dsi", cancellation="fails", order=None, pattern="1011001", k=2, s=3):
    a = [int(x) for x in pattern]
    _, coord = replay_pattern(
        algorithm, a, k, s, Fraction(1), Fraction(1, 3), cancellation=cancellation, order=order
    )
    return coord.trace


@pytest.mark.parametrize(
    "algorithm,cancellation,order",
    list(itertools.product(["dsi", "si", "nonsi"], ["instant", "fails"], ORDERS)),
)
def test_clean_replays_pass(algorithm, cancellation, order):
    for pattern, s in [("1011001", 3), ("0000", 1), ("1111111", 2)]:
        trace = _run(algorithm, cancellation, order, pattern, s=s)
        assert check_trace(trace) == [], (pattern, s)


@pytest.mark.parametrize("mode", ["greedy", "rejection", "coupled"])
def test_clean_sampling_runs_with_eos_pass(mode):
    target, drafter = random_table_model(5, 31), random_table_model(5, 32)
    target.eos_token_id = 2
    for algorithm, k, s in [("dsi", 1, 2), ("dsi", 3, 4), ("si", 2, 1), ("nonsi", 1, 1)]:
        out = generate(
            [1, 2],
            target=target,
            drafter=drafter if algorithm != "nonsi" else None,
            algorithm=algorithm,
            mode=mode,
            lookahead=k,
            servers=s,
            max_new_tokens=24,
            backend="simulated",
        )
        assert check_trace(out.trace) == []
        assert check_trace(out.to_dict()["trace"]) == []  # the JSON form too


def _tamper(trace, index, **changes):
    out = list(trace)
    out[index] = dataclasses.replace(out[index], **changes)
    return out


def _invariants(trace):
    return {v.invariant for v in check_trace(trace)}


def _first(trace, what, pred=lambda e: True):
    return next(i for i, e in enumerate(trace) if e.what == what and pred(e))


def test_dropped_or_repeated_commit_is_a_prefix_violation():
    trace = _run()
    i = _first(trace, "commit", lambda e: e.pos == 2)
    assert "prefix" in _invariants(trace[:i] + trace[i + 1 :])
    assert "prefix" in _invariants(trace[: i + 1] + [trace[i]] + trace[i + 1 :])


def test_fewer_servers_in_the_config_is_a_server_violation():
    trace = _run(s=3)
    detail = trace[0].detail.replace("servers=3", "servers=1")
    assert "servers" in _invariants(_tamper(trace, 0, detail=detail))


def test_commit_from_a_preempted_task_is_caught():
    trace = _run(cancellation="fails")
    pre = {e.id for e in trace if e.what == "preempt" and e.detail != "draft"}
    assert pre, "the pattern must preempt some task"
    i = _first(trace, "commit", lambda e: e.pos == 5)
    assert "stale" in _invariants(_tamper(trace, i, id=min(pre)))


def test_stale_result_reported_as_done_is_caught():
    trace = _run(cancellation="fails")
    i = next(i for i, e in enumerate(trace) if e.what == "stale" and e.detail in ("chain", "block"))
    assert "stale" in _invariants(_tamper(trace, i, what="task_done"))


def test_task_input_that_is_not_the_prefix_is_caught():
    trace = _run()
    i = _first(trace, "task_start", lambda e: e.data[1] < e.pos)  # a block with drafts
    lo, base, fp = trace[i].data
    assert "prefix rows" in _invariants(_tamper(trace, i, data=(lo, base, fp ^ 1)))


def test_commit_of_a_row_from_an_old_epoch_is_caught():
    trace = _run(pattern="0000", s=1)
    # the commit at 2 names the task that decided position 1 (a previous segment)
    i1 = _first(trace, "commit", lambda e: e.pos == 1)
    i2 = _first(trace, "commit", lambda e: e.pos == 2)
    found = _invariants(_tamper(trace, i2, id=trace[i1].id))
    assert found & {"epoch", "prefix rows"}


def test_accepted_draft_mismatch_needs_a_reject():
    trace = _run()
    i = _first(trace, "commit", lambda e: e.data[1] >= 0 and e.data[0] == e.data[1])
    tok, _ = trace[i].data
    assert "drafts" in _invariants(_tamper(trace, i, data=(tok, tok + 1)))


def test_rejection_mode_commit_without_draft_is_caught():
    target, drafter = random_table_model(4, 1), random_table_model(4, 2)
    out = generate(
        [1],
        target=target,
        drafter=drafter,
        mode="rejection",
        max_new_tokens=8,
        backend="simulated",
    )
    trace = out.trace
    i = _first(trace, "commit")
    tok, _ = trace[i].data
    assert "drafts" in _invariants(_tamper(trace, i, data=(tok, -1)))


def test_cancelled_task_counted_as_cover_is_caught(monkeypatch):
    """The mutant of the issue: a cancelled, unacknowledged task 'covers' row n."""

    def mutant(self, pos):
        if pos in self._rows:
            return True
        return any(t.lo <= pos <= t.context_len for t in self._tasks.values())

    monkeypatch.setattr(Coordinator, "_row_covered", mutant)
    trace = _run(cancellation="fails", pattern="00", k=1, s=64)
    assert "chain" in _invariants(trace)
    with pytest.raises(TraceCheckError, match="chain"):
        assert_trace_ok(trace)


def test_cli_check_exit_codes(tmp_path, capsys):
    out = generate(
        [1, 2],
        target=random_table_model(5, 1),
        drafter=random_table_model(5, 2),
        backend="simulated",
        max_new_tokens=10,
    )
    good = tmp_path / "good.json"
    good.write_text(json.dumps(out.to_dict()))
    assert main(["check", str(good)]) == 0
    assert load_trace(str(good)) == out.to_dict()["trace"]
    bad = tmp_path / "bad.json"
    d = out.to_dict()
    d["trace"] = [e for e in d["trace"] if not (e["what"] == "commit" and e["pos"] == 3)]
    bad.write_text(json.dumps(d))
    assert main(["check", str(bad)]) == 1
    assert "[prefix]" in capsys.readouterr().out
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    assert main(["check", str(junk)]) == 2
    assert main(["check", str(tmp_path / "missing.json")]) == 2


def test_useless_task_left_running_is_caught(monkeypatch):
    """A block overtakes the chain (forced order) and commits past it: the chain task's rows
    are all decided, so the coordinator preempts it; a coordinator that does not is caught."""
    trace = _run("dsi", "instant", "random:19", "11111", k=2, s=64)
    assert check_trace(trace) == []
    assert any(e.what == "preempt" and e.detail == "chain" for e in trace)
    monkeypatch.setattr(Coordinator, "_drop_useless", lambda self, actions: None)
    assert "useless" in _invariants(_run("dsi", "instant", "random:19", "11111", k=2, s=64))


def test_context_fingerprint_is_crc32_of_int64_little_endian():
    """The trace's ``task_start`` fingerprint is a format other implementations write too (the
    trace format is in dsi_core/checker.py): ``zlib.crc32`` of the context as int64
    little-endian, 0 for the empty context."""
    import struct
    import zlib

    from dsi_core.coordinator import fingerprint

    for ctx in [(), (0,), (1, 2, 3), (49_151, 7, 2**40), tuple(range(300))]:
        want = zlib.crc32(struct.pack(f"<{len(ctx)}q", *ctx))
        assert fingerprint(ctx) == want
    assert fingerprint(()) == 0 and fingerprint((1,)) != fingerprint((1, 0))
