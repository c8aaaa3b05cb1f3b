"""The DSI paper authors' accounting, re-implemented as a documented alternative policy.

A cost model, not a runtime: it prices a run from the acceptance pattern the way the authors'
offline simulator does (their ``SimulDSI`` / ``SimulSI``), evaluated here on the *same*
patterns as our coordinator so the difference is visible cell by cell. Known defects kept
faithfully, because they are what the paper's numbers rest on:

* DSI: a segment drafts blocks of ``k`` (``min(k, N - 1 - done)``) until a block contains a
  rejection; it costs ``min(blocks * k * c + t, (m + 1) t)`` for ``m`` accepted drafts plus one
  target token -- the row at the bonus position is never credited (a fully accepted block adds
  no token), and the zero-draft chain only enters as the ``(m + 1) t`` alternative.
* SI: each iteration costs ``min(k, left - 1) * c + t`` and commits the accepted drafts
  (capped at ``k``) plus one token.
"""

from __future__ import annotations

from collections.abc import Sequence


def _run_of_ones(a: Sequence[int], start: int, cap: int) -> int:
    m = 0
    while m < cap and start + m < len(a) and a[start + m] == 1:
        m += 1
    return m


def authors_dsi(a: Sequence[int], t: float, c: float, k: int) -> float:
    n, done, cost = len(a), 0, 0.0
    while done < n:
        new, si = 0, 0.0
        while True:
            curr_k = min(k, n - 1 - done - new)
            accepted = _run_of_ones(a, done + new, curr_k)
            new += accepted
            si += curr_k * c
            if curr_k == 0 or accepted < curr_k:
                si += t
                new += 1
                break
        cost += min(si, new * t)
        done += new
    return cost


def authors_si(a: Sequence[int], t: float, c: float, k: int) -> float:
    n, pos, cost = len(a), 0, 0.0
    while pos < n:
        curr_k = min(k, n - pos - 1)
        cost += curr_k * c + t
        pos += _run_of_ones(a, pos, k) + 1
    return cost
