"""The ``processes`` backend's worker lifecycle, below what a token-level test sees.

Workers leave Ctrl-C to the parent and watch their parent; an exception that cannot make the
round trip arrives as text; the parent keeps only its own end of each pipe; one startup deadline
covers all workers; a dead worker is reported once; the drain after a run reads every reply
still due; ``_stop`` asks, waits, then kills. Written for the generated mutants of processes.py
(docs/mutation.md). Where a race would decide the outcome, the test runs the backend's code on
stand-ins (a clock, ``os``, ``mp_wait``, worker handles) instead. No check asserts a duration.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal
import threading
import time
import types

import pytest

from dsi_core.backends import processes
from dsi_core.backends.driver import RunReport
from dsi_core.backends.processes import ProcessesBackend
from dsi_core.backends.worker import STOP_ALL
from dsi_core.checker import checked
from dsi_core.config import Config
from dsi_core.coordinator import Coordinator
from dsi_core.errors import BackendError, InvalidInputError
from dsi_core.events import TargetAborted
from dsi_core.sampling import DecisionRule, KeyedNoise
from dsi_core.testing.toy import ToyModel, random_table_model

TARGET = random_table_model(5, seed=11, exact=False)
DRAFTER = random_table_model(5, seed=12, exact=False)


def _coordinator() -> Coordinator:
    return Coordinator(Config("dsi", 2, 2, 10), DecisionRule("greedy", KeyedNoise(0)))


def _greedy_run(backend: ProcessesBackend, prompt: list[int]) -> list[int]:
    coord = _coordinator()
    backend.run(coord, TARGET, DRAFTER, prompt)
    return list(checked(coord).committed)  # every real run passes the trace checker


def test_workers_ignore_sigint_and_keep_serving():
    """A terminal's Ctrl-C sends SIGINT to the whole process group. The workers ignore it: the
    parent gets KeyboardInterrupt and stops them itself, so a worker never dies half-way on its
    own. Here every worker gets a SIGINT between two runs; both runs use the same workers."""
    with ProcessesBackend(2) as b:
        first = _greedy_run(b, [1, 2])
        pids = b.pids()
        assert len(pids) == 3
        for pid in pids:
            os.kill(pid, signal.SIGINT)
        time.sleep(0.2)  # room for a worker that did not ignore it to die (not an assertion)
        second = _greedy_run(b, [1, 2])
        assert b.pids() == pids  # none died, none was replaced
    assert second == first


class _Os:
    """Stands in for ``os`` inside the parent watch: a fixed parent id, and an ``_exit`` that
    records its status and ends the watch thread instead of the test process."""

    def __init__(self, ppid: int) -> None:
        self.ppid = ppid
        self.exits: list[int] = []

    def getppid(self) -> int:
        return self.ppid

    def _exit(self, status: int) -> None:
        self.exits.append(status)
        raise SystemExit


class _Time:
    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        raise SystemExit  # one check is enough: end the watch thread


# the stand-ins end the watch thread with SystemExit, which pytest reports as a thread warning
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("parent_alive", [True, False])
def test_the_parent_watch(monkeypatch, parent_alive):
    """While the parent lives the watch sleeps ``every_s`` between checks (a watch that did not
    sleep would spin and take a core from the worker); once the parent id changes it exits the
    worker with status 0, without sleeping first. Runs in a daemon thread it returns."""
    fake_os, fake_time = _Os(ppid=4242 if parent_alive else 1), _Time()
    monkeypatch.setattr(processes, "os", fake_os)
    monkeypatch.setattr(processes, "time", fake_time)
    th = processes._exit_with_parent(4242, every_s=0.25)
    assert isinstance(th, threading.Thread) and th.daemon
    th.join(10)
    alive = th.is_alive()
    if alive:  # a watch that never sleeps: end it through the stand-in, before the real os is
        fake_os.ppid = -1  # back (its _exit(0) would end the test process with status 0)
        th.join(10)
    assert not alive
    if parent_alive:
        assert fake_time.sleeps == [0.25] and fake_os.exits == []
    else:
        assert fake_os.exits == [0] and fake_time.sleeps == []


class NeedsTwoArgs(Exception):
    """Pickles (as its ``args``) but cannot be unpickled: ``__init__`` wants two arguments."""

    def __init__(self, what: str, code: int) -> None:
        super().__init__(f"{what} (code {code})")


class RaisesUnpicklable(ToyModel):
    def rows(self, state, tokens, start):
        raise NeedsTwoArgs("the target gave up", 7)


def test_an_exception_the_parent_could_not_unpickle_arrives_as_its_text():
    """A worker checks that its exception survives the round trip before sending it; one that
    would not is sent as a BackendError carrying the worker's traceback text instead (else the
    parent would fail inside pickle with a TypeError that names neither model nor worker)."""
    bad = RaisesUnpicklable(TARGET.vocab_size, TARGET.fn, "raises-unpicklable")
    with ProcessesBackend(2) as b:
        coord = _coordinator()
        with pytest.raises(BackendError, match=r"target-\d raised:(.|\n)*NeedsTwoArgs"):
            b.run(coord, bad, DRAFTER, [1, 2])
        assert b.pids() == []  # a run that failed stopped its workers at once


def test_the_parent_keeps_only_its_own_end_of_each_pipe():
    """After starting a worker the parent closes the worker's end of their pipe (else every
    worker leaves an open descriptor in the parent, and a dead worker's pipe never reads
    end-of-file there). The drafter is started last, so no sibling inherited its end: once it
    is killed, the parent reads end-of-file on its pipe."""
    b = ProcessesBackend(2)
    try:
        b._start(TARGET, DRAFTER)
        p = b._procs[-1]
        assert p.label == "drafter"
        os.kill(p.proc.pid, signal.SIGKILL)
        p.proc.join(10)
        assert p.parent.poll(10)
        with pytest.raises(EOFError):
            p.parent.recv_bytes()
        assert len(b.pids()) == 2 and p.proc.pid not in b.pids()  # the live workers only
    finally:
        b.close()


def test_the_constructor_keeps_what_it_is_given():
    assert ProcessesBackend(2, start_method="spawn").start_method == "spawn"
    assert ProcessesBackend(2).start_method in mp.get_all_start_methods()  # a default, not None
    one = ProcessesBackend(2, threads_per_server=1, start_method="spawn")
    assert one.threads == 1
    with pytest.raises(InvalidInputError, match="threads_per_server must be >= 1"):
        ProcessesBackend(2, threads_per_server=0)
    assert ProcessesBackend(2, threads_per_server=2, start_method="spawn").threads == 2
    with pytest.raises(InvalidInputError, match="needs threads_per_server=1"):
        ProcessesBackend(2, threads_per_server=2, start_method="fork")  # OpenMP after fork


class _Pipe:
    """The parent's end of a worker's pipe: ready at once with a "ready" message."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def poll(self, timeout: float) -> bool:
        self.waits.append(timeout)
        return True

    def recv_bytes(self) -> bytes:
        return pickle.dumps(("ready", 1234))


class _Starting:
    def __init__(self, label: str) -> None:
        self.label, self.parent = label, _Pipe()
        self.proc = types.SimpleNamespace(exitcode=None)


class _Monotonic:
    """Stands in for ``time`` in processes.py: ``monotonic`` returns the given readings."""

    def __init__(self, *readings: float) -> None:
        self.readings = list(readings)

    def monotonic(self) -> float:
        assert self.readings, "read the clock more often than expected"
        return self.readings.pop(0)


def test_startup_waits_for_each_worker_only_what_is_left_of_the_timeout(monkeypatch):
    """One startup deadline for all workers: each is waited for at most what is left of
    ``startup_timeout_s`` (read on a stand-in clock: 0.2 s pass between the second and the
    third check), and a worker not ready when exactly nothing is left did not start."""
    b = ProcessesBackend(2, startup_timeout_s=0.5, start_method="spawn")
    procs = [_Starting("target-0"), _Starting("target-1"), _Starting("drafter")]
    monkeypatch.setattr(processes, "time", _Monotonic(100.0, 100.0, 100.0, 100.2))
    b._await_ready(procs)
    assert [p.parent.waits for p in procs] == [[0.5], [0.5], [pytest.approx(0.3)]]
    monkeypatch.setattr(processes, "time", _Monotonic(100.0, 100.5))
    late = _Starting("target-0")
    with pytest.raises(BackendError, match="target-0 did not start within 0.5 s"):
        b._await_ready([late])
    assert late.parent.waits == []


class FailsToPlace(ToyModel):
    def to(self, device):
        raise RuntimeError(f"no room on {device}")


def test_a_worker_failing_while_starting_raises_its_error():
    """A model that cannot be placed fails in its worker; the run raises that error (with its
    message), and no worker is left."""
    before = {p.pid for p in mp.active_children()}
    bad = FailsToPlace(TARGET.vocab_size, TARGET.fn, "fails-to-place")
    with ProcessesBackend(2, devices=["cpu", "cpu"]) as b:
        coord = _coordinator()
        with pytest.raises(RuntimeError, match="no room on cpu"):
            b.run(coord, bad, DRAFTER, [1, 2])
        assert b.pids() == []  # the workers that did start were stopped at once
    assert {p.pid for p in mp.active_children()} <= before


@pytest.mark.parametrize("seen_by", ["sentinel", "pipe"])
def test_a_dead_worker_is_reported_once(monkeypatch, seen_by):
    """Whether its exit is seen on its process sentinel or as end-of-file on its pipe (which
    of the two comes first is a race), a dead worker is reported once, and not polled again."""
    b = ProcessesBackend(1, start_method="spawn")
    gone = _Busy("target-0", dead=True)
    b._procs = [gone, None]
    ready = gone.proc.sentinel if seen_by == "sentinel" else gone.parent
    monkeypatch.setattr(processes, "mp_wait", lambda objs, timeout: [o for o in objs if o is ready])
    transport = processes._ProcTransport(b)
    (first,) = transport.poll(0.0)
    assert first[0] == 0 and first[1].exitcode == -9 and b._dead == {0}
    assert transport.poll(0.0) == []  # seen once: not polled again
    if seen_by == "pipe":
        assert gone.joined == 1  # reaped, so its exit code is known


def test_a_run_returns_only_when_its_workers_are_idle():
    """Jobs still running when the coordinator is done (stale drafts, preempted tasks) are
    stopped and their replies read before ``run`` returns: a reply left in a pipe would reach
    the next run, whose coordinator numbers its jobs from the same counter."""
    drained = 0
    with ProcessesBackend(3) as b:
        for seed in range(12):
            coord = Coordinator(Config("dsi", 1, 3, 12), DecisionRule("greedy", KeyedNoise(seed)))
            b.run(coord, TARGET, DRAFTER, [1, 2])
            checked(coord)
            drained += b.report.tasks + b.report.drafts - b._acked()  # left to the drain
            time.sleep(0.2)  # room for a reply that was not waited for (not an assertion)
            assert not any(p.parent.poll(0) for p in b._procs if p is not None)
    # not vacuous: about half the runs end with a job in flight on this 2-core machine, so
    # twelve runs without one would be a 1-in-4,000 event if runs were independent
    assert drained >= 1


class _Busy:
    """A worker with ``replies`` answers queued in its pipe (then nothing), or a dead one (its
    sentinel is ready, its pipe reads end-of-file)."""

    def __init__(self, label: str, replies: int = 0, dead: bool = False) -> None:
        self.label, self.dead, self.left, self.reads, self.joined = label, dead, replies, 0, 0
        self.cancel = types.SimpleNamespace(value=-1)
        self.parent = types.SimpleNamespace(recv_bytes=self._recv)
        self.proc = types.SimpleNamespace(sentinel=object(), exitcode=-9, join=self._join)

    def ready(self) -> bool:
        return self.dead or self.left > 0

    def _recv(self) -> bytes:
        if self.dead:
            raise EOFError
        self.left -= 1
        self.reads += 1
        return pickle.dumps(("done", TargetAborted(self.reads), 0.0))

    def _join(self, timeout: float | None = None) -> None:
        self.joined += 1


def _drain(monkeypatch, procs, in_flight: int, timeout_s: float = 10.0, **report) -> bool:
    monkeypatch.setattr(
        processes,
        "mp_wait",
        lambda objs, timeout: [p.parent for p in procs if p.ready() and p.parent in objs],
    )
    b = ProcessesBackend(len(procs) - 1, start_method="spawn")
    b._procs = list(procs)
    b.report = RunReport("processes", **(report or {"tasks": in_flight}))  # default: none acked
    return b._drain(timeout_s)


def test_the_drain_reads_every_reply_still_due(monkeypatch):
    """After a run, every job still in flight is told to stop and its reply read, however
    many there are; a death or the drain's deadline make it report failure (the caller then
    stops the workers instead of reusing them)."""
    for due in (1, 2, 3):
        procs = [_Busy("target-0", replies=due), _Busy("drafter")]
        assert _drain(monkeypatch, procs, in_flight=due) is True
        assert procs[0].reads == due  # all of them, and no more
        assert all(p.cancel.value == STOP_ALL for p in procs)
    procs = [_Busy("target-0", replies=1), _Busy("drafter", dead=True)]
    assert _drain(monkeypatch, procs, in_flight=2) is False  # a worker died while draining
    procs = [_Busy("target-0"), _Busy("drafter")]
    assert _drain(monkeypatch, procs, in_flight=1, timeout_s=0.05) is False  # never answered
    # 4 jobs sent: 2 answered during the run, 1 lost with a dead server, so 1 is still due
    procs = [_Busy("target-0", replies=1), _Busy("target-1"), _Busy("drafter")]
    report = dict(tasks=3, drafts=1, overhead_s=[0.0, 0.0], lost=1)
    assert _drain(monkeypatch, procs, 1, 0.5, **report) is True and procs[0].reads == 1
    # the drain's deadline, on a stand-in clock: at exactly its end, nothing more is read
    monkeypatch.setattr(processes, "time", _Monotonic(100.0, 100.5))
    procs = [_Busy("target-0", replies=1), _Busy("drafter")]
    assert _drain(monkeypatch, procs, in_flight=1, timeout_s=0.5) is False
    assert procs[0].reads == 0


def test_close_lets_idle_workers_exit_on_their_own():
    """``close`` asks each worker to stop and waits up to ``grace_s`` for it: idle workers exit
    cleanly (status 0); only one that does not stop in time is killed."""
    with ProcessesBackend(2) as b:
        _greedy_run(b, [1, 2])
        procs = [p.proc for p in b._procs if p is not None]
    assert len(procs) == 3 and [p.exitcode for p in procs] == [0, 0, 0]


class _Stopping:
    """A worker that exits once it has been given time to (a ``join`` with a timeout > 0)."""

    def __init__(self, label: str) -> None:
        self.label, self.sent, self.killed, self.joins, self.closed = label, [], 0, [], 0
        self.cancel = types.SimpleNamespace(value=-1)
        self.parent = types.SimpleNamespace(close=self._close)
        self.proc = types.SimpleNamespace(join=self._join, is_alive=self._alive, kill=self._kill)

    def send(self, obj) -> int:
        self.sent.append(obj)
        return 1

    def _join(self, timeout: float | None = None) -> None:
        self.joins.append(timeout)

    def _alive(self) -> bool:
        return not any(t is None or t > 0 for t in self.joins)

    def _kill(self) -> None:
        self.killed += 1

    def _close(self) -> None:
        self.closed += 1


def test_stop_asks_then_waits_then_kills_only_what_is_left():
    """``_stop`` tells every worker to stop, waits for them within one shared grace period,
    and kills only those still alive after it (here none: each exits once waited for)."""
    procs = [_Stopping("target-0"), _Stopping("drafter")]
    processes._stop(procs, 2.0)
    for p in procs:
        assert p.sent == [("stop",)] and p.cancel.value == STOP_ALL
        assert p.joins and 0 < p.joins[0] <= 2.0  # what is left of the grace period
        assert p.killed == 0
        assert p.closed == 1  # and the parent's end of its pipe is closed


def test_the_constructor_defaults_and_the_drafter_device():
    """By default only decided tokens come back in greedy and coupled modes (``compact``); the
    drafter is placed on ``drafter_device`` when given, else on the first server's device."""
    assert ProcessesBackend(2, start_method="spawn").compact is True
    b = ProcessesBackend(2, devices=["cpu:0", "cpu:1"], start_method="spawn")
    assert b.drafter_device == "cpu:0"
    b = ProcessesBackend(2, devices=["cpu:0", "cpu:1"], drafter_device="meta", start_method="spawn")
    assert b.drafter_device == "meta"


def test_a_cancel_reaches_its_workers_flag():
    """A cancel writes the job id into the worker's shared flag, which the model reads between
    decoder layers (a cancel that wrote nothing would leave every forward to run to the end);
    a cancel for a missing drafter is ignored."""
    b = ProcessesBackend(1, start_method="spawn")
    flag = types.SimpleNamespace(value=-1)
    b._procs = [types.SimpleNamespace(cancel=flag), None]
    transport = processes._ProcTransport(b)
    transport.cancel(0, 7)
    assert flag.value == 7
    transport.cancel(1, 8)  # no drafter (non-SI): nothing to stop
    assert flag.value == 7


def test_new_models_replace_the_workers_and_run_returns_its_wall_time():
    """A run with other model objects stops the old workers before starting new ones (three
    processes, not six), and ``run`` returns its wall time."""
    other = random_table_model(5, seed=13, exact=False)
    with ProcessesBackend(2) as b:
        coord = _coordinator()
        wall = b.run(coord, TARGET, DRAFTER, [1, 2])
        assert isinstance(wall, float) and wall > 0
        checked(coord)
        old = b.pids()
        coord = _coordinator()
        b.run(coord, other, DRAFTER, [1, 2])
        checked(coord)
        new = b.pids()
        assert len(new) == 3 and not set(new) & set(old)
        assert len(b._procs) == 3
