"""The decision core: DSI, SI and non-SI as one pure state machine.

Events go in (a draft arrived, a target task finished or was aborted), actions come out
(start a draft, start a target task, cancel). No threads, no torch, no clock: backends own
execution and time and pass timestamps in only for the trace. Every decision DSI makes lives
in this file:

* **Commit** (``_advance``): position ``n`` (the first undecided one) is decided once the
  target row ``p_n`` is known, through :class:`~dsi_core.sampling.DecisionRule`. In
  ``rejection`` mode a speculative run also waits for the draft at ``n``: every position is
  decided *with* its draft, so the output is a function of (seed, drafter, prompt) alone.
* **Segments**: a segment starts at the committed length after the start, after a rejected
  draft, or when a position was decided without a draft (the drafter fell behind, or SI's bonus
  token). Starting a segment preempts every in-flight task and draft (their input contains the
  rejected draft, or all their rows are decided) and restarts the drafter on the committed
  prefix. The epoch counts segments; results of preempted work are dropped, never committed.
* **DSI** (``algorithm="dsi"``): the drafter never waits. The *chain*: whenever no live task
  covers the row of position ``n``, a zero-draft task on the committed prefix starts (at each
  segment start, and whenever the chain outruns the blocks) -- this is what keeps DSI no slower
  than non-SI. The *blocks*: each time ``k`` more drafts of the segment exist, a task verifies
  the newest drafts; its input ends at the newest draft, so its last row is the bonus position
  that decides the next block's first draft. A task waits (FIFO) when all ``S`` servers are
  busy; a later start covers every draft that arrived meanwhile.
* **SI**: drafts ``k`` tokens, verifies them with one task (rows for the ``k`` drafts plus the
  bonus position), drafter idle meanwhile -- except in ``rejection`` mode's final segment,
  whose last draft (no task input needs it, its decision does) usually starts in the same step
  as the task and runs beside it (the finding in proofs/README.md, "Rejection mode"). In
  ``greedy``/``coupled`` mode the bonus token is
  committed directly; in ``rejection`` mode its row is kept and decides the next segment's
  first draft (SI with a deferred bonus), so SI and DSI emit identical tokens.
* **non-SI**: the chain alone, no drafter.

Positions count generated tokens from 0; contexts exclude the prompt (backends prepend it).
"""

from __future__ import annotations

import sys
import zlib
from array import array
from dataclasses import dataclass, field
from typing import Any

from dsi_core.config import ALGORITHMS, MAX_NEW_TOKENS_LIMIT, Config
from dsi_core.errors import BackendError, DrafterError
from dsi_core.events import (
    Action,
    Cancel,
    DraftAborted,
    DraftDone,
    Event,
    StartDraft,
    StartTarget,
    TargetAborted,
    TargetDone,
    TraceEvent,
)
from dsi_core.sampling import DecisionRule

__all__ = [
    "ALGORITHMS",
    "MAX_NEW_TOKENS_LIMIT",
    "Action",
    "Cancel",
    "Config",
    "Coordinator",
    "DraftAborted",
    "DraftDone",
    "Event",
    "StartDraft",
    "StartTarget",
    "Stats",
    "TargetAborted",
    "TargetDone",
    "TraceEvent",
]


@dataclass
class Stats:
    """Counters of one run. ``acceptance_rate`` = accepted / drafts that met a decision."""

    drafts_started: int = 0
    drafts_completed: int = 0
    drafts_accepted: int = 0
    drafts_rejected: int = 0
    draft_preempted: int = 0
    target_started: int = 0
    target_completed: int = 0
    target_preempted: int = 0
    stale_results_dropped: int = 0
    chain_tasks: int = 0
    block_tasks: int = 0
    segments: int = 0
    max_busy_servers: int = 0
    task_waits: int = 0  # times a due task found every server busy (once per episode)
    wall_time: float = 0.0

    @property
    def acceptance_rate(self) -> float:
        judged = self.drafts_accepted + self.drafts_rejected
        return self.drafts_accepted / judged if judged else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["acceptance_rate"] = self.acceptance_rate
        return d


@dataclass
class _Task:
    id: int
    kind: str
    context_len: int  # L: rows for positions lo..L
    lo: int
    cancelled: bool = False


@dataclass
class _Draft:
    token: int
    q: Any


# ----------------------------------------------------------------------------- core


@dataclass
class Coordinator:
    """The DSI/SI/non-SI state machine. Drive it with :meth:`start` and :meth:`on_event`."""

    config: Config
    rule: DecisionRule
    committed: list[int] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)
    trace: list[TraceEvent] = field(default_factory=list)
    done: bool = False

    def __post_init__(self) -> None:
        c = self.config
        self._speculative = c.algorithm != "nonsi"
        self._servers = c.effective_servers
        self._drafts: list[_Draft] = []
        self._rows: dict[int, Any] = {}
        self._row_src: dict[int, int] = {}  # position -> id of the task whose row is stored
        self._tasks: dict[int, _Task] = {}
        self._draft_req: dict[int, tuple[int, bool]] = {}  # id -> (epoch, cancelled)
        self._next_id = 0
        self.epoch = 0
        self._verified_upto = -1  # last row position scheduled by this segment's tasks
        self._now = 0.0
        self._started = False
        self._waiting = False

    # ---------------------------------------------------------------- public API

    @property
    def n(self) -> int:
        """Number of committed tokens (= first undecided position)."""
        return len(self.committed)

    def start(self, now: float = 0.0) -> list[Action]:
        if self._started:
            raise RuntimeError("coordinator already started")
        self._started = True
        self._now = now
        c = self.config
        self._log(
            "config",
            detail=f"algorithm={c.algorithm} mode={self.rule.mode} lookahead={c.lookahead} "
            f"servers={self._servers} max_new_tokens={c.max_new_tokens} "
            f"eos={c.eos_token_id if c.eos_token_id is not None else -1}",
        )
        self._new_segment()
        return self._schedule()

    def on_event(self, event: Event, now: float = 0.0) -> list[Action]:
        """Feed one backend event; returns the actions to execute, in order."""
        self._now = now
        actions: list[Action] = []
        if isinstance(event, DraftDone | DraftAborted):
            self._on_draft(event)
        elif isinstance(event, TargetDone | TargetAborted):
            self._on_target(event)
        else:
            raise BackendError(f"unknown event {event!r}")
        if not self.done:
            self._advance(actions)
        actions.extend(self._schedule())
        return actions

    @property
    def busy(self) -> bool:
        """Whether any draft request or target task is still unacknowledged."""
        return bool(self._tasks) or bool(self._draft_req)

    # ---------------------------------------------------------------- events

    def _on_draft(self, ev: DraftDone | DraftAborted) -> None:
        entry = self._draft_req.pop(ev.request_id, None)
        if entry is None:
            raise BackendError(f"result for unknown draft request {ev.request_id}")
        epoch, cancelled = entry
        if isinstance(ev, DraftAborted):
            self._log("draft_aborted", ev.request_id)
            return
        self.stats.drafts_completed += 1
        if cancelled or epoch != self.epoch or self.done:
            self.stats.stale_results_dropped += 1
            self._log("stale", ev.request_id, detail="draft")
            return
        pos = self.n + len(self._drafts)
        if ev.token is not None:
            token = int(ev.token)
            if ev.q is not None:
                if not 0 <= token < len(ev.q):
                    raise DrafterError(f"drafter token {token} outside its row q")
                if not ev.q[token] > 0:
                    raise DrafterError(
                        f"drafter proposed token {token} at position {pos} but its row q gives "
                        "it probability 0: q must be the exact row the draft was sampled from"
                    )
        else:
            if ev.q is None:
                raise BackendError("drafter returned neither a token nor a row")
            token = self.rule.draft_token(pos, ev.q)
        self._drafts.append(_Draft(token, ev.q))
        self._log("draft_done", ev.request_id, pos, detail=str(token), data=(int(token),))

    def _on_target(self, ev: TargetDone | TargetAborted) -> None:
        task = self._tasks.pop(ev.task_id, None)
        if task is None:
            raise BackendError(f"result for unknown target task {ev.task_id}")
        if isinstance(ev, TargetAborted):
            self._log("task_aborted", task.id)
            return
        self.stats.target_completed += 1
        if task.cancelled or self.done:
            self.stats.stale_results_dropped += 1
            self._log("stale", task.id, detail=task.kind)
            return
        expected = task.context_len - task.lo + 1
        if len(ev.rows) != expected:
            raise BackendError(f"task {task.id}: {len(ev.rows)} rows, expected {expected}")
        self._log("task_done", task.id, task.context_len, detail=task.kind)
        for i, row in enumerate(ev.rows):
            pos = task.lo + i
            if pos >= self.n:
                self._rows[pos] = row
                self._row_src[pos] = task.id

    # ---------------------------------------------------------------- commit logic

    def _advance(self, actions: list[Action]) -> None:
        """Decide positions in order while their rows (and, if needed, drafts) are known."""
        cfg = self.config
        while not self.done:
            n = self.n
            p = self._rows.get(n)
            if p is None:
                return
            draft = self._drafts[0] if self._drafts else None
            if draft is None and self._speculative and self.rule.needs_draft:
                return  # rejection mode decides every speculative position with its draft
            if draft is None:
                token, _ = self.rule.decide(n, p)
                accepted = None
            else:
                token, accepted = self.rule.decide(n, p, draft.token, draft.q)
            self.committed.append(token)
            del self._rows[n]
            src = self._row_src.pop(n)
            self._log(
                "commit",
                src,
                pos=n,
                detail=str(token),
                data=(int(token), -1 if draft is None else int(draft.token)),
            )
            if cfg.eos_token_id is not None and token == cfg.eos_token_id:
                self.done = True
            if self.n >= cfg.max_new_tokens:
                self.done = True
            if accepted is True:
                self._drafts.pop(0)
                self.stats.drafts_accepted += 1
                self._drop_useless(actions)
            elif accepted is False:
                self.stats.drafts_rejected += 1
                self._log("reject", pos=n)
                self._new_segment(actions)
            elif self._speculative:
                self._new_segment(actions)  # decided without a draft: restart the drafter
        if self.done:
            self._cancel_all(actions)

    def _new_segment(self, actions: list[Action] | None = None) -> None:
        """Invalidate every draft, row and in-flight task; restart from the committed prefix."""
        if actions is not None:
            self._cancel_all(actions)
        self.epoch += 1
        self.stats.segments += 1
        self._drafts.clear()
        self._rows.clear()
        self._row_src.clear()
        self._log("segment", pos=self.n)
        # DSI's chain task covers the segment's first row; SI's first block does.
        self._verified_upto = self.n if self.config.algorithm == "dsi" else self.n - 1

    def _cancel_all(self, actions: list[Action]) -> None:
        for task in self._tasks.values():
            self._cancel_task(task, actions)
        for rid, (epoch, cancelled) in list(self._draft_req.items()):
            if not cancelled:
                self._draft_req[rid] = (epoch, True)
                self.stats.draft_preempted += 1
                self._log("preempt", rid, detail="draft")
                actions.append(Cancel("draft", rid))

    def _cancel_task(self, task: _Task, actions: list[Action]) -> None:
        if task.cancelled:
            return
        task.cancelled = True
        self.stats.target_preempted += 1
        self._log("preempt", task.id, task.context_len, detail=task.kind)
        actions.append(Cancel("target", task.id))

    def _drop_useless(self, actions: list[Action]) -> None:
        """Preempt live tasks whose rows are all decided already."""
        for task in self._tasks.values():
            if not task.cancelled and task.context_len < self.n:
                self._cancel_task(task, actions)

    # ---------------------------------------------------------------- scheduling

    def _last_needed_row(self) -> int:
        last = self.config.max_new_tokens - 1
        eos = self.config.eos_token_id
        if eos is not None:
            for i, d in enumerate(self._drafts):
                if d.token == eos:
                    return min(last, self.n + i)
        return last

    def _drafting_finished(self) -> bool:
        """No further draft can ever be needed (the newest draft is at the last needed row)."""
        nxt = self.n + len(self._drafts)
        if nxt > self._last_needed_row():
            return True
        # SI in greedy/coupled mode never drafts the last position: no row would judge it
        return (
            self.config.algorithm == "si"
            and not self.rule.needs_draft
            and nxt >= self._last_needed_row()
        )

    def _final_input_complete(self) -> bool:
        """Every draft the final verification needs exists (its input ends at the last row)."""
        return self.n + len(self._drafts) >= self._last_needed_row()

    def _row_covered(self, pos: int) -> bool:
        if pos in self._rows:
            return True
        return any(not t.cancelled and t.lo <= pos <= t.context_len for t in self._tasks.values())

    def _schedule(self) -> list[Action]:
        actions: list[Action] = []
        if self.done or not self._started:
            return actions
        cfg = self.config
        nxt = self.n + len(self._drafts)  # next draft position (one past the newest draft)
        live = [t for t in self._tasks.values() if not t.cancelled]
        # -- drafter
        if self._speculative and not self._draft_req and not self._drafting_finished():
            if cfg.algorithm == "dsi" or (
                not live and (nxt - 1 - self._verified_upto) < cfg.lookahead
            ):
                rid = self._new_id()
                self._draft_req[rid] = (self.epoch, False)
                self.stats.drafts_started += 1
                ctx = tuple(self.committed) + tuple(d.token for d in self._drafts)
                self._log("draft_start", rid, nxt)
                actions.append(StartDraft(rid, self.epoch, ctx))
        # -- target tasks
        while True:
            task = self._due_task()
            if task is None:
                break
            if len(self._tasks) >= self._servers:
                if not self._waiting:  # count each episode of a due task waiting once
                    self.stats.task_waits += 1
                    self._waiting = True
                break
            self._waiting = False
            kind, ctx_len, lo = task
            tid = self._new_id()
            self._tasks[tid] = _Task(tid, kind, ctx_len, lo)
            if kind == "block":
                self._verified_upto = ctx_len
                self.stats.block_tasks += 1
            else:
                self.stats.chain_tasks += 1
            self.stats.target_started += 1
            self.stats.max_busy_servers = max(self.stats.max_busy_servers, len(self._tasks))
            ctx = (tuple(self.committed) + tuple(d.token for d in self._drafts))[:ctx_len]
            self._log("task_start", tid, ctx_len, detail=kind, data=(lo, self.n, fingerprint(ctx)))
            actions.append(StartTarget(tid, self.epoch, ctx, lo, kind))
        return actions

    def _due_task(self) -> tuple[str, int, int] | None:
        """The next target task the policy wants: (kind, context length L, first row lo)."""
        cfg = self.config
        n = self.n
        if cfg.algorithm in ("dsi", "nonsi") and not self._row_covered(n):
            return ("chain", n, n)
        if not self._speculative:
            return None
        nxt = self.n + len(self._drafts)
        last = min(nxt, self._last_needed_row())
        if last < n:
            return None
        if cfg.algorithm == "dsi":
            due = nxt - self._verified_upto >= cfg.lookahead
        else:
            if any(not t.cancelled for t in self._tasks.values()):
                return None
            due = nxt - 1 - self._verified_upto >= cfg.lookahead
        if not due and not (self._final_input_complete() and last > self._verified_upto):
            return None
        lo = max(self._verified_upto + 1, n)
        if last < lo:
            return None
        return ("block", last, lo)

    # ---------------------------------------------------------------- helpers

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _log(
        self, what: str, id: int = -1, pos: int = -1, detail: str = "", data: tuple = ()
    ) -> None:
        self.trace.append(TraceEvent(self._now, what, id, pos, detail, self.epoch, data))


def fingerprint(tokens: tuple[int, ...]) -> int:
    """CRC-32 (``zlib.crc32``) of a context's tokens as int64 little-endian, 0 for the empty
    context: lets a trace checker confirm a task's input (another implementation writing a
    trace computes the same number)."""
    a = array("q", tokens)
    if sys.byteorder == "big":
        a.byteswap()
    return zlib.crc32(a.tobytes())
