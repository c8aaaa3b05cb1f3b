"""Prompt-lookup (n-gram) drafting: propose the token that followed the latest match.

Looks for the longest suffix of the sequence (``max_ngram`` down to ``min_ngram`` tokens) that
occurred earlier, and proposes the token after its most recent earlier occurrence. The proposal
is deterministic, so its ``q`` is one-hot (``Proposal(token=..., q=None)``). When nothing
matches it proposes the last token repeated -- a guess that costs nothing and is simply rejected
when wrong. Works with any vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dsi_core.errors import InvalidInputError
from dsi_core.models.base import Proposal


class LookupDrafter:
    vocab_size: int | None = None

    def __init__(self, max_ngram: int = 3, min_ngram: int = 1) -> None:
        if not 1 <= min_ngram <= max_ngram:
            raise InvalidInputError("need 1 <= min_ngram <= max_ngram")
        self.max_ngram = max_ngram
        self.min_ngram = min_ngram
        self.name = f"lookup(n={min_ngram}..{max_ngram})"

    def new_state(self) -> Any:
        return None

    def propose(self, state: Any, tokens: Sequence[int]) -> Proposal:
        toks = list(tokens)
        n = len(toks)
        for g in range(min(self.max_ngram, n - 1), self.min_ngram - 1, -1):
            suffix = toks[n - g :]
            for start in range(n - g - 1, -1, -1):
                if toks[start : start + g] == suffix:
                    return Proposal(token=toks[start + g])
        return Proposal(token=toks[-1])
