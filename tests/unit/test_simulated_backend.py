"""The simulated backend's own contract: its completion orders, defaults, clock and checks.

The coordinator's tests run on this backend and the latency-model differential tests check its
timing; these pin what those leave open (found by the generated mutants of ``simulated.py``,
docs/mutation.md): which job each named order picks, the default latencies, the virtual clock
under a forced order, the in-flight counts, and the bad arguments it refuses.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from dsi_core.backends.simulated import (
    ORDERS,
    Job,
    SimulatedBackend,
    check_latency,
    random_order,
)
from dsi_core.coordinator import Config, Coordinator
from dsi_core.errors import BackendError, InvalidInputError
from dsi_core.sampling import DecisionRule, KeyedNoise
from dsi_core.testing.toy import random_table_model


def _jobs(kinds: str) -> list[Job]:
    """Jobs in start order from a string such as ``"dtd"`` (d = draft, t = target)."""
    return [Job("draft" if c == "d" else "target", i, None, 0, i) for i, c in enumerate(kinds)]


@pytest.mark.parametrize(
    "kinds, want",
    [
        ("dtd", 1),  # the newest target job
        ("tdtd", 2),
        ("dt", 1),
        ("tdd", 0),
        ("dtdd", 1),
        ("ttd", 1),
        ("ddt", 2),
        ("dd", 0),  # no target: the oldest
        ("t", 0),
    ],
)
def test_drafts_last_picks_the_newest_target_job(kinds, want):
    assert ORDERS["drafts_last"](_jobs(kinds)) == want


@pytest.mark.parametrize(
    "kinds, want",
    [
        ("tdt", 1),  # the oldest draft
        ("ttd", 2),
        ("dtd", 0),
        ("td", 1),
        ("tt", 0),  # no draft: the oldest
        ("d", 0),
    ],
)
def test_targets_last_picks_the_oldest_draft(kinds, want):
    assert ORDERS["targets_last"](_jobs(kinds)) == want


def test_fifo_lifo_and_random_orders():
    jobs = _jobs("tdt")
    assert ORDERS["fifo"](jobs) == 0
    assert ORDERS["lifo"](jobs) == 2
    a, b = random_order(3), random_order(3)
    picks = [a(_jobs("tdtdt")) for _ in range(50)]
    assert picks == [b(_jobs("tdtdt")) for _ in range(50)]  # seeded: the same sequence
    assert set(picks) == {0, 1, 2, 3, 4}  # and it reaches every job


def _coord(algorithm="dsi", k=2, servers=2, n=6):
    return Coordinator(Config(algorithm, k, servers, n), DecisionRule("greedy", KeyedNoise(0)))


def _models():
    return random_table_model(5, seed=1, exact=False), random_table_model(5, seed=2, exact=False)


def test_default_latencies_one_per_target_task_a_tenth_per_draft():
    target, drafter = _models()
    coord = _coord("nonsi", n=6)
    assert SimulatedBackend().run(coord, target, None, [0]) == 6  # six tasks of 1, in a chain
    coord = _coord("si", k=1, servers=1, n=4)
    SimulatedBackend().run(coord, target, drafter, [0])
    first = next(e for e in coord.trace if e.what == "draft_done")
    assert first.time == Fraction(1, 10)


def test_forced_order_clock_counts_steps_and_wall_time_is_the_end():
    target, drafter = _models()
    coord = _coord()
    backend = SimulatedBackend(order="fifo")
    end = backend.run(coord, target, drafter, [0])
    done = [e.time for e in coord.trace if e.what in ("draft_done", "task_done")]
    assert done == sorted(done) and all(t == int(t) and t >= 1 for t in done)
    assert end == coord.trace[-1].time == backend.now
    assert coord.stats.wall_time == float(end)


def test_in_flight_counts_are_the_most_jobs_running_at_once():
    target, drafter = _models()
    coord = _coord("dsi", k=1, servers=3, n=8)
    b = SimulatedBackend(target_latency=Fraction(1), draft_latency=Fraction(1, 10))
    b.run(coord, target, drafter, [0])
    assert b.max_in_flight["draft"] == 1
    assert b.max_in_flight["target"] == coord.stats.max_busy_servers == 3


@pytest.mark.parametrize("bad", ["never", -1, Fraction(-1, 2), True, None, "0.5"])
def test_bad_cancellation_is_refused(bad):
    with pytest.raises(InvalidInputError, match="cancellation"):
        SimulatedBackend(cancellation=bad)


@pytest.mark.parametrize("good", ["instant", "fails", 0, 2, 0.5, Fraction(1, 3)])
def test_good_cancellation_is_kept(good):
    assert SimulatedBackend(cancellation=good).cancellation == good


def test_unknown_order_is_refused_and_a_chooser_out_of_range_is_an_error():
    with pytest.raises(InvalidInputError, match="order must be None, a callable"):
        SimulatedBackend(order="newest")
    target, drafter = _models()
    for chooser in (lambda jobs: -1, lambda jobs: len(jobs), lambda jobs: 99):
        with pytest.raises(BackendError, match="order chose"):
            SimulatedBackend(order=chooser).run(_coord(), target, drafter, [0])


def test_max_steps_bounds_a_run():
    target, drafter = _models()
    with pytest.raises(BackendError, match="max_steps"):
        SimulatedBackend(max_steps=3).run(_coord(), target, drafter, [0])
    SimulatedBackend(max_steps=10_000).run(_coord(), target, drafter, [0])  # enough: no error


def test_a_fresh_backend_reads_zero_and_a_run_without_drafts_counts_none():
    target, _ = _models()
    b = SimulatedBackend()
    assert b.now == 0
    b.run(_coord("nonsi", n=3), target, None, [0])
    assert b.max_in_flight == {"draft": 0, "target": 1}


def test_a_failed_cancellation_marks_the_job_cancelled_when_it_completes():
    """Under ``cancellation="fails"`` a preempted job still completes; ``complete`` sees it
    marked ``cancelled`` (the hook the poisoning tests rely on), and no other job is marked."""
    target, drafter = _models()
    seen: dict[tuple[str, int], bool] = {}

    class Recording(SimulatedBackend):
        def complete(self, job, model, state, prompt, temperature):
            seen[(job.kind, job.id)] = job.cancelled
            return super().complete(job, model, state, prompt, temperature)

    coord = _coord("dsi", k=1, servers=3, n=12)
    Recording(Fraction(1), Fraction(1, 3), cancellation="fails").run(coord, target, drafter, [0])
    kinds = {"draft": "draft", "chain": "target", "block": "target"}
    preempted = {(kinds[e.detail], e.id) for e in coord.trace if e.what == "preempt"}
    assert preempted, "the run preempted nothing: the check would be vacuous"
    assert {key for key, cancelled in seen.items() if cancelled} == preempted & set(seen)
    assert preempted & set(seen)  # some preempted job ran on to completion


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(target_latency=-1), "target_latency"),
        (dict(draft_latency=float("nan")), "draft_latency"),
        (dict(draft_latency=True), "draft_latency"),
        (dict(target_latency="1"), "target_latency"),
        (dict(order=5), "order"),
        (dict(order="random:x"), "order"),
        (dict(order="random:1:2"), "order"),
        (dict(order="random:-1"), "order"),
    ],
)
def test_bad_latency_or_order_is_a_typed_error(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        SimulatedBackend(**kwargs)


def test_zero_and_callable_latencies_are_accepted():
    target, drafter = _models()
    b = SimulatedBackend(target_latency=lambda a: Fraction(1), draft_latency=0)
    assert b.run(_coord("nonsi", n=2), target, None, [0]) == 2
    assert SimulatedBackend(order="random:12").order is not None


def test_max_steps_is_the_number_of_completions_allowed():
    target, _ = _models()
    SimulatedBackend(max_steps=5).run(_coord("nonsi", n=5), target, None, [0])  # 5 tasks: 5 steps
    with pytest.raises(BackendError, match="max_steps"):
        SimulatedBackend(max_steps=4).run(_coord("nonsi", n=5), target, None, [0])


def test_forced_order_first_completion_is_step_one():
    target, drafter = _models()
    coord = _coord()
    SimulatedBackend(order="lifo").run(coord, target, drafter, [0])
    done = [e.time for e in coord.trace if e.what in ("draft_done", "task_done", "stale")]
    assert min(done) == 1


@pytest.mark.parametrize("d", [Fraction(1, 2), Fraction(1, 3), Fraction(2, 3)])
def test_a_delayed_cancellation_frees_the_server_at_the_earlier_of_delay_and_finish(d):
    """Each preempted target task (latency 1) ends at ``min(cancel + d, finish)``: acked as
    aborted if the delay ends first, delivering its stale result if it finishes first *or at
    the same instant* (the tie goes to the result)."""
    target, drafter = _models()
    coord = _coord("dsi", k=1, servers=3, n=16)
    SimulatedBackend(Fraction(1), Fraction(1, 6), cancellation=d).run(coord, target, drafter, [0])
    start = {e.id: e.time for e in coord.trace if e.what == "task_start"}
    cancel = {e.id: e.time for e in coord.trace if e.what == "preempt" and e.id in start}
    end = {e.id: (e.what, e.time) for e in coord.trace if e.what in ("task_aborted", "stale")}
    ties = 0
    for tid, t_cancel in cancel.items():
        if tid not in end:
            continue  # the run ended first
        finish, freed = start[tid] + 1, t_cancel + d
        what, when = end[tid]
        assert when == min(finish, freed), (tid, what, when)
        assert what == ("task_aborted" if freed < finish else "stale"), (tid, what)
        ties += freed == finish
    assert len(end) >= 3, "too few preempted tasks ended: the check would be vacuous"
    assert ties, "no task finished exactly when its delay ended: the tie is untested"


def test_generate_refuses_a_zero_latency_the_backend_accepts():
    check_latency(0, "draft_latency")  # the backend: a free drafter is a model point
    check_latency(Fraction(0), "draft_latency")
    for zero in (0, 0.0, Fraction(0)):
        with pytest.raises(InvalidInputError, match="> 0"):
            check_latency(zero, "sim_draft_latency", zero_ok=False)  # generate's rule
    check_latency(Fraction(1, 10**9), "sim_draft_latency", zero_ok=False)
