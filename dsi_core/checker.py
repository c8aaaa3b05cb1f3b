"""Trace checker: replay a run's event trace and check the coordinator's invariants.

Any backend's run (simulated, threads, processes) leaves the coordinator's trace
(``Result.trace``, or the ``"trace"`` list of ``dsi generate --json --trace``). The checker
replays it line by line with its own small state (it does not call the coordinator) and
reports every line that breaks one of these invariants:

* **prefix**: commits come in order, each position exactly once; the committed prefix only
  grows; nothing is committed after EOS or the token budget.
* **servers**: at most ``S`` target tasks physically run at once; a preempted task keeps its
  server until the backend acks it (``task_aborted`` or a ``stale`` result), so cancelled but
  unacknowledged tasks count. At most one draft request is in flight.
* **stale**: no result of a preempted task or draft is used: a preempted job may only end
  ``stale`` or ``aborted``, and no commit reads a row of a preempted task.
* **epoch / prefix rows**: every commit reads a row delivered in the current epoch (segment) by
  a task whose input, reconstructed from the commits and the epoch's drafts and confirmed by
  the context fingerprint logged at ``task_start``, equals the committed prefix up to the
  committed position; the task's rows cover that position.
* **drafts**: drafts of one segment form a chain from the segment's first position; a commit
  that used a draft committed it iff no ``reject`` follows; in ``rejection`` mode every
  speculative position is decided with its draft.
* **chain** (DSI and non-SI): whenever the coordinator waits for an event, the row of the first
  undecided position is stored or covered by a live (not preempted) task, unless all ``S``
  servers are physically busy.
* **segments**: a new segment starts only after every in-flight job was preempted.
* **useless** (efficiency): whenever the coordinator waits for an event, no live task has
  all its rows decided (such a task is preempted to free its server).

What each trace line carries (``dsi_core.events.TraceEvent``): ``config`` (detail: the run's
algorithm, mode, lookahead, servers, budget, EOS), ``segment`` (pos: committed length),
``draft_start`` / ``draft_done`` (pos, data ``(token,)``), ``task_start`` (pos: context length
``L``, detail: kind, data ``(lo, committed length, fingerprint)``; the fingerprint is
``zlib.crc32`` of the context's first ``L`` tokens as int64 little-endian, 0 when empty:
:func:`dsi_core.coordinator.fingerprint`), ``task_done``,
``task_aborted``, ``draft_aborted``, ``stale``, ``preempt``, ``commit`` (id: the task whose row
decided it, pos, data ``(token, draft token or -1)``), ``reject``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dsi_core.config import Config
from dsi_core.coordinator import fingerprint
from dsi_core.errors import DSIError

__all__ = [
    "TraceCheckError",
    "Violation",
    "assert_trace_ok",
    "check_trace",
    "checked",
    "load_trace",
]

_INCOMING = ("draft_done", "draft_aborted", "task_done", "task_aborted", "stale")


class TraceCheckError(DSIError, AssertionError):
    """A trace broke at least one invariant; ``violations`` lists them."""

    def __init__(self, violations: list[Violation]) -> None:
        self.violations = violations
        head = "; ".join(str(v) for v in violations[:5])
        more = f" (+{len(violations) - 5} more)" if len(violations) > 5 else ""
        super().__init__(f"{len(violations)} trace violation(s): {head}{more}")


@dataclass(frozen=True)
class Violation:
    """One broken invariant: the trace line's index, the invariant's name, what happened."""

    index: int
    invariant: str
    message: str

    def __str__(self) -> str:
        return f"line {self.index}: [{self.invariant}] {self.message}"


@dataclass
class _Line:
    what: str
    id: int
    pos: int
    detail: str
    epoch: int
    data: tuple[int, ...]


@dataclass
class _Job:
    kind: str  # "draft" or "target"
    epoch: int
    L: int = -1
    lo: int = -1
    base: int = -1
    cancelled: bool = False
    ended: bool = False
    delivered: bool = False


@dataclass
class _Settings:
    algorithm: str
    mode: str
    servers: int
    max_new_tokens: int
    eos: int | None


@dataclass
class _State:
    settings: _Settings | None
    out: list[Violation] = field(default_factory=list)
    committed: list[int] = field(default_factory=list)
    jobs: dict[int, _Job] = field(default_factory=dict)
    epoch: int = 0
    seg_start: int = 0
    drafts: dict[int, dict[int, int]] = field(default_factory=dict)  # epoch -> pos -> token
    rows: dict[int, int] = field(default_factory=dict)  # stored row position -> task id
    done: bool = False
    started: bool = False
    pending_reject: int = -1  # position whose commit differs from its draft


def _line(e: Any) -> _Line:
    if isinstance(e, Mapping):
        get = e.get
    else:

        def get(key: str, default: Any = None) -> Any:
            return getattr(e, key, default)

    what = get("what")
    if not isinstance(what, str):
        raise ValueError(f"trace line without a 'what': {e!r}")
    return _Line(
        what,
        int(get("id", -1)),
        int(get("pos", -1)),
        str(get("detail", "")),
        int(get("epoch", -1)),
        tuple(int(x) for x in (get("data", ()) or ())),
    )


def _settings_from(config: Config | None) -> _Settings | None:
    if config is None:
        return None
    return _Settings(
        config.algorithm,
        config.mode,
        config.effective_servers,
        config.max_new_tokens,
        config.eos_token_id,
    )


def _parse_config(detail: str) -> _Settings:
    kv = dict(part.split("=", 1) for part in detail.split())
    eos = int(kv["eos"])
    return _Settings(
        kv["algorithm"],
        kv["mode"],
        int(kv["servers"]),
        int(kv["max_new_tokens"]),
        None if eos < 0 else eos,
    )


def check_trace(trace: Iterable[Any], config: Config | None = None) -> list[Violation]:
    """Replay ``trace`` (TraceEvent objects or the dicts of ``Result.to_dict()``); list violations.

    ``config`` is needed only for traces without a ``config`` line (the coordinator writes one
    at start). Raises ``ValueError`` when the trace is not a trace at all (no config anywhere,
    a line without ``what``, a malformed config line).
    """
    lines = [_line(e) for e in trace]
    st = _State(_settings_from(config))
    for i, ln in enumerate(lines):
        if ln.what == "config":
            parsed = _parse_config(ln.detail)
            if st.settings is None:
                st.settings = parsed
            elif (parsed.servers, parsed.algorithm) != (st.settings.servers, st.settings.algorithm):
                _bad(st, i, "config", f"trace config {parsed} differs from the given config")
            continue
        if st.settings is None:
            raise ValueError("the trace has no config line; pass config=")
        if ln.what in _INCOMING:
            _check_chain(st, i)
        _step(st, i, ln)
    if st.settings is not None:
        _check_chain(st, len(lines))
        if st.pending_reject >= 0:
            _bad(st, len(lines), "drafts", f"draft at {st.pending_reject} differs, no reject")
        if st.done:
            for jid, job in st.jobs.items():
                if not job.ended and not job.cancelled:
                    _bad(st, len(lines), "segments", f"{job.kind} {jid} left running after done")
    return st.out


def assert_trace_ok(trace: Iterable[Any], config: Config | None = None) -> None:
    """Raise :class:`TraceCheckError` if :func:`check_trace` finds any violation."""
    found = check_trace(trace, config)
    if found:
        raise TraceCheckError(found)


def checked(result: Any, config: Config | None = None) -> Any:
    """Check ``result.trace`` (a :class:`~dsi_core.api.Result` or a coordinator) and return it.

    For tests: ``out = checked(generate(...))`` makes every real-backend run pass the checker.
    """
    assert_trace_ok(result.trace, config)
    return result


def load_trace(path: str) -> list[dict[str, Any]]:
    """Read a trace from JSON: a ``Result.to_dict()`` object with ``"trace"``, or a bare list."""
    with open(path, encoding="utf-8") as f:
        obj = json.load(f)
    if isinstance(obj, dict):
        if "trace" not in obj:
            raise ValueError("no 'trace' in the JSON object (run dsi generate --json --trace)")
        obj = obj["trace"]
    if not isinstance(obj, list):
        raise ValueError("a trace must be a JSON list of events")
    return obj


# ------------------------------------------------------------------------------ replay


def _bad(st: _State, i: int, invariant: str, message: str) -> None:
    st.out.append(Violation(i, invariant, message))


def _physical(st: _State, kind: str) -> int:
    return sum(1 for j in st.jobs.values() if j.kind == kind and not j.ended)


def _check_chain(st: _State, i: int) -> None:
    s = st.settings
    if s is None or not st.started or st.done:
        return
    n = len(st.committed)
    for jid, j in st.jobs.items():
        if j.kind == "target" and not j.ended and not j.cancelled and j.L < n:
            _bad(st, i, "useless", f"task {jid} (rows up to {j.L}) still live at {n}")
    if s.algorithm not in ("dsi", "nonsi"):
        return
    if n in st.rows:
        return
    live = any(
        j.kind == "target" and not j.ended and not j.cancelled and j.lo <= n <= j.L
        for j in st.jobs.values()
    )
    if not live and _physical(st, "target") < s.servers:
        _bad(st, i, "chain", f"row {n} is neither stored nor covered by a live task")


def _end(st: _State, i: int, ln: _Line, kinds: tuple[str, ...]) -> _Job | None:
    job = st.jobs.get(ln.id)
    if job is None or job.kind not in kinds:
        _bad(st, i, "protocol", f"{ln.what} for unknown {'/'.join(kinds)} {ln.id}")
        return None
    if job.ended:
        _bad(st, i, "protocol", f"{ln.what}: {job.kind} {ln.id} already ended")
        return None
    job.ended = True
    return job


def _step(st: _State, i: int, ln: _Line) -> None:  # noqa: C901 - one branch per line kind
    s = st.settings
    assert s is not None
    if ln.epoch >= 0 and ln.what != "segment" and ln.epoch != st.epoch:
        _bad(st, i, "epoch", f"{ln.what} written in epoch {ln.epoch}, replay is at {st.epoch}")
    n = len(st.committed)
    if st.pending_reject >= 0 and ln.what != "reject":
        _bad(st, i, "drafts", f"commit at {st.pending_reject} differs from its draft, no reject")
        st.pending_reject = -1
    w = ln.what
    if w == "segment":
        if st.started:
            for jid, job in st.jobs.items():
                if not job.ended and not job.cancelled:
                    _bad(st, i, "segments", f"segment starts while {job.kind} {jid} is live")
        st.started = True
        st.epoch += 1
        if ln.epoch >= 0 and ln.epoch != st.epoch:
            _bad(st, i, "epoch", f"segment to epoch {ln.epoch}, expected {st.epoch}")
            st.epoch = ln.epoch
        if ln.pos != n:
            _bad(st, i, "segments", f"segment at {ln.pos}, committed length {n}")
        st.seg_start = n
        st.rows.clear()
        st.drafts[st.epoch] = {}
    elif w == "draft_start":
        if ln.id in st.jobs:
            _bad(st, i, "protocol", f"id {ln.id} started twice")
        if _physical(st, "draft") >= 1:
            _bad(st, i, "servers", "a second draft request while one is in flight")
        want = st.seg_start + len(st.drafts.get(st.epoch, {}))
        if ln.pos != want:
            _bad(st, i, "drafts", f"draft requested for {ln.pos}, next draft position is {want}")
        st.jobs[ln.id] = _Job("draft", st.epoch)
    elif w == "draft_done":
        job = _end(st, i, ln, ("draft",))
        if job is None:
            return
        if job.cancelled:
            _bad(st, i, "stale", f"result of preempted draft {ln.id} used")
        if job.epoch != st.epoch:
            _bad(st, i, "stale", f"draft {ln.id} of epoch {job.epoch} used in {st.epoch}")
        chain = st.drafts.setdefault(st.epoch, {})
        want = st.seg_start + len(chain)
        if ln.pos != want:
            _bad(st, i, "drafts", f"draft at {ln.pos}, the segment's next position is {want}")
        token = ln.data[0] if ln.data else int(ln.detail)
        chain[ln.pos] = token
    elif w in ("draft_aborted", "task_aborted"):
        _end(st, i, ln, ("draft",) if w == "draft_aborted" else ("target",))
    elif w == "stale":
        _end(st, i, ln, ("draft", "target"))
    elif w == "preempt":
        job = st.jobs.get(ln.id)
        if job is None or job.ended:
            _bad(st, i, "protocol", f"preempt of a job that is not running: {ln.id}")
        elif job.cancelled:
            _bad(st, i, "protocol", f"{job.kind} {ln.id} preempted twice")
        else:
            job.cancelled = True
    elif w == "task_start":
        _task_start(st, i, ln, n)
    elif w == "task_done":
        job = _end(st, i, ln, ("target",))
        if job is None:
            return
        if job.cancelled:
            _bad(st, i, "stale", f"result of preempted task {ln.id} used")
            return
        if job.epoch != st.epoch:
            _bad(st, i, "stale", f"task {ln.id} of epoch {job.epoch} used in epoch {st.epoch}")
            return
        job.delivered = True
        for pos in range(max(job.lo, n), job.L + 1):
            st.rows[pos] = ln.id
    elif w == "commit":
        _commit(st, i, ln, n)
    elif w == "reject":
        if ln.pos != n - 1 or st.pending_reject != ln.pos:
            _bad(st, i, "drafts", f"reject at {ln.pos} without a differing draft commit there")
        st.pending_reject = -1


def _task_start(st: _State, i: int, ln: _Line, n: int) -> None:
    s = st.settings
    assert s is not None
    if ln.id in st.jobs:
        _bad(st, i, "protocol", f"id {ln.id} started twice")
    if st.done:
        _bad(st, i, "prefix", f"task {ln.id} started after the run was done")
    if _physical(st, "target") >= s.servers:
        _bad(st, i, "servers", f"task {ln.id} starts with {s.servers} tasks running (S)")
    lo, base, fp = ln.data if len(ln.data) == 3 else (ln.pos, n, None)
    if base != n:
        _bad(st, i, "prefix rows", f"task {ln.id} logged committed length {base}, replay has {n}")
    if not base <= lo <= ln.pos:
        _bad(st, i, "prefix rows", f"task {ln.id}: rows {lo}..{ln.pos} from prefix length {base}")
    chain = st.drafts.get(st.epoch, {})
    missing = [p for p in range(n, ln.pos) if p not in chain]
    if missing:
        _bad(st, i, "prefix rows", f"task {ln.id} input needs drafts {missing} of no record")
    elif fp is not None:
        ctx = tuple(st.committed) + tuple(chain[p] for p in range(n, ln.pos))
        if fingerprint(ctx[: ln.pos]) != fp:
            _bad(st, i, "prefix rows", f"task {ln.id} input is not committed + segment drafts")
    st.jobs[ln.id] = _Job("target", st.epoch, ln.pos, lo, n)


def _commit(st: _State, i: int, ln: _Line, n: int) -> None:
    s = st.settings
    assert s is not None
    if st.done:
        _bad(st, i, "prefix", f"commit at {ln.pos} after the run was done")
    if ln.pos != n:
        _bad(st, i, "prefix", f"commit at position {ln.pos}, expected {n}")
    token = ln.data[0] if ln.data else int(ln.detail)
    draft = ln.data[1] if len(ln.data) > 1 else None
    job = st.jobs.get(ln.id)
    if job is None or job.kind != "target":
        _bad(st, i, "prefix rows", f"commit at {ln.pos} names no target task ({ln.id})")
    else:
        if job.cancelled:
            _bad(st, i, "stale", f"commit at {ln.pos} reads a row of preempted task {ln.id}")
        if not job.delivered:
            _bad(st, i, "stale", f"commit at {ln.pos} reads task {ln.id}, which delivered nothing")
        if job.epoch != st.epoch:
            _bad(st, i, "epoch", f"commit at {ln.pos} reads task {ln.id} of epoch {job.epoch}")
        if not job.lo <= n <= job.L:
            _bad(st, i, "prefix rows", f"task {ln.id} has rows {job.lo}..{job.L}, not {n}")
        chain = st.drafts.get(job.epoch, {})
        for p in range(job.base, min(n, job.L)):
            if chain.get(p) != st.committed[p]:
                _bad(
                    st,
                    i,
                    "prefix rows",
                    f"task {ln.id} saw {chain.get(p)} at {p}, committed "
                    f"{st.committed[p]}: its row {n} is not conditioned on the committed prefix",
                )
                break
        if st.rows.get(n) != ln.id:
            _bad(st, i, "prefix rows", f"row {n} stored from task {st.rows.get(n)}, not {ln.id}")
    speculative = s.algorithm != "nonsi"
    if draft is not None:
        if draft >= 0:
            if not speculative:
                _bad(st, i, "drafts", f"non-SI commit at {n} used a draft")
            elif st.drafts.get(st.epoch, {}).get(n) != draft:
                _bad(st, i, "drafts", f"commit at {n} used draft {draft}, not the segment's")
            if token != draft:
                st.pending_reject = n
        elif speculative and s.mode == "rejection":
            _bad(st, i, "drafts", f"rejection mode decided position {n} without its draft")
    st.rows.pop(n, None)
    st.committed.append(token)
    if (s.eos is not None and token == s.eos) or len(st.committed) >= s.max_new_tokens:
        st.done = True
