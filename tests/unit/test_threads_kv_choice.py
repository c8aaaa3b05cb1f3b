"""Threads backend: a target task goes to the free server whose last input shares the longest
prefix with it (best KV-cache reuse)."""

from __future__ import annotations

import itertools

from dsi_core import generate
from dsi_core.testing.toy import ToyModel, random_table_model


class StateTagged(ToyModel):
    """Records which worker state (one per server) computed each forward."""

    def __init__(self, base):
        super().__init__(base.vocab_size, base.fn, "tagged")
        self.ids = itertools.count()
        self.used: list[int] = []

    def new_state(self):
        return {"id": next(self.ids)}

    def rows(self, state, tokens, start):
        self.used.append(state["id"])
        return super().rows(state, tokens, start)


def test_non_si_keeps_extending_one_servers_cache():
    # non-SI runs one task at a time, each extending the previous input by one token: with two
    # free servers, the one that ran the previous task shares the longer prefix every time
    target = StateTagged(random_table_model(5, 3))
    out = generate([1, 2], target=target, algorithm="nonsi", servers=2, max_new_tokens=8)
    assert len(out.tokens) == 8 and len(target.used) == 8
    assert len(set(target.used)) == 1, target.used
