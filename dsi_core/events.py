"""The protocol between the coordinator and the backends: actions out, events in.

Actions (``StartDraft``, ``StartTarget``, ``Cancel``) are what the coordinator asks a backend to
do; events (``DraftDone``, ``DraftAborted``, ``TargetDone``, ``TargetAborted``) are what the
backend reports back. Every message is a small frozen record of plain values (token ids, ids,
rows), so it can cross a thread, a process or a machine unchanged. The epoch on an action tells
a backend which segment it belongs to: work of an older epoch can be skipped without asking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class StartDraft:
    """Ask the drafter for the token at position ``len(context)`` given ``context``."""

    request_id: int
    epoch: int
    context: tuple[int, ...]


@dataclass(frozen=True)
class StartTarget:
    """Run the target on ``context``; return rows for positions ``lo .. len(context)``."""

    task_id: int
    epoch: int
    context: tuple[int, ...]
    lo: int
    kind: Literal["chain", "block"]  # chain: zero drafts beyond the committed prefix


@dataclass(frozen=True)
class Cancel:
    """Preempt a draft request or target task; the backend must still ack it."""

    what: Literal["draft", "target"]
    id: int


@dataclass(frozen=True)
class DraftDone:
    request_id: int
    q: Any = None  # the row the draft was (or is to be) sampled from; None = one-hot
    token: int | None = None  # a token the drafter proposed itself (then q must contain it)


@dataclass(frozen=True)
class DraftAborted:
    request_id: int


@dataclass(frozen=True)
class TargetDone:
    task_id: int
    rows: tuple[Any, ...]  # rows for positions lo .. len(context)


@dataclass(frozen=True)
class TargetAborted:
    task_id: int


@dataclass(frozen=True)
class TraceEvent:
    """One line of a run's trace; ``dsi_core.checker`` documents what each kind carries.

    ``epoch`` is the coordinator's segment counter when the line was written; ``data`` holds
    the integers a checker needs: ``task_start`` (lo, committed length, context fingerprint),
    ``commit`` (token, draft token or -1), ``draft_done`` (token,).
    """

    time: float
    what: str  # config, segment, draft_start, draft_done, task_start, task_done, preempt, ...
    id: int = -1  # draft request / task id; for a commit, the task whose row decided it
    pos: int = -1
    detail: str = ""
    epoch: int = -1
    data: tuple[int, ...] = ()


Action = StartDraft | StartTarget | Cancel
Event = DraftDone | DraftAborted | TargetDone | TargetAborted
