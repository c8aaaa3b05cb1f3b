"""Deadlines on the ``threads`` backend: what stops, and what is reported when nothing can.

A preemptible model (HF, checked between decoder layers) is stopped by the deadline and every
worker thread is joined before ``generate`` raises. A model stuck inside a call that checks no
stop flag cannot be stopped from another thread in Python: the run still ends at the deadline,
and the error names the abandoned threads (the ``processes`` backend kills them instead, see
tests/integration/test_processes.py). No check asserts a duration.
"""

from __future__ import annotations

import threading
import time
import warnings

import pytest

from dsi_core import generate
from dsi_core.backends.threads import ThreadsBackend
from dsi_core.config import Config
from dsi_core.coordinator import Coordinator
from dsi_core.errors import DeadlineExceededError
from dsi_core.models.hf import tiny_llama
from dsi_core.sampling import DecisionRule, KeyedNoise
from dsi_core.testing.toy import ToyModel, random_table_model

TARGET = random_table_model(5, seed=11, exact=False)
DRAFTER = random_table_model(5, seed=12, exact=False)


def dsi_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("dsi-")]


class Stuck(ToyModel):
    """A target whose forward blocks on an event and never looks at a stop flag."""

    def __init__(self, release: threading.Event) -> None:
        super().__init__(TARGET.vocab_size, TARGET.fn, "stuck")
        self.release = release

    def rows(self, state, tokens, start):
        self.release.wait(30)
        return super().rows(state, tokens, start)


def test_a_stuck_model_is_named_as_abandoned_and_ends_when_its_call_returns():
    assert dsi_threads() == []
    release = threading.Event()
    try:
        with pytest.raises(DeadlineExceededError) as info:
            generate(
                [1, 2],
                target=Stuck(release),
                drafter=DRAFTER,
                backend="threads",
                max_new_tokens=8,
                servers=2,
                task_timeout_s=0.3,
            )
        notes = " ".join(getattr(info.value, "__notes__", []))
        stuck = [t.name for t in dsi_threads()]
        assert stuck and all(name in notes for name in stuck), (stuck, notes)
        assert "abandoned" in notes and "processes" in notes
    finally:
        release.set()
    for t in dsi_threads():
        t.join(10)
    assert dsi_threads() == []  # the abandoned threads end once their call returns


def _slow_layers(layers: int, sleep_s: float):
    m = tiny_llama(64, seed=0, layers=layers)
    for layer in m.model.model.layers:
        layer.register_forward_hook(lambda mod, args, out: time.sleep(sleep_s))
    return m


def test_a_preemptible_model_is_stopped_by_the_deadline_and_every_thread_joined():
    target = _slow_layers(layers=6, sleep_s=0.4)  # 2.4 s a forward (> the 1 s join grace)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no thread may be reported as abandoned
        with pytest.raises(DeadlineExceededError) as info:
            generate(
                [1, 2, 3],
                target=target,
                drafter=tiny_llama(64, seed=1),
                backend="threads",
                max_new_tokens=16,
                servers=2,
                timeout_s=0.4,
            )
    assert not any("abandoned" in n for n in getattr(info.value, "__notes__", []))
    assert dsi_threads() == []  # joined before generate raised


def test_the_report_lists_no_abandoned_thread_after_a_normal_run():
    backend = ThreadsBackend(servers=2)
    config = Config(algorithm="dsi", lookahead=2, servers=2, max_new_tokens=6, mode="greedy")
    coord = Coordinator(config, DecisionRule("greedy", KeyedNoise(0)))
    backend.run(coord, TARGET, DRAFTER, [1, 2])
    assert coord.done and backend.report.abandoned == []
    assert backend.report.as_dict()["abandoned_threads"] == []
