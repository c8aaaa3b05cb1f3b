"""Verification rules (greedy / rejection / coupled) and keyed randomness.

Every random number used to decide a token is keyed by ``(seed, absolute position, stream)``
through a counter-based generator (Philox), never by call order or thread timing. A *row* is
a probability vector over the vocabulary: a float64 numpy array on the real path, or a
sequence of :class:`fractions.Fraction` in the exact tests. All rules below work on both; the
only operations they apply to a uniform ``u`` are comparisons ``u < threshold``, so the exact
test harness can substitute a symbolic uniform and enumerate every outcome with its exact
probability (:mod:`dsi_core.testing.exact`).

Rules for one position ``i`` with target row ``p``:

* ``greedy``: token = argmax p (lowest index on ties). The draft only decides acceptance.
* ``rejection`` (Leviathan et al. 2023; Chen et al. 2023): the draft ``x`` was sampled from
  ``q``; accept iff ``u < p(x)/q(x)`` (strict, so ``p(x) = 0`` is never accepted), else sample
  from ``max(0, p - q)`` normalised. Without a draft (non-SI) the token is sampled from ``p``.
* ``coupled``: token = argmax(log p + G_i) with Gumbel noise ``G_i`` keyed by ``(seed, i)``;
  the drafter samples argmax(log q + G_i) with the same noise, and a draft is accepted iff it
  equals the target's token. The decision ignores the draft, so DSI, SI and non-SI emit
  identical sequences for the same seed.
"""

from __future__ import annotations

import abc
import itertools
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from fractions import Fraction
from typing import Any

import numpy as np

from dsi_core.config import MODES
from dsi_core.errors import DrafterError, InvalidDistributionError, InvalidInputError

_MASK64 = (1 << 64) - 1

Row = Any  # np.ndarray of float64 probabilities, or a sequence of Fractions (exact tests)


class Stream(IntEnum):
    """Independent random streams per position."""

    DRAFT = 1  # the drafter's sample at this position
    ACCEPT = 2  # the acceptance uniform of the rejection rule
    RESIDUAL = 3  # the residual sample after a rejection
    PLAIN = 4  # plain sampling from p (non-SI in rejection mode)
    GUMBEL = 5  # Gumbel vector of the coupled mode


class KeyedNoise:
    """Counter-based randomness: ``uniform(pos, stream)`` is a pure function of the key.

    Uses numpy's Philox bit generator with the 128-bit key ``(seed, pos * 16 + stream)``, so
    the same position always sees the same numbers, whichever thread asks and whenever.
    """

    def __init__(self, seed: int, gumbel_cache: int = 64) -> None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise InvalidInputError(f"seed must be an int, got {type(seed).__name__}")
        if not 0 <= int(seed) <= _MASK64:
            raise InvalidInputError(f"seed must be in [0, 2**64), got {seed}")
        self.seed = int(seed)
        self._gumbel: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._gumbel_cache = gumbel_cache

    def _generator(self, pos: int, stream: Stream) -> np.random.Generator:
        if pos < 0:
            raise ValueError(f"position must be >= 0, got {pos}")
        key = np.array([self.seed, (pos * 16 + int(stream)) & _MASK64], dtype=np.uint64)
        return np.random.Generator(np.random.Philox(key=key))

    def uniform(self, pos: int, stream: Stream) -> float:
        """A float64 in [0, 1) (53-bit grid), keyed by (seed, pos, stream)."""
        return float(self._generator(pos, stream).random())

    def gumbel(self, pos: int, size: int) -> np.ndarray:
        """Standard Gumbel noise vector of length ``size`` keyed by (seed, pos)."""
        key = (pos, size)
        hit = self._gumbel.get(key)
        if hit is not None:
            self._gumbel.move_to_end(key)
            return hit
        g = self._generator(pos, Stream.GUMBEL).gumbel(size=size)
        g.setflags(write=False)
        self._gumbel[key] = g
        if len(self._gumbel) > self._gumbel_cache:
            self._gumbel.popitem(last=False)
        return g


# ----------------------------------------------------------------------------- rows


def _is_array(row: Row) -> bool:
    return isinstance(row, np.ndarray)


SUM_TOLERANCE = 1e-6  # |sum(row) - 1| allowed for float64 rows (float64 sum); Fractions: exact
# Lower-precision rows drift more: a float32 torch softmax over 32k-128k tokens sums to 1 only
# within 9e-6, float16 within 1.2e-4, bfloat16 within 1.2e-3 (measured); about 10x that is
# allowed, still far from any unnormalised row (which is off by a factor, not a rounding).
SUM_TOLERANCES = {"float64": SUM_TOLERANCE, "float32": 1e-4, "float16": 2e-3, "bfloat16": 1.6e-2}


def _as_row(raw: Row) -> tuple[Row, float | None]:
    """``raw`` as a row the rules can read, and its sum tolerance if it came from a tensor.

    numpy arrays, lists and tuples pass through; a torch (or any ``__array__``) tensor becomes
    a float64 numpy array, keeping the tolerance of its own dtype (bfloat16 has no numpy type).
    """
    if isinstance(raw, np.ndarray | list | tuple):
        return raw, None
    if hasattr(raw, "detach") and hasattr(raw, "dtype"):  # a torch tensor, without importing it
        name = str(raw.dtype).rsplit(".", 1)[-1]
        t = raw.detach().cpu()
        arr = np.asarray(t.double().numpy() if hasattr(t, "double") else t, dtype=np.float64)
        return arr, SUM_TOLERANCES.get(name, SUM_TOLERANCE)
    if hasattr(raw, "__array__"):
        return np.asarray(raw), None
    return raw, None


class ExactScalar(abc.ABC):  # noqa: B024 (a marker: nothing to implement)
    """Exact scalars a row may hold besides ``int`` and ``Fraction``: none by default.

    ``proofs/code_rule.py`` registers its symbolic reals here, so :func:`check_row` and the rules
    run unchanged on symbolic rows (exact: compared with 1 exactly, like Fractions).
    """


def check_row(row: Row, what: str = "row", tolerance: float | None = None) -> None:
    """Raise InvalidDistributionError unless ``row`` is a probability vector.

    A probability vector here is non-empty, finite, non-negative and sums to 1 (summed in
    float64): within ``tolerance``, by default ``SUM_TOLERANCES`` of the row's dtype (1e-6 for
    float64 and Python floats), exactly for Fraction rows. Models that return unnormalised
    scores declare ``row_kind = "logits"`` and :func:`to_probs` normalises them; nothing
    normalises silently.
    """
    if _is_array(row):
        if row.ndim != 1 or row.size == 0:
            raise InvalidDistributionError(f"{what} must be a non-empty 1-D vector")
        if not np.all(np.isfinite(row)):
            raise InvalidDistributionError(f"{what} contains NaN or inf")
        if row.min() < 0:
            raise InvalidDistributionError(f"{what} has a negative probability")
        total = float(np.sum(row, dtype=np.float64))
        tol = tolerance if tolerance is not None else SUM_TOLERANCES.get(row.dtype.name, 1e-6)
        if not abs(total - 1.0) <= tol:
            raise InvalidDistributionError(
                f"{what} sums to {total!r}, not 1 (tolerance {tol}): return "
                "probabilities, or declare row_kind = 'logits'"
            )
        return
    if len(row) == 0:
        raise InvalidDistributionError(f"{what} is empty")
    total: Any = 0
    exact = True
    for x in row:
        numeric = isinstance(x, int | float | Fraction | np.number | ExactScalar)
        if isinstance(x, bool) or not numeric:
            raise InvalidDistributionError(f"{what} has a non-numeric entry {x!r}")
        if x != x or x in (float("inf"), float("-inf")):
            raise InvalidDistributionError(f"{what} contains NaN or inf")
        if x < 0:
            raise InvalidDistributionError(f"{what} has a negative probability")
        exact = exact and isinstance(x, Fraction | int | ExactScalar)
        total += x
    if exact:
        if total != 1:
            raise InvalidDistributionError(f"{what} sums to {total}, not exactly 1")
    elif not abs(float(total) - 1.0) <= (tolerance or SUM_TOLERANCE):
        raise InvalidDistributionError(
            f"{what} sums to {float(total)!r}, not 1 (tolerance {tolerance or SUM_TOLERANCE})"
        )


def probs_from_logits(logits: Any, temperature: float = 1.0) -> np.ndarray:
    """Softmax of ``logits / temperature`` in float64, rejecting NaN and +inf logits.

    ``-inf`` is a legitimate mask; a row that is entirely ``-inf`` is not.
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 1 or z.size == 0:
        raise InvalidDistributionError("logits row must be a non-empty 1-D vector")
    if np.isnan(z).any():
        raise InvalidDistributionError("logits row contains NaN")
    if np.isposinf(z).any():
        raise InvalidDistributionError("logits row contains +inf")
    if not temperature > 0:
        raise InvalidInputError(f"temperature must be > 0, got {temperature}")
    z = z / temperature
    m = z.max()
    if not np.isfinite(m):
        raise InvalidDistributionError("logits row is entirely -inf")
    e = np.exp(z - m)
    return e / e.sum()


def temper(row: Row, temperature: float) -> Row:
    """``row ** (1/T)`` renormalised (float64); the identity at ``T = 1`` (exact stays exact)."""
    if temperature == 1:
        return row
    arr = np.asarray([float(x) for x in row], dtype=np.float64)
    with np.errstate(divide="ignore"):
        z = np.log(arr) / float(temperature)
    z = np.exp(z - z.max())
    return z / z.sum()


def to_probs(raw: Row, kind: str, temperature: float = 1.0, what: str = "row") -> Row:
    """The one place where model output becomes a decision row, temperature included.

    ``kind`` is the model's ``row_kind``: ``"logits"`` (unnormalised scores: softmax of
    ``z / T`` in float64) or ``"probs"`` (a probability vector, checked by :func:`check_row`,
    then tempered as ``p ** (1/T)`` renormalised). Greedy runs pass ``T = 1``.
    """
    if kind not in ("logits", "probs"):
        raise InvalidInputError(f"row_kind must be 'logits' or 'probs', got {kind!r}")
    row, tol = _as_row(raw)
    if kind == "logits":
        try:
            return probs_from_logits(row, temperature)
        except InvalidDistributionError as exc:
            raise InvalidDistributionError(f"{what}: {exc}") from None
    check_row(row, what, tol)
    if tol is not None or (_is_array(row) and row.dtype != np.float64):
        # a lower-precision row (within its dtype's tolerance): float64, rounding drift removed,
        # so every later check of this row holds at SUM_TOLERANCE
        row = np.asarray(row, dtype=np.float64)
        row = row / row.sum()
    return temper(row, temperature)


def argmax(row: Row) -> int:
    """Index of the largest entry, lowest index on ties."""
    if _is_array(row):
        return int(np.argmax(row))
    return max(range(len(row)), key=row.__getitem__)


LOGIT_MARGIN = 1e-9  # see greedy_logits_token: above it, float64 rounding cannot tie the top two


def greedy_logits_token(z: Any, temperature: float = 1.0) -> int | None:
    """``argmax softmax(z / T)`` read where a torch logits row ``z`` lives, or None.

    The greedy token is defined on the float64 probability row that :func:`to_probs` makes
    (``exp(z/T - max) / sum``, ties to the lowest index). Computing that row means copying
    ``V`` numbers to the host and an ``O(V)`` float64 softmax there; this reads two numbers
    instead: the top two of ``z/T`` in float64, on ``z``'s device. When they differ by more
    than :data:`LOGIT_MARGIN`, the top entry's probability is ``1/s`` and every other entry's
    is at most ``exp(-1e-9)/s``, which float64 keeps strictly smaller (the exponent rounds to
    within 2**-53 relatively and the division by ``s`` rounds monotonically), so the index
    equals the exact path's. ``z`` converts to float64 exactly and ``z/T`` rounds identically
    on every IEEE device, so the answer does not depend on where it ran. Returns None (the
    caller then takes the exact path, which also raises the typed errors) for a near-tie, a
    NaN or +inf entry, an all ``-inf`` row, or anything that is not a 1-D torch tensor.
    """
    if not (hasattr(z, "detach") and hasattr(z, "topk")) or z.ndim != 1 or z.numel() == 0:
        return None
    zd = z.detach()
    bad = (zd.isnan() | zd.isposinf()).any().double()  # methods only: no torch import here
    if zd.numel() == 1:
        flag, v1, v2, i1 = bad.item(), float(zd[0]), float("-inf"), 0.0
    else:
        top = zd.topk(2)  # z/T is monotone in z, so its top two are z's top two
        buf = bad.new_zeros(5)  # float64 on z's device: everything comes back in one transfer
        buf[0] = bad
        buf[1:3] = top.values
        buf[3:5] = top.indices
        flag, v1, v2, i1, _ = buf.tolist()
    if temperature != 1:
        v1, v2 = v1 / temperature, v2 / temperature  # float64, as the exact path divides
    if flag or v1 == float("-inf") or not v1 - v2 > LOGIT_MARGIN:
        return None
    return int(i1)


def _cumulative(weights: Row) -> Sequence:
    if _is_array(weights):
        return np.cumsum(weights)
    return list(itertools.accumulate(weights))


def inverse_cdf(weights: Row, u: Any) -> int:
    """Sample index ``j`` with probability ``weights[j] / sum(weights)`` from a uniform ``u``.

    Binary search for the smallest ``j`` with ``u < cum[j] / total``; only comparisons touch
    ``u``. A zero-weight index is never returned.
    """
    cum = _cumulative(weights)
    total = cum[-1]
    lo, hi = 0, len(cum) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if u < cum[mid] / total:
            hi = mid
        else:
            lo = mid + 1
    if not weights[lo] > 0:  # only reachable through float rounding at the top end
        lo = max(j for j in range(len(cum)) if weights[j] > 0)
    return int(lo)


def residual(p: Row, q: Row | None, draft: int) -> Row:
    """``max(0, p - q)`` (unnormalised); a missing ``q`` means a one-hot at ``draft``."""
    if q is None:
        if _is_array(p):
            w = p.copy()
        else:
            w = list(p)
        w[draft] = 0
        return w
    if _is_array(p):
        return np.maximum(p - np.asarray(q, dtype=np.float64), 0.0)
    return [
        max(Fraction(0) if isinstance(a, Fraction) else 0.0, a - b)
        for a, b in zip(p, q, strict=True)
    ]


def _log(row: Row) -> np.ndarray:
    arr = np.asarray([float(x) for x in row]) if not _is_array(row) else row
    with np.errstate(divide="ignore"):
        return np.log(arr)


# ----------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Decided:
    """A row reduced to the one thing its mode decides from it: the token.

    Greedy and coupled decisions read a target row only through ``argmax p`` and
    ``argmax(log p + G_pos)``, so a worker may send this instead of the row (0.1 KB instead of
    ``8 V`` bytes). :meth:`DecisionRule.compact` makes it; :meth:`DecisionRule.decide` accepts
    it wherever it accepts a row, with the same result.
    """

    token: int
    size: int  # length of the row it stands for (the vocabulary size)

    def __len__(self) -> int:
        return self.size


class DecisionRule:
    """Decides tokens and drafts for one mode; the coordinator's only source of randomness.

    ``noise`` must offer ``uniform(pos, stream)`` and ``gumbel(pos, size)``.
    """

    def __init__(self, mode: str, noise: Any) -> None:
        if mode not in MODES:
            raise InvalidInputError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.noise = noise

    def compact(self, pos: int, p: Row) -> Row:
        """``p`` reduced to what :meth:`decide` needs at ``pos``: a :class:`Decided` token in
        greedy and coupled modes (after checking the row), the row itself in rejection mode."""
        if self.mode == "rejection" or isinstance(p, Decided):
            return p
        check_row(p, f"target row p at position {pos}")
        return Decided(self._target_token(pos, p), len(p))

    def compact_logits(self, pos: int, z: Any, temperature: float, what: str) -> Row:
        """:meth:`compact` of the row :func:`to_probs` makes from logits ``z``, reading a torch
        ``z`` on its device in greedy mode (:func:`greedy_logits_token`; the same token as the
        exact path), and falling back to that exact path otherwise."""
        if self.mode == "greedy":
            tok = greedy_logits_token(z, temperature)
            if tok is not None:
                return Decided(tok, int(z.numel()))
        return self.compact(pos, to_probs(z, "logits", temperature, what))

    def _target_token(self, pos: int, p: Row) -> int:
        if self.mode == "greedy":
            return argmax(p)
        return int(np.argmax(_log(p) + self.noise.gumbel(pos, len(p))))

    @property
    def needs_draft(self) -> bool:
        """Whether a speculative position must be decided *with* its draft (rejection only)."""
        return self.mode == "rejection"

    def draft_token(self, pos: int, q: Row) -> int:
        """The drafter's token at ``pos`` drawn from its row ``q`` with this mode's noise."""
        check_row(q, f"drafter row q at position {pos}")
        if self.mode == "greedy":
            return argmax(q)
        if self.mode == "coupled":
            return int(np.argmax(_log(q) + self.noise.gumbel(pos, len(q))))
        return inverse_cdf(q, self.noise.uniform(pos, Stream.DRAFT))

    def decide(
        self, pos: int, p: Row, draft: int | None = None, q: Row | None = None
    ) -> tuple[int, bool | None]:
        """Token at ``pos`` from target row ``p`` and, if given, the draft and its row ``q``.

        Returns ``(token, accepted)``; ``accepted`` is None when there was no draft.
        """
        if isinstance(p, Decided):
            if self.mode == "rejection":
                raise InvalidInputError("a compacted row cannot be decided in rejection mode")
        else:
            check_row(p, f"target row p at position {pos}")
        if q is not None:
            check_row(q, f"drafter row q at position {pos}")
            if len(q) != len(p):
                raise DrafterError(f"drafter row has {len(q)} entries, target row {len(p)}")
        if draft is not None and not 0 <= draft < len(p):
            raise DrafterError(f"draft token {draft} outside the vocabulary of size {len(p)}")
        if self.mode in ("greedy", "coupled"):
            tok = p.token if isinstance(p, Decided) else self._target_token(pos, p)
            return tok, (None if draft is None else tok == draft)
        # rejection
        if draft is None:
            return inverse_cdf(p, self.noise.uniform(pos, Stream.PLAIN)), None
        qx = 1 if q is None else q[draft]
        if not qx > 0:
            raise DrafterError(
                f"drafter proposed token {draft} at position {pos} but its row q gives it "
                "probability 0: q must be the exact row the draft was sampled from"
            )
        u = self.noise.uniform(pos, Stream.ACCEPT)
        if u < p[draft] / qx:
            return int(draft), True
        w = residual(p, q, draft)
        total = w.sum() if _is_array(w) else sum(w)
        if not total > 0:  # p == q up to float rounding: the residual is empty
            w = residual(p, None, draft)
            total = w.sum() if _is_array(w) else sum(w)
            if not total > 0:
                return int(draft), True
        return inverse_cdf(w, self.noise.uniform(pos, Stream.RESIDUAL)), False
