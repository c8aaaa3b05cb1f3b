"""The timeline reads outcomes off the trace correctly and writes a PNG."""

from __future__ import annotations

from fractions import Fraction

from dsi_core import generate
from dsi_core.experiments.timeline import plot_timeline, spans
from dsi_core.testing.toy import random_table_model


def test_spans_cover_every_task_with_an_outcome(tmp_path):
    t, d = random_table_model(4, 1), random_table_model(4, 2)
    r = generate(
        [1, 2],
        target=t,
        drafter=d,
        backend="simulated",
        lookahead=2,
        servers=3,
        max_new_tokens=20,
        sim_draft_latency=Fraction(1, 4),
    )
    sp = spans(r.trace)
    targets = [s for s in sp if s.kind == "target"]
    assert len(targets) == r.stats.target_started
    assert sum(s.outcome == "rejected" for s in targets) == r.stats.drafts_rejected
    assert sum(s.outcome == "preempted" for s in targets) == r.stats.target_preempted
    assert all(s.end >= s.start for s in sp)
    out = plot_timeline(r, str(tmp_path / "t.png"))
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
