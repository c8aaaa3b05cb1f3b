"""The model protocols the backends call, and the drafter's proposal record.

A *target* returns raw rows for a range of positions of one token sequence; a *drafter*
proposes the next token's raw row ``q`` (or a token of its own, with ``q = None`` meaning a
one-hot at that token). A model's ``row_kind`` says what its rows are: ``"logits"``
(unnormalised scores, e.g. a Hugging Face LM) or ``"probs"`` (probability vectors that sum to
1; the default). Models never apply temperature: :func:`dsi_core.sampling.to_probs` turns raw
rows into decision rows in one place. Each backend worker owns one ``state`` per model
(from ``new_state()``), where a model may keep a KV cache; the model must reuse the longest
common prefix between the cached tokens and the new sequence and recompute the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

RowKind = Literal["logits", "probs"]


class Preempted(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised inside a forward when its ``should_stop()`` turns true (a cancelled task).

    A preemptible model checks ``should_stop`` between decoder layers, restores its state (KV
    cache cropped to the last complete prefix) and raises this; the worker acks the task as
    aborted, which frees its server.
    """


@dataclass(frozen=True)
class Proposal:
    """A drafter's output for one position: a row ``q`` and/or a token.

    * ``q`` given, ``token`` None: dsi_core samples the draft from ``q`` with keyed noise.
    * ``token`` given, ``q`` None: a deterministic proposal (``q`` is one-hot at ``token``).
    * both given: the drafter sampled ``token`` from ``q`` itself; ``q[token]`` must be > 0.
    """

    q: Any = None
    token: int | None = None


@runtime_checkable
class TargetModel(Protocol):
    """What a target server runs."""

    vocab_size: int
    max_context: int | None

    def new_state(self) -> Any: ...

    def rows(self, state: Any, tokens: Sequence[int], start: int) -> Sequence[Any]:
        """Raw rows of ``p(. | tokens[:j])`` for ``j = start .. len(tokens)`` (``1 <= start``).

        A model that sets ``preemptible = True`` also accepts ``should_stop=`` (a callable) and
        raises :class:`Preempted` soon after it returns true (between decoder layers).
        """
        ...


@runtime_checkable
class DrafterModel(Protocol):
    """What the drafter runs. ``vocab_size`` None means it works with any vocabulary."""

    vocab_size: int | None

    def new_state(self) -> Any: ...

    def propose(self, state: Any, tokens: Sequence[int]) -> Proposal: ...
