"""How many target servers DSI's policy occupies at once: exact evaluator and closed forms.

`dsi_server_tasks` lists every target task the coordinator starts on pattern `a` (enough
servers, instantaneous preemption) with the interval during which it holds a server, and an
`order` that reproduces the simulated backend's tie rule: at equal times, a block started by an
arriving draft comes first (drafts complete before target tasks), then the stops (tasks that
finish, or are preempted by a result at that instant), then the zero-draft/chain tasks that a
result starts. `max_busy` counts the servers held after each start in that order: it equals the
coordinator's `stats.max_busy_servers` exactly (tests/property/test_sp_degree.py).

Segment reduction: every task a segment starts is finished or preempted when the segment ends,
and a segment of remaining length `L` behaves like the first segment of a run with `N = L`,
whose tasks depend only on the acceptance run `m` before its first rejection. So the degree the
policy needs over all patterns of length `N` is the maximum over `L <= N`, `m < L` of one
segment's degree (`sp_degree_needed`), O(N^2) evaluations instead of 2^N.

Closed forms (`x = (t - c) / (k c)`; proved in `proofs/sp_degree.py` for `k c <= t` or `c > t`):

* `S_wait = 2 + floor(x)` servers: no task ever waits (`task_waits == 0`); one fewer and some
  pattern makes a task wait. This counts a block that starts at the very instant another task
  finishes (the backend delivers the draft first).
* `S_lat = 1 + ceil(x)` servers: the latency equals `dsi_latency` on every pattern; one fewer
  and some pattern is strictly slower. `S_lat = S_wait` unless `x` is an integer (then the
  only wait lasts zero time).
* Finite `N`: `min(1 + ceil((N - 1)/k), S_wait)` (the zero-draft task and every block of the
  first segment can overlap, and there are only `ceil((N - 1)/k)` blocks).

For `t/k < c <= t` (a block takes longer to draft than a target forward) the zero-draft chain
runs beside the blocks and the exact degree is 2 or 3, depending on `c` (no closed form here;
`sp_degree_needed` gives it exactly, `proofs/sp_degree.py` proves the bound 3).
The paper's condition `S >= ceil(t/(k c))` is exact for `k = 1` (`S_lat = ceil(t/c)`) but one
short for `k >= 2` whenever no integer lies in `[t/(kc) - 1/k, t/(kc))` (e.g. `k = 2`,
`c = 3t/10`: 3 servers needed, not 2). The older conjecture `ceil(t/(k c)) + 1` is sufficient
for `k c <= t` (even for `S_wait`) but not for `t/k < c < t`: `k = 2`, `c = 3t/5` needs 3
servers (`S_lat = S_wait = 3`), the conjecture gives 2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from numbers import Rational

from proofs.latency_model import _ceil_div, _check, dsi_segments

__all__ = [
    "ServerTask",
    "dsi_max_busy",
    "dsi_server_tasks",
    "max_busy",
    "sp_degree_latency_formula",
    "sp_degree_needed",
    "sp_degree_wait_formula",
    "worst_pattern",
]

BLOCK_START, STOP, RESULT_START = 0, 1, 2  # processing order of simultaneous events


@dataclass(frozen=True)
class ServerTask:
    """A target task holding a server over `[begin, stop]` (see the module docstring).

    `order` is `BLOCK_START` for blocks (started by an arriving draft) and `RESULT_START` for the
    zero-draft and chain tasks (started by a target result). `segment` is the segment's index.
    """

    kind: str
    begin: Fraction
    stop: Fraction
    order: int
    segment: int


def dsi_server_tasks(a: Sequence[int], t: Rational, c: Rational, k: int) -> list[ServerTask]:
    """Every target task DSI(k) starts on pattern `a`, with its server interval.

    Per segment (start `T`, offsets `0..L-1`, `L = N - n0`, last decided offset `e`, decision
    times `D_i` of `latency_model`): the zero-draft task `[T, T + t]`; block `j` with input up
    to draft `top_j = min(j k, L - 1)` starts when that draft arrives, `T + top_j c`, if that is
    no later than `D_e`, and stops at `min(begin + t, D_{top_j})` (preempted once its last row is
    decided) or at `D_e` if `top_j > e`; a chain task for row `i <= e` starts at `D_{i-1}` when
    the block covering row `i` starts later than that, and stops at `min(D_{i-1} + t, D_i)`.
    """
    _check(a, t, c, k)
    t, c, n = Fraction(t), Fraction(c), len(a)
    out: list[ServerTask] = []
    for idx, seg in enumerate(dsi_segments(a, t, c, k)):
        start, rem = seg.begin, n - seg.start
        last = seg.committed - 1

        def block_begin(i: int, start: Fraction = start, rem: int = rem) -> Fraction:
            return start + min(_ceil_div(i, k) * k, rem - 1) * c

        dec = [start + t]
        for i in range(1, last + 1):
            dec.append(min(block_begin(i) + t, dec[-1] + t))
        end = dec[last]
        out.append(ServerTask("zero", start, start + t, RESULT_START, idx))
        j = 1
        while (j - 1) * k + 1 <= rem - 1:
            top = min(j * k, rem - 1)
            begin = start + top * c
            if begin > end:
                break
            stop = min(begin + t, dec[top] if top <= last else end)
            out.append(ServerTask("block", begin, stop, BLOCK_START, idx))
            j += 1
        for i in range(1, last + 1):
            if block_begin(i) > dec[i - 1]:
                out.append(
                    ServerTask("chain", dec[i - 1], min(dec[i - 1] + t, dec[i]), RESULT_START, idx)
                )
    return out


def max_busy(tasks: Sequence[ServerTask]) -> int:
    """Most servers held at once, events processed in the backend's order."""
    events = []
    for x in tasks:
        events.append((x.begin, x.order, 1))
        events.append((x.stop, STOP, -1))
    events.sort(key=lambda e: (e[0], e[1]))
    best = cur = 0
    for _, _, delta in events:
        cur += delta
        best = max(best, cur)
    return best


def dsi_max_busy(a: Sequence[int], t: Rational, c: Rational, k: int) -> int:
    """`max_busy(dsi_server_tasks(...))`: the coordinator's `stats.max_busy_servers` on `a`."""
    return max_busy(dsi_server_tasks(a, t, c, k))


def _segment_pattern(length: int, m: int) -> list[int]:
    return [1] * m + [0] * (length - m)


def _first_segment_busy(length: int, m: int, t: Rational, c: Rational, k: int) -> int:
    return max_busy(
        [x for x in dsi_server_tasks(_segment_pattern(length, m), t, c, k) if x.segment == 0]
    )


def worst_pattern(t: Rational, c: Rational, k: int, n: int) -> tuple[int, list[int]]:
    """`(S, a)`: the degree needed over all patterns of length `n`, and a pattern reaching it
    (`n - L` rejections, then a segment of length `L` that reaches it: each rejected draft at a
    segment's start ends that segment after one position, so the last one starts at `n - L`)."""
    best, arg = 0, (1, 0)
    for length in range(1, n + 1):
        for m in range(length):
            s = _first_segment_busy(length, m, t, c, k)
            if s > best:
                best, arg = s, (length, m)
    length, m = arg
    return best, [0] * (n - length) + _segment_pattern(length, m)


def sp_degree_needed(t: Rational, c: Rational, k: int, n: int) -> int:
    """Max over all patterns of length `n` of `dsi_max_busy` (via the segment reduction)."""
    return worst_pattern(t, c, k, n)[0]


def _x(t: Rational, c: Rational, k: int) -> Fraction:
    return (Fraction(t) - Fraction(c)) / (k * Fraction(c))


def sp_degree_wait_formula(t: Rational, c: Rational, k: int, n: int | None = None) -> int | None:
    """`min(1 + ceil((N-1)/k), 2 + floor((t - c)/(k c)))` for `k c <= t` or `c > t`, else None."""
    _check((), t, c, k)
    if not (k * c <= t or c > t):
        return None
    s = 2 + math.floor(_x(t, c, k))
    return s if n is None else min(s, 1 + _ceil_div(n - 1, k))


def sp_degree_latency_formula(t: Rational, c: Rational, k: int) -> int | None:
    """`1 + ceil((t - c)/(k c))` for `k c <= t` or `c > t` (large N), else None."""
    _check((), t, c, k)
    if not (k * c <= t or c > t):
        return None
    return 1 + math.ceil(_x(t, c, k))
