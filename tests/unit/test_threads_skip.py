"""Threads backend: a job cancelled before its thread picks it up is acked, never computed."""

from __future__ import annotations

import queue

from dsi_core.backends.threads import _Thread
from dsi_core.backends.worker import ServerWorker
from dsi_core.events import StartTarget, TargetAborted, TargetDone
from dsi_core.testing.toy import random_table_model


def test_cancelled_queued_job_is_skipped_not_computed():
    model = random_table_model(4, 1)
    out: queue.Queue = queue.Queue()
    th = _Thread(0, "target-0", ServerWorker(model, [1], 1.0), out)
    th.cancelled.add(7)  # the cancel reached the thread before the job did: deterministic
    th.inbox.put(StartTarget(7, 1, (2,), 1, "chain"))
    th.inbox.put(StartTarget(8, 1, (2,), 1, "chain"))
    th.inbox.put(None)
    th.start()
    th.join(10)
    assert not th.is_alive()
    events = [out.get_nowait()[1].event for _ in range(2)]
    assert isinstance(events[0], TargetAborted) and events[0].task_id == 7
    assert isinstance(events[1], TargetDone) and events[1].task_id == 8
    assert model.calls == 1  # only job 8 ran a forward
