"""The threads transport's own promises, pinned down for the generated threads.py mutants
(docs/mutation.md): its workers are daemon threads (a model stuck in a call must not keep the
interpreter alive), nothing is serialised (0 bytes per job), the overhead it reports is the
round trip minus the compute time (so positive), a cancel reaches the thread's cancelled set,
and a worker thread that ended without reporting is an error rather than a silent wait.
"""

from __future__ import annotations

import queue
import threading

import pytest

from dsi_core import generate
from dsi_core.backends.threads import _Thread, _ThreadTransport
from dsi_core.backends.worker import ServerWorker
from dsi_core.errors import BackendError
from dsi_core.testing.toy import ToyModel, random_table_model

TARGET = random_table_model(5, seed=21, exact=False)
DRAFTER = random_table_model(5, seed=22, exact=False)


class Recording(ToyModel):
    """Records whether each call ran on a daemon thread."""

    def __init__(self, base: ToyModel) -> None:
        super().__init__(base.vocab_size, base.fn, "recording")
        self.daemon: list[bool] = []

    def rows(self, state, tokens, start):
        self.daemon.append(threading.current_thread().daemon)
        return super().rows(state, tokens, start)

    def propose(self, state, tokens):
        self.daemon.append(threading.current_thread().daemon)
        return super().propose(state, tokens)


def test_workers_are_daemon_threads_nothing_is_serialised_and_overhead_is_positive():
    target, drafter = Recording(TARGET), Recording(DRAFTER)
    r = generate([1, 2], target=target, drafter=drafter, servers=2, max_new_tokens=10)
    assert target.daemon and drafter.daemon and all(target.daemon + drafter.daemon)
    t = r.transport
    assert t["transport"] == "threads" and t["tasks"] >= 1 and t["drafts"] >= 1
    assert t["bytes_per_job"] == 0
    # round trip (submit to ack) minus the worker's compute time: the queues cost something
    assert t["overhead_ms_median"] > 0


def test_cancel_reaches_the_threads_cancelled_set():
    out: queue.Queue = queue.Queue()
    threads = [_Thread(i, f"t{i}", ServerWorker(TARGET, [1], 1.0), out) for i in range(2)]
    tr = _ThreadTransport(threads, out)
    assert tr.servers == 1
    tr.cancel(1, 7)
    assert 7 in threads[1].cancelled and 7 not in threads[0].cancelled


def test_a_worker_thread_that_ended_without_reporting_is_an_error():
    out: queue.Queue = queue.Queue()
    threads = [_Thread(i, f"t{i}", ServerWorker(TARGET, [1], 1.0), out) for i in range(2)]
    for th in threads:
        th.start()
    tr = _ThreadTransport(threads, out)
    assert tr.poll(0.01) == []  # alive and idle: nothing to report
    threads[0].inbox.put(None)  # ends without a reply
    threads[0].join(10)
    with pytest.raises(BackendError, match="died without reporting"):
        tr.poll(0.01)
    threads[1].inbox.put(None)
    threads[1].join(10)


def _coordinator(alg: str, servers: int, n: int = 10):
    from dsi_core.config import Config
    from dsi_core.coordinator import Coordinator
    from dsi_core.sampling import DecisionRule, KeyedNoise

    return Coordinator(Config(alg, 2, servers, n), DecisionRule("greedy", KeyedNoise(3)))


def test_non_si_runs_without_a_drafter():
    """Called directly, the backend takes ``drafter=None`` (non-SI needs none): the drafter's
    thread idles without a model and the target servers run the chain."""
    from dsi_core.backends.threads import ThreadsBackend

    ref = generate([1, 2], target=TARGET, algorithm="nonsi", max_new_tokens=10, backend="simulated")
    for servers in (1, 2):
        c = _coordinator("nonsi", servers)
        ThreadsBackend(servers).run(c, TARGET, None, [1, 2])
        assert list(c.committed) == ref.tokens


def test_by_default_only_decided_tokens_come_back_in_greedy_mode():
    """The transport moves only what the decision needs: each target row reaches the
    coordinator as a :class:`~dsi_core.sampling.Decided` token, not a probability row."""
    from dsi_core.backends.threads import ThreadsBackend
    from dsi_core.events import TargetDone
    from dsi_core.sampling import Decided

    c = _coordinator("dsi", 2)
    seen: list[object] = []
    on_event = c.on_event

    def recording(ev, now=0.0):
        if isinstance(ev, TargetDone):
            seen.extend(ev.rows)
        return on_event(ev, now)

    c.on_event = recording  # type: ignore[method-assign]
    ThreadsBackend(2).run(c, TARGET, DRAFTER, [1, 2])
    assert seen and all(isinstance(r, Decided) for r in seen)


class StuckDrafter(ToyModel):
    """A drafter whose second call blocks until released and never looks at a stop flag."""

    def __init__(self, base: ToyModel, release: threading.Event) -> None:
        super().__init__(base.vocab_size, base.fn, "stuck-drafter")
        self.release = release
        self.entered = threading.Event()

    def propose(self, state, tokens):
        if self.calls >= 1:
            self.entered.set()
            self.release.wait(30)
        return super().propose(state, tokens)


class StuckTarget(ToyModel):
    """A target that waits (at most 30 s) until the drafter is stuck, so the run ends while it
    is: DSI's chain needs no drafter."""

    def __init__(self, base: ToyModel, drafter: StuckDrafter) -> None:
        super().__init__(base.vocab_size, base.fn, "waits")
        self.drafter = drafter

    def rows(self, state, tokens, start):
        self.drafter.entered.wait(30)
        return super().rows(state, tokens, start)


def test_a_run_that_ends_normally_warns_about_a_thread_left_in_a_model_call():
    """The run itself succeeds (returns its wall time, equal to the stats'); the drafter's
    thread, still inside a call that ignores its stop flag, is listed and warned about (at the
    caller's line); it ends once the call returns."""
    import warnings

    from dsi_core.backends.threads import ThreadsBackend

    release = threading.Event()
    drafter = StuckDrafter(DRAFTER, release)
    backend = ThreadsBackend(2, join_timeout_s=0.2)
    c = _coordinator("dsi", 2)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            wall = backend.run(c, StuckTarget(TARGET, drafter), drafter, [1, 2])
    finally:
        release.set()
    assert c.done and isinstance(wall, float) and wall == c.stats.wall_time > 0
    assert backend.report.abandoned == ["dsi-drafter"]
    ours = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(ours) == 1 and "dsi-drafter" in str(ours[0].message)
    assert ours[0].filename == __file__  # stacklevel: the line that called run()
    for t in threading.enumerate():
        if t.name == "dsi-drafter":
            t.join(10)


def test_an_error_notes_the_stuck_threads_and_does_not_also_warn():
    """After an error the stuck threads are named in the exception's note; no warning too."""
    import warnings

    from dsi_core.backends.threads import ThreadsBackend

    release = threading.Event()
    drafter = StuckDrafter(DRAFTER, release)
    backend = ThreadsBackend(2, join_timeout_s=0.2, timeout_s=0.5)

    class Never(ToyModel):  # a target that waits for the release too: the deadline hits
        def rows(self, state, tokens, start):
            release.wait(30)
            return super().rows(state, tokens, start)

    from dsi_core.errors import DeadlineExceededError

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(DeadlineExceededError) as info:
                backend.run(_coordinator("dsi", 2), Never(5, TARGET.fn), drafter, [1, 2])
    finally:
        release.set()
    assert "abandoned" in " ".join(info.value.__notes__)
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    for t in threading.enumerate():
        if t.name.startswith("dsi-"):
            t.join(10)


class _FakeThread:
    """Stands in for a worker thread stuck in a model call: records how long it is waited for."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.inbox: queue.Queue = queue.Queue()
        self.cancelled: set[int] = set()
        self.waited: list[float] = []

    def join(self, timeout: float | None = None) -> None:
        self.waited.append(timeout)

    def is_alive(self) -> bool:
        return True


def test_stuck_threads_get_the_join_timeout_after_a_clean_run_and_at_most_1s_after_an_error():
    """The policy, not a timing: ``_stop`` waits up to ``join_timeout_s`` for a thread after a
    run that ended normally, and at most 1 s after an error (the call may never return)."""
    from dsi_core.backends.threads import ThreadsBackend

    for clean, cap in ((True, 30.0), (False, 1.0)):
        fakes = [_FakeThread("dsi-target-0"), _FakeThread("dsi-drafter")]
        stuck = ThreadsBackend(1, join_timeout_s=30.0)._stop(fakes, clean)  # type: ignore[arg-type]
        assert stuck == ["dsi-target-0", "dsi-drafter"]
        assert all(f.inbox.get_nowait() is None for f in fakes)  # each told to stop
        assert all(123 in f.cancelled for f in fakes)  # and every job cancelled
        first = fakes[0].waited[0]
        assert cap - 0.5 < first <= cap
