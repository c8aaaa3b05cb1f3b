"""Exact concrete evaluators of the latency model (docs/design.md, "Speed model") in `Fraction`s.

These functions are the executable definition of the coordinator's policy that the z3 encodings
in `proofs/latency.py` are checked against (and that the runtime's simulator is differentially
tested against). Conventions:

- `a` is a 0/1 sequence of length `N` (new tokens); `a[i] = 1` iff the drafter, given the correct
  committed prefix, proposes exactly the token the target emits at position `i` (greedy/coupled
  decisions: a position's token depends on the target row only, drafts matter for acceptance).
- `t` is the target forward latency, `c` the drafter's per-token latency, `k >= 1` the lookahead.
- Enough target servers (no task waits) and instantaneous preemption.

non-SI costs `N t`. SI(k) drafts `d = min(k, N - 1 - n0)` tokens (`d c`; the last position is
never drafted: no row judges its draft), verifies them in one target forward (`t`) and commits
the accepted prefix plus the target's correction/bonus token (`n0 + d < N`, so a fully accepted
segment commits `d + 1`; a segment at `n0 = N - 1` drafts nothing and costs `t`).
DSI(k): see `dsi_segments`; decision times `D_0 = T + t`, `D_i = min(B_i, D_{i-1} + t)` with
`B_i = T + min(ceil(i/k) k, N - 1 - n0) c + t` (the final block starts once the drafts its input
needs exist: the draft of the last position is judged by no row); the segment ends at a
rejection or when the drafter is behind (`A_i = T + (i+1) c > D_i`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from numbers import Rational

__all__ = [
    "Segment",
    "Task",
    "authors_segment_cost",
    "dsi_latency",
    "dsi_rejection_latency",
    "dsi_segments",
    "dsi_sp_degree",
    "dsi_tasks",
    "nonsi_latency",
    "render_timeline",
    "si_latency",
    "si_rejection_latency",
    "si_segments",
]


@dataclass(frozen=True)
class Segment:
    """One speculation segment: starts at position `start` at `begin`, ends at `end`.

    `committed` positions are decided in it; `reason` is why it ended: "reject" (a draft was
    rejected), "behind" (DSI decided a position before its draft arrived), "bonus" (SI accepted
    all drafts and added the bonus token) or "done" (the last position was decided).
    """

    start: int
    begin: Fraction
    end: Fraction
    committed: int
    reason: str


@dataclass(frozen=True)
class Task:
    """A target forward of DSI: `kind` is "zero", "block" or "chain"; rows are offsets' positions.

    `stop` is when it finishes or is preempted (it becomes useless: all rows it supplies are
    decided, or its input holds a draft at/after a position that ended the segment).
    """

    kind: str
    begin: Fraction
    stop: Fraction
    rows: tuple[int, ...]


def _check(a: Sequence[int], t: Rational, c: Rational, k: int) -> None:
    if t <= 0 or c <= 0:
        raise ValueError("t and c must be positive")
    if k < 1:
        raise ValueError("k must be >= 1")
    if any(x not in (0, 1) for x in a):
        raise ValueError("a must be a 0/1 sequence")


def nonsi_latency(n_tokens: int, t: Rational) -> Fraction:
    """Latency of plain autoregressive decoding: `N t`."""
    return n_tokens * Fraction(t)


def si_segments(a: Sequence[int], t: Rational, c: Rational, k: int) -> list[Segment]:
    """The segments of SI(k) on pattern `a` (see the module docstring)."""
    _check(a, t, c, k)
    t, c, n = Fraction(t), Fraction(c), len(a)
    segs: list[Segment] = []
    n0, now = 0, Fraction(0)
    while n0 < n:
        d = min(k, n - 1 - n0)  # the last position is never drafted (no row judges it)
        m = 0
        while m < d and a[n0 + m] == 1:
            m += 1
        end = now + d * c + t
        # n0 + d < n always, so a fully accepted segment also commits the bonus token
        committed, reason = (m + 1, "reject") if m < d else (d + 1, "bonus")
        if n0 + committed >= n:
            reason = "done"
        segs.append(Segment(n0, now, end, committed, reason))
        n0, now = n0 + committed, end
    return segs


def si_latency(a: Sequence[int], t: Rational, c: Rational, k: int) -> Fraction:
    """Latency of SI with lookahead `k` on acceptance pattern `a`."""
    segs = si_segments(a, t, c, k)
    return segs[-1].end if segs else Fraction(0)


def _ceil_div(x: int, y: int) -> int:
    return -(-x // y)


def dsi_segments(
    a: Sequence[int], t: Rational, c: Rational, k: int, *, old_final_block: bool = False
) -> list[Segment]:
    """The segments of DSI(k) on pattern `a` (see the module docstring).

    `old_final_block` is for mutants only: the rule before the coordinator's fix, where the
    final block also waited for the draft of position N - 1 (`min(ceil(i/k) k, N - n0)`).
    """
    _check(a, t, c, k)
    last_needed = 0 if old_final_block else 1
    t, c, n = Fraction(t), Fraction(c), len(a)
    segs: list[Segment] = []
    n0, now = 0, Fraction(0)
    while n0 < n:
        rem = n - n0
        dec = now + t
        i = 0
        while True:
            if i > 0:
                block = now + min(_ceil_div(i, k) * k, rem - last_needed) * c + t
                dec = min(block, dec + t)
            if n0 + i == n - 1:
                segs.append(Segment(n0, now, dec, i + 1, "done"))
                n0 = n
                break
            arrived = now + (i + 1) * c <= dec
            if not arrived or a[n0 + i] == 0:
                segs.append(Segment(n0, now, dec, i + 1, "reject" if arrived else "behind"))
                n0, now = n0 + i + 1, dec
                break
            i += 1
    return segs


def dsi_latency(
    a: Sequence[int], t: Rational, c: Rational, k: int, *, old_final_block: bool = False
) -> Fraction:
    """Latency of DSI with lookahead `k` (enough servers) on acceptance pattern `a`."""
    segs = dsi_segments(a, t, c, k, old_final_block=old_final_block)
    return segs[-1].end if segs else Fraction(0)


def authors_segment_cost(m: int, t: Rational, c: Rational, k: int) -> Fraction:
    """The paper's cost of a segment with `m` accepted drafts: min((m//k+1) k c + t, (m+1) t)."""
    t, c = Fraction(t), Fraction(c)
    return min((m // k + 1) * k * c + t, (m + 1) * t)


def dsi_tasks(a: Sequence[int], t: Rational, c: Rational, k: int) -> list[Task]:
    """Every target task DSI(k) starts, with the interval during which it occupies a server.

    Superseded by `proofs.sp_degree_model.dsi_server_tasks`, which is checked against the
    coordinator: this version uses half-open intervals and drops a block that starts at the
    instant its segment ends, so it can count one server fewer than the coordinator at ties
    (e.g. `k = 1`, `c = t`). No theorem depends on it.

    Per segment (start `T`, offsets `i = 0..L-1`, `L = N - n0`): the zero-draft task [T, T+t) for
    row 0; block `j` on drafts `0..min(jk, L-1)-1`, started at `T + min(jk, L-1) c`, for rows
    `(j-1)k+1 .. min(jk, L-1)`; a chain task at `D_{i-1}` for row `i` when no task covering row
    `i` has started by then. A task stops when it finishes, when every row it supplies is
    decided, or when the segment ends at offset `e` and its input holds draft `e` or later.
    """
    t, c, n = Fraction(t), Fraction(c), len(a)
    tasks: list[Task] = []
    for seg in dsi_segments(a, t, c, k):
        now, n0, rem = seg.begin, seg.start, n - seg.start
        last = seg.committed - 1  # last offset decided in this segment
        dec = [now + t]
        for i in range(1, last + 1):
            dec.append(min(now + min(_ceil_div(i, k) * k, rem - 1) * c + t, dec[-1] + t))
        seg_end = dec[last]
        tasks.append(Task("zero", now, now + t, (n0,)))
        j = 1
        while (j - 1) * k + 1 <= rem - 1:
            ndrafts = min(j * k, rem - 1)  # the last position's draft is never needed
            begin = now + ndrafts * c
            rows = tuple(range((j - 1) * k + 1, min(j * k, rem - 1) + 1))
            if begin >= seg_end:
                break  # never started: the segment ended first (ties: not started)
            # rows past `last` are never used: a block is preempted once every row <= last it
            # supplies is decided (then its input holds no draft past `last` anyway), or at the
            # segment's end when it supplies none.
            useful_rows = [r for r in rows if r <= last]
            stop = begin + t
            if useful_rows:
                stop = min(stop, max(dec[r] for r in useful_rows))
            else:
                stop = min(stop, seg_end)
            if stop > begin:
                tasks.append(Task("block", begin, stop, tuple(n0 + r for r in rows)))
            j += 1
        for i in range(1, last + 1):
            block_begin = now + min(_ceil_div(i, k) * k, rem - 1) * c
            if block_begin > dec[i - 1]:
                stop = min(dec[i - 1] + t, dec[i])
                if stop > dec[i - 1]:
                    tasks.append(Task("chain", dec[i - 1], stop, (n0 + i,)))
    return tasks


def dsi_sp_degree(a: Sequence[int], t: Rational, c: Rational, k: int) -> int:
    """Maximum number of target tasks running at the same instant (half-open intervals).

    Ignores ties; use `proofs.sp_degree_model.dsi_max_busy` for the coordinator's count."""
    events: list[tuple[Fraction, int]] = []
    for task in dsi_tasks(a, t, c, k):
        events.append((task.begin, 1))
        events.append((task.stop, -1))
    events.sort(key=lambda e: (e[0], e[1]))  # ends before starts at equal times
    best = cur = 0
    for _, delta in events:
        cur += delta
        best = max(best, cur)
    return best


def render_timeline(name: str, segs: Sequence[Segment], t: Rational) -> str:
    """One line per segment, times in units of `t`."""
    t = Fraction(t)
    parts = [
        f"[{s.begin / t}..{s.end / t}] pos {s.start}..{s.start + s.committed - 1} ({s.reason})"
        for s in segs
    ]
    total = segs[-1].end / t if segs else 0
    return f"{name} = {total} t: " + "; ".join(parts)


# ----------------------------------------------------------------------------- rejection mode
#
# In `rejection` mode (`DecisionRule.needs_draft`) every speculative position is decided *with*
# its draft: a row that arrives first waits for the draft (the coordinator's `_advance`), so DSI
# never ends a segment because the drafter is behind, and SI keeps its bonus row until the next
# draft arrives (SI with a deferred bonus). Every position is drafted, the last one included.
# The evaluators below are the executable model of that policy (enough servers for DSI, instant
# preemption); `tests/property/test_rejection_latency.py` checks them against the coordinator
# on the simulated backend exactly. They take optional `ops` so that `proofs/rejection.py` can
# evaluate them with a symbolic `c` (z3 terms): `ops.max`, `ops.min`, and `ops.gt(x, y, a, b)`
# (`a if x > y else b`); control flow depends on the pattern only.


class _FractionOps:
    @staticmethod
    def num(x: object) -> Fraction:
        return Fraction(x)  # type: ignore[arg-type]

    @staticmethod
    def max(x, y):  # noqa: ANN001, ANN205 - Fractions or z3 terms
        return x if x >= y else y

    @staticmethod
    def min(x, y):  # noqa: ANN001, ANN205
        return x if x <= y else y

    @staticmethod
    def gt(x, y, a, b):  # noqa: ANN001, ANN205
        return a if x > y else b


def dsi_rejection_latency(
    a: Sequence[int],
    t: Rational,
    c: Rational,
    k: int,
    *,
    ops: object = None,
    chain: bool = True,
) -> Fraction:
    """Latency of DSI(k) in rejection mode (enough servers, instant preemption) on pattern `a`.

    Segment from position `n0` at time `T` (`L = N - n0`), offsets `i = 0, 1, ...`: the draft
    of offset `i` arrives at `A_i = T + (i + 1) c` (the drafter restarts at `T` and never
    waits), its row at `R_0 = T + t`, `R_i = min(B_i, D_{i-1} + t)` with the block of the
    greedy model `B_i = T + min(ceil(i/k) k, L - 1) c + t` (the final block needs the drafts
    up to position `N - 2` only) or the zero-draft chain, started when offset `i - 1` is decided;
    the decision waits for both: `D_i = max(A_i, R_i)`. The segment ends at a rejection
    (`a[n0 + i] = 0`, next segment at `D_i`) or at position `N - 1`; never because the drafter
    is behind. Hence `DSI <= N max(t, c)` (each `D_p <= max(A_p, D_{p-1} + t)`).
    `chain=False` is a mutant: rows after offset 0 come from the blocks only (`R_i = B_i`).
    """
    ops = ops or _FractionOps
    if ops is _FractionOps:
        _check(a, t, c, k)
    t, c, n = ops.num(t), ops.num(c), len(a)
    n0, now = 0, ops.num(0)
    while n0 < n:
        rem = n - n0
        dec = None
        i = 0
        while True:
            if i == 0:
                row = now + t
            else:
                block = now + min(_ceil_div(i, k) * k, rem - 1) * c + t
                row = ops.min(block, dec + t) if chain else block
            dec = ops.max(now + (i + 1) * c, row)
            if n0 + i == n - 1:
                return dec
            if a[n0 + i] == 0:
                n0, now = n0 + i + 1, dec
                break
            i += 1
    return now


def si_rejection_latency(
    a: Sequence[int],
    t: Rational,
    c: Rational,
    k: int,
    *,
    ops: object = None,
    deferred_bonus: bool = True,
) -> Fraction:
    """Latency of SI(k) in rejection mode (SI with a deferred bonus) on pattern `a`.

    A segment at `n0` drafts `d = min(k, N - 1 - n0)` tokens (`d c`) and verifies them with one
    task (`t`, rows `n0 .. n0 + d`). A rejection at offset `m < d` starts the next segment at
    the task's end. If all `d` are accepted, the bonus row `n0 + d` waits for its draft:
    - `d = k` (a full block): the drafter, idle during the task, drafts position `n0 + d`
      after it (`+ c`); that draft is decided by the kept row, accepted or not, and a new
      segment starts at `n0 + d + 1` (`d k + t + c` per full, accepted block);
    - `d < k` (the final segment, `n0 + d = N - 1`): the coordinator starts the draft of
      position `N - 1` in the same step as the task (the drafter is scheduled first, while no
      task is live yet), so the run ends at `d c + max(c, t)`. Exception, matched to the
      runtime: when the segment starts with a preempted, not yet acknowledged draft (the
      previous final segment ended by a rejection while its draft of `N - 1` was still running:
      `c > t`) and `d = 0`, the task starts first and SI's drafter then waits for it:
      `t + c`.
    `deferred_bonus=False` is the greedy/coupled SI of `si_latency` (the bonus committed from
    the row, the last position never drafted), kept here for the mutants of proofs/rejection.py.
    """
    ops = ops or _FractionOps
    if ops is _FractionOps:
        _check(a, t, c, k)
    t, c, n = ops.num(t), ops.num(c), len(a)
    n0, now = 0, ops.num(0)
    prev_final_reject = False  # the previous segment was final (d < k) and ended by a rejection
    while n0 < n:
        d = min(k, n - 1 - n0)
        m = 0
        while m < d and a[n0 + m] == 1:
            m += 1
        if not deferred_bonus:
            now = now + d * c + t
            n0 += m + 1
            continue
        if d == 0:  # the final position alone
            if prev_final_reject:
                return ops.gt(c, t, now + t + c, now + ops.max(c, t))
            return now + ops.max(c, t)
        if m < d:
            prev_final_reject = d < k
            n0, now = n0 + m + 1, now + d * c + t
            continue
        if d < k:
            return now + d * c + ops.max(c, t)
        now = now + d * c + t + c
        n0 = n0 + d + 1
        prev_final_reject = False
    return now
