"""Draw one run's event trace: the drafter and each target server over time.

Target tasks are laid on server lanes in start order (first free lane; the coordinator does
not name servers, so lanes are a faithful packing, not worker ids). Colours: a task whose rows
were used (``completed``), one whose result decided a rejection (``rejected``), one cancelled
and acked before it finished (``preempted``) and one whose result arrived after its
cancellation and was dropped (``stale``). Commits are ticks on the top lane, rejections red.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

COLOURS = {
    "completed": "#2a9d8f",
    "rejected": "#e76f51",
    "preempted": "#adb5bd",
    "stale": "#f4a261",
    "running": "#457b9d",
}


@dataclass
class Span:
    kind: str  # "draft" or "target"
    id: int
    start: float
    end: float
    outcome: str
    label: str = ""


def spans(trace: list[Any]) -> list[Span]:
    """Turn trace events into draft and task intervals with outcomes."""
    open_: dict[tuple[str, int], Span] = {}
    done: list[Span] = []
    cancelled: set[tuple[str, int]] = set()
    last_time = 0.0
    for i, e in enumerate(trace):
        t = float(e.time)
        last_time = max(last_time, t)
        if e.what == "draft_start":
            open_[("draft", e.id)] = Span("draft", e.id, t, t, "running", f"d{e.pos}")
        elif e.what == "task_start":
            open_[("target", e.id)] = Span("target", e.id, t, t, "running", e.detail)
        elif e.what == "preempt":
            cancelled.add(("draft" if e.detail == "draft" else "target", e.id))
        elif e.what in ("draft_done", "task_done", "draft_aborted", "task_aborted", "stale"):
            kind = "draft" if e.what.startswith("draft") or e.detail == "draft" else "target"
            sp = open_.pop((kind, e.id), None)
            if sp is None:
                continue
            sp.end = t
            if e.what == "stale":
                sp.outcome = "stale"
            elif e.what.endswith("aborted"):
                sp.outcome = "preempted"
            else:
                rejected = kind == "target" and any(
                    f.what == "reject" and float(f.time) == t for f in trace[i + 1 : i + 40]
                )
                sp.outcome = "rejected" if rejected else "completed"
            done.append(sp)
    for sp in open_.values():  # still running when the run ended
        sp.end = last_time
        sp.outcome = "preempted" if (sp.kind, sp.id) in cancelled else "running"
        done.append(sp)
    return done


def plot_timeline(result: Any, path: str, title: str | None = None) -> str:
    """Save a PNG of ``result.trace`` (a :class:`~dsi_core.api.Result`) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    sp = spans(result.trace)
    lanes: list[float] = []  # end time of the last task on each server lane
    placed: list[tuple[int, Span]] = []
    for s in sorted((s for s in sp if s.kind == "target"), key=lambda s: (s.start, s.id)):
        for i, end in enumerate(lanes):
            if end <= s.start:
                lanes[i] = s.end
                placed.append((i, s))
                break
        else:
            lanes.append(s.end)
            placed.append((len(lanes) - 1, s))
    n_lanes = len(lanes)
    fig_h = 1.6 + 0.45 * (n_lanes + 2)
    fig, ax = plt.subplots(figsize=(12, fig_h))
    y_draft = n_lanes
    for s in sp:
        if s.kind == "draft":
            ax.barh(
                y_draft,
                max(s.end - s.start, 1e-9),
                left=s.start,
                height=0.6,
                color=COLOURS[s.outcome],
                edgecolor="white",
                linewidth=0.3,
            )
    for lane, s in placed:
        ax.barh(
            lane,
            max(s.end - s.start, 1e-9),
            left=s.start,
            height=0.6,
            color=COLOURS[s.outcome],
            edgecolor="black",
            linewidth=0.4,
            hatch="//" if s.label == "chain" else None,
        )
    commits = [float(e.time) for e in result.trace if e.what == "commit"]
    rejects = [float(e.time) for e in result.trace if e.what == "reject"]
    y_commit = n_lanes + 1
    ax.vlines(commits, y_commit - 0.3, y_commit + 0.3, color="#264653", linewidth=1)
    ax.vlines(rejects, y_commit - 0.3, y_commit + 0.3, color="#e63946", linewidth=2)
    ax.set_yticks(list(range(n_lanes)) + [y_draft, y_commit])
    ax.set_yticklabels([f"server {i}" for i in range(n_lanes)] + ["drafter", "commits"])
    ax.set_xlabel("time (s)" if result.settings.get("backend") == "threads" else "time")
    st = result.settings
    ax.set_title(
        title
        or (
            f"{st.get('algorithm', '').upper()} k={st.get('lookahead')} S={st.get('servers')} "
            f"{st.get('mode')} - {len(result.tokens)} tokens, acceptance "
            f"{result.stats.acceptance_rate:.2f}, target forwards {result.stats.target_started} "
            f"({result.stats.target_preempted} preempted)"
        )
    )
    handles = [Patch(color=c, label=k) for k, c in COLOURS.items() if k != "running"]
    handles.append(Patch(facecolor="white", edgecolor="black", hatch="//", label="chain task"))
    ax.legend(
        handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=5, frameon=False
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
