"""The ``processes`` backend's worker processes themselves: they leave Ctrl-C to the parent
(which stops them), and they watch their parent at a fixed interval and exit when it is gone.

No check asserts a duration.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from dsi_core.backends import processes
from dsi_core.backends.processes import ProcessesBackend
from dsi_core.config import Config
from dsi_core.coordinator import Coordinator
from dsi_core.sampling import DecisionRule, KeyedNoise
from dsi_core.testing.toy import random_table_model

TARGET = random_table_model(5, seed=11, exact=False)
DRAFTER = random_table_model(5, seed=12, exact=False)


def _greedy_run(backend: ProcessesBackend, prompt: list[int]) -> list[int]:
    coord = Coordinator(Config("dsi", 2, 2, 10), DecisionRule("greedy", KeyedNoise(0)))
    backend.run(coord, TARGET, DRAFTER, prompt)
    return list(coord.committed)


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
    assert not th.is_alive()
    if parent_alive:
        assert fake_time.sleeps == [0.25] and fake_os.exits == []
    else:
        assert fake_os.exits == [0] and fake_time.sleeps == []
