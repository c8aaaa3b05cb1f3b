"""The event loop every real transport shares (``dsi_core.backends.driver.drive``), on a fake
transport that runs jobs synchronously, in submission order, and can be told to lose a worker.

What a transport test with threads or processes cannot pin down exactly: the report's counts
(tasks, drafts, bytes, one overhead and one preemption delay per acked job), the overhead's
clipping at zero, dead servers and the queue of tasks waiting for a live one, the drafter's
restart, the errors (a failing worker, an unknown action or cancel, both deadlines).
Written for the generated driver.py mutants (docs/mutation.md). No timing is asserted: only
counts, signs, and values the fake sets.
"""

from __future__ import annotations

import statistics
import time

import pytest

from dsi_core.backends import driver
from dsi_core.backends.driver import Dead, Failure, Reply, RunReport, _lcp, drive
from dsi_core.backends.worker import ServerWorker, job_id
from dsi_core.coordinator import Config, Coordinator
from dsi_core.errors import BackendError, DeadlineExceededError
from dsi_core.events import Cancel, StartDraft, StartTarget, TargetAborted
from dsi_core.sampling import DecisionRule, KeyedNoise
from dsi_core.testing.toy import random_table_model

TARGET = random_table_model(6, seed=3, exact=False)
DRAFTER = random_table_model(6, seed=4, exact=False)
PROMPT = [1, 2]
SENT, RECEIVED = 10, 7  # bytes the fake reports per submitted action and per reply


class Fake:
    """Runs one queued job per poll (FIFO); ``die`` maps a poll number to a worker to lose."""

    def __init__(self, servers: int, compute_s: float = 0.0, die=None, fail=None) -> None:
        self.servers = servers
        self.workers = [ServerWorker(TARGET, PROMPT, 1.0) for _ in range(servers)]
        self.workers.append(ServerWorker(DRAFTER, PROMPT, 1.0))
        self.queue: list[tuple[int, object]] = []
        self.cancelled: set[int] = set()
        self.submits: list[tuple[int, object]] = []
        self.cancels: list[tuple[int, int]] = []
        self.replies = 0
        self.restarts: list[int] = []
        self.compute_s = compute_s
        self.die = dict(die or {})
        self.fail = fail
        self.polls = 0
        self.lost = 0
        self.handled: set[int] = set()
        self.died_at = -1
        self.busy = [0] * servers  # target jobs submitted to each server and not yet answered
        self.peak = 0  # the most target jobs one server held at once
        self.in_flight = 0  # the most target jobs held at once by all servers together

    def submit(self, worker: int, action) -> int:
        self.queue.append((worker, action))
        self.submits.append((worker, action))
        if isinstance(action, StartTarget):
            self.busy[worker] += 1
            self.peak = max(self.peak, self.busy[worker])
            self.in_flight = max(self.in_flight, sum(self.busy))
        return SENT

    def cancel(self, worker: int, ident: int) -> None:
        self.cancelled.add(ident)
        self.cancels.append((worker, ident))

    def poll(self, timeout: float):
        self.polls += 1
        w = self.die.pop(self.polls, None)
        if w is not None:
            self.lost += sum(x == w for x, _ in self.queue)  # its queued jobs are lost
            if w < self.servers:
                self.busy[w] = 0
            self.queue = [(x, a) for x, a in self.queue if x != w]
            self.died_at = len(self.submits)
            return [(w, Dead(f"w{w}", 9))]
        if self.fail is not None and self.polls == self.fail[0]:
            return [(self.fail[1], Failure(f"target-{self.fail[1]}", RuntimeError("boom")))]
        if not self.queue:
            return []
        w, a = self.queue.pop(0)
        if isinstance(a, StartTarget):
            self.busy[w] -= 1
        ident = job_id(a)
        ev = self.workers[w].handle(a, lambda: ident in self.cancelled)
        self.handled.add(ident)
        self.replies += 1
        return [(w, Reply(ev, self.compute_s, RECEIVED))]

    def restart(self, worker: int) -> None:
        self.restarts.append(worker)


def coordinator(alg="dsi", k=2, servers=2, n=12, mode="greedy") -> Coordinator:
    return Coordinator(Config(alg, k, servers, n, mode=mode), DecisionRule(mode, KeyedNoise(5)))


def reference(n: int = 12) -> list[int]:
    """Non-SI on one server: the greedy target's own tokens."""
    c = coordinator("nonsi", 1, 1, n)
    drive(c, Fake(1), PROMPT, RunReport("ref"), timeout_s=30)
    return list(c.committed)


def test_report_counts_every_job_byte_and_ack():
    c = coordinator("dsi", 2, 3, 12)
    t, report = Fake(3), RunReport("fake")
    wall = drive(c, t, PROMPT, report, timeout_s=30)
    assert list(c.committed) == reference()
    n_tasks = sum(isinstance(a, StartTarget) for _, a in t.submits)
    n_drafts = sum(isinstance(a, StartDraft) for _, a in t.submits)
    assert (report.tasks, report.drafts) == (n_tasks, n_drafts) and n_tasks >= 1 and n_drafts >= 1
    assert report.bytes_sent == SENT * len(t.submits)
    assert report.bytes_received == RECEIVED * t.replies
    assert len(report.overhead_s) == t.replies and all(x >= 0 for x in report.overhead_s)
    # compute_s = 0: the overhead is the whole round trip, which took some time
    assert sum(report.overhead_s) > 0
    assert len(report.preemption_delays_s) == len({i for _, i in t.cancels} & t.handled)
    assert all(x >= 0 for x in report.preemption_delays_s)
    assert c.stats.wall_time == wall > 0
    assert (report.dead_servers, report.lost, report.drafter_restarts) == (0, 0, 0)
    d = report.as_dict()
    assert d["tasks"] == n_tasks and d["drafts"] == n_drafts and d["transport"] == "fake"
    assert d["bytes_per_job"] == (report.bytes_sent + report.bytes_received) / (n_tasks + n_drafts)
    assert d["overhead_ms_median"] == statistics.median(report.overhead_s) * 1e3
    pre = report.preemption_delays_s
    assert d["preemptions_acked"] == len(pre)
    if pre:
        assert d["preemption_delay_ms_max"] == max(pre) * 1e3
        assert d["preemption_delay_ms_median"] == statistics.median(pre) * 1e3


def test_a_server_holds_one_task_at_a_time():
    """DSI with k = 1 on three servers keeps several tasks in flight; each goes to a free
    server (the one with the longest common prefix among the free ones), never to one that
    is still busy."""
    c = coordinator("dsi", 1, 3, 12)
    t = Fake(3)
    drive(c, t, PROMPT, RunReport("fake"), timeout_s=30)
    assert list(c.committed) == reference()
    assert t.in_flight >= 2  # not vacuous: tasks overlapped
    assert t.peak == 1


def test_cancelled_jobs_report_one_delay_each():
    """DSI with k = 1 and three servers preempts tasks (rejections, rows decided by others):
    every cancelled job that acks before the run ends gives exactly one preemption delay (the
    rest are the backend's to drain)."""
    runs_with_cancels = 0
    for seed in range(8):
        c = Coordinator(Config("dsi", 1, 3, 12), DecisionRule("greedy", KeyedNoise(seed)))
        t, report = Fake(3), RunReport("fake")
        drive(c, t, PROMPT, report, timeout_s=30)
        cancelled = {i for _, i in t.cancels} & t.handled
        assert len(report.preemption_delays_s) == len(cancelled)
        assert report.as_dict()["preemptions_acked"] == len(cancelled)
        # cancel to ack, both inside the run: a bound, not a timing
        assert all(0 <= x <= c.stats.wall_time for x in report.preemption_delays_s)
        runs_with_cancels += bool(cancelled)
    assert runs_with_cancels >= 1  # not vacuous


def test_overhead_is_clipped_at_zero():
    """A worker that says it computed longer than the round trip: overhead 0, not negative."""
    report = RunReport("fake")
    drive(coordinator(), Fake(2, compute_s=1e6), PROMPT, report, timeout_s=30)
    assert report.overhead_s and all(x == 0.0 for x in report.overhead_s)


def test_empty_report():
    d = RunReport("x").as_dict()
    assert d["bytes_per_job"] == 0 and d["overhead_ms_median"] == 0.0
    assert d["preemption_delay_ms_median"] == d["preemption_delay_ms_max"] == 0.0
    assert d["abandoned_threads"] == [] and d["preemptions_acked"] == 0
    one = RunReport("x", tasks=1, bytes_sent=10, bytes_received=6).as_dict()
    assert one["bytes_per_job"] == 16  # per job: one job, not "at least two"


def test_a_dead_server_is_retired_and_its_tasks_wait_for_the_live_one():
    """Server 0 dies at the second poll: its queued jobs are acked as lost, every later task
    runs on server 1 (a second task waits in the queue for it), the tokens do not change."""
    c = coordinator("dsi", 2, 2, 12)
    t, report = Fake(2, die={2: 0}), RunReport("fake")
    drive(c, t, PROMPT, report, timeout_s=30)
    assert list(c.committed) == reference()
    assert report.dead_servers == 1 and report.lost == t.lost
    ids = [a.task_id for _, a in t.submits if isinstance(a, StartTarget)]
    assert len(ids) == len(set(ids))  # a task that waited for a server starts once
    late = [w for w, a in t.submits[t.died_at :] if isinstance(a, StartTarget)]
    assert len(late) >= 2 and set(late) == {1}


@pytest.mark.parametrize("mode", ["greedy", "rejection"])
def test_a_task_cancelled_while_it_waits_for_a_server_never_starts(mode):
    """Server 0 dies at the second poll; DSI with k = 1 keeps asking for two servers, so tasks
    wait for the live one, and some are cancelled while they wait. Each of those is acked to
    the coordinator at once (it never ran) and is never started later; tokens are those of
    the same run without a death."""

    def run(fake):
        c = Coordinator(Config("dsi", 1, 2, 12, mode=mode), DecisionRule(mode, KeyedNoise(0)))
        waited: list[int] = []  # aborted before any StartTarget for them was submitted
        real = c.on_event

        def spy(ev, now):
            if isinstance(ev, TargetAborted):
                sent = {a.task_id for _, a in fake.submits if isinstance(a, StartTarget)}
                if ev.task_id not in sent:
                    waited.append(ev.task_id)
            return real(ev, now)

        c.on_event = spy
        drive(c, fake, PROMPT, RunReport("fake"), timeout_s=5)
        return list(c.committed), waited

    t = Fake(2, die={2: 0})
    tokens, waited = run(t)
    assert waited  # not vacuous: some tasks were cancelled while waiting
    started = [a.task_id for _, a in t.submits if isinstance(a, StartTarget)]
    assert not set(waited) & set(started)
    assert tokens == run(Fake(2))[0]


def test_every_server_dead_is_an_error():
    with pytest.raises(BackendError, match="every target server died"):
        drive(coordinator("dsi", 2, 2, 12), Fake(2, die={1: 0, 2: 1}), PROMPT, RunReport("f"))


def test_the_drafter_is_restarted_once():
    c = coordinator("dsi", 2, 2, 12)
    t, report = Fake(2, die={2: 2}), RunReport("fake")
    drive(c, t, PROMPT, report, timeout_s=30)
    assert t.restarts == [2] and report.drafter_restarts == 1 and report.dead_servers == 0
    assert list(c.committed) == reference()
    with pytest.raises(BackendError, match="the drafter died twice"):
        drive(coordinator(), Fake(2, die={2: 2, 4: 2}), PROMPT, RunReport("fake"), timeout_s=30)


def test_a_failing_worker_raises_its_exception_with_a_note():
    with pytest.raises(RuntimeError, match="boom") as info:
        drive(coordinator(), Fake(2, fail=(2, 1)), PROMPT, RunReport("fake"), timeout_s=30)
    assert any("target-1" in n for n in info.value.__notes__)


class Bogus(Coordinator):
    def __init__(self, actions) -> None:
        super().__init__(Config("dsi", 2, 2, 4), DecisionRule("greedy", KeyedNoise(0)))
        self._bogus = actions

    def start(self, now: float = 0.0):
        super().start(now)
        return self._bogus


def test_unknown_actions_and_cancels_are_errors():
    with pytest.raises(BackendError, match="unknown action"):
        drive(Bogus([object()]), Fake(2), PROMPT, RunReport("f"))
    with pytest.raises(BackendError, match="cancel of unknown target 99"):
        drive(Bogus([Cancel("target", 99)]), Fake(2), PROMPT, RunReport("f"))


class Silent(Fake):
    """Never replies (a hung worker); records how long each poll was allowed to wait."""

    def __init__(self, servers: int) -> None:
        super().__init__(servers)
        self.waits: list[float] = []

    def poll(self, timeout: float):
        self.waits.append(timeout)
        time.sleep(timeout)
        return []


def test_the_run_deadline_and_the_task_deadline():
    """Both deadlines raise, naming the job and its worker; and no poll waits longer than
    ``poll_s`` (a worker that dies silently is noticed on the next empty poll, not only at the
    deadline)."""
    t = Silent(2)
    with pytest.raises(DeadlineExceededError, match="deadline of 0.2 s"):
        drive(coordinator(), t, PROMPT, RunReport("f"), timeout_s=0.2, poll_s=0.01)
    assert len(t.waits) >= 2 and max(t.waits) <= 0.01
    names = ["t-a", "t-b", "the-drafter"]
    t = Silent(2)
    with pytest.raises(DeadlineExceededError, match=r"job \d+ on (t-a|t-b|the-drafter) exceed"):
        drive(
            coordinator(), t, PROMPT, RunReport("f"), task_timeout_s=0.2, poll_s=0.01, names=names
        )
    assert len(t.waits) >= 2 and max(t.waits) <= 0.01
    # a worker without a name (here the drafter, named only the two servers) gets its role
    with pytest.raises(DeadlineExceededError, match=r"draft job \d+ on drafter exceeded"):
        drive(
            coordinator(),
            Silent(2),
            PROMPT,
            RunReport("f"),
            task_timeout_s=0.05,
            poll_s=0.01,
            names=["t-a", "t-b"],
        )


class HungDrafter(Fake):
    """The drafter never answers; each target reply takes at least 20 ms."""

    def poll(self, timeout: float):
        self.queue = [(w, a) for w, a in self.queue if w != self.servers]
        if not self.queue:
            time.sleep(timeout)
            return []
        time.sleep(0.02)
        return super().poll(timeout)


def test_the_task_deadline_counts_from_the_oldest_job():
    """A draft that never returns hits the per-task deadline although target tasks keep
    starting and finishing (DSI's chain needs no draft): the clock is the oldest job's."""
    with pytest.raises(DeadlineExceededError, match=r"draft job \d+ on drafter exceeded"):
        drive(
            coordinator("dsi", 2, 2, 16),
            HungDrafter(2),
            PROMPT,
            RunReport("f"),
            task_timeout_s=0.1,
            poll_s=0.01,
            names=["target-0", "target-1", "drafter"],
        )


def test_common_prefix_length():
    """The KV-reuse choice sends a task to the server whose last context shares the longest
    prefix with the new one; ``_lcp`` measures that prefix."""
    assert _lcp([], [1, 2]) == 0 and _lcp([1, 2], []) == 0
    assert _lcp([2], [1]) == 0
    assert _lcp([1, 2], [1, 3]) == 1
    assert _lcp([1, 2, 3], [1, 2, 3, 4]) == 3
    assert _lcp((5, 6, 7), [5, 6, 7]) == 3


class Clock:
    """Stands in for the driver's ``time``: a clock that only the fake transports move."""

    def __init__(self) -> None:
        self.t = 0.0

    def perf_counter(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(driver, "time", c)
    return c


class Ticking(Fake):
    """Each poll takes exactly one second of the fake clock."""

    def __init__(self, servers: int, clock: Clock, **kw) -> None:
        super().__init__(servers, **kw)
        self.clock = clock

    def poll(self, timeout: float):
        self.clock.t += 1.0
        return super().poll(timeout)


class SilentTicking(Ticking):
    def poll(self, timeout: float):
        self.clock.t += 1.0
        self.polls += 1
        return []


def test_a_dead_servers_jobs_stop_counting_for_the_task_deadline(clock):
    """Server 0 dies with a queued job. On this fake every job that is answered is answered
    within 3 polls (3 s of the fake clock), and the run takes more than 20: a lost job still
    counted as running would hit the 10 s per-task deadline."""
    c = coordinator("dsi", 2, 2, 12)
    t, report = Ticking(2, clock, die={2: 0}), RunReport("fake")
    drive(c, t, PROMPT, report, task_timeout_s=10)
    assert list(c.committed) == reference()
    assert report.lost == t.lost >= 1 and report.dead_servers == 1
    assert t.polls > 20  # long enough to matter


def test_a_deadline_is_reached_at_its_time_not_after(clock):
    """With a clock that moves one second per poll and nothing answering, a 3 s deadline (of
    the run, or of the oldest task) raises after exactly three polls: at ``now == deadline``,
    not one poll later."""
    t = SilentTicking(2, clock)
    with pytest.raises(DeadlineExceededError, match="the run exceeded its deadline of 3 s"):
        drive(coordinator(), t, PROMPT, RunReport("f"), timeout_s=3)
    assert t.polls == 3
    t = SilentTicking(2, clock)
    with pytest.raises(DeadlineExceededError, match="per-task deadline of 3 s"):
        drive(coordinator(), t, PROMPT, RunReport("f"), task_timeout_s=3)
    assert t.polls == 3


def test_the_overhead_is_the_round_trip_minus_the_compute_time(clock):
    """On the fake clock (one second per poll, from 1000 s) a job answered m polls after it was
    sent took m seconds; the worker says it computed for 0.5 s, so its overhead is m - 0.5.
    On this fake every job is answered within 3 polls."""
    clock.t = 1000.0
    t, report = Ticking(2, clock, compute_s=0.5), RunReport("fake")
    drive(coordinator(), t, PROMPT, report, timeout_s=1e9)
    assert len(report.overhead_s) == t.replies >= 1
    assert all(x in (0.5, 1.5, 2.5) for x in report.overhead_s), report.overhead_s
