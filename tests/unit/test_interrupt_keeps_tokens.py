"""Ctrl-C keeps what was decided: generate attaches the committed tokens to the interrupt, and
the CLI prints them (stdout) before its one-line notice (stderr, exit 130)."""

from __future__ import annotations

import json

import pytest

import dsi_core.api
from dsi_core import generate
from dsi_core.cli import main
from dsi_core.testing.toy import random_table_model

TARGET = random_table_model(4, seed=7, exact=False)


class Interrupting:
    """The target model, interrupted (as by Ctrl-C) on its ``after``-th forward."""

    row_kind = "probs"
    max_context = None

    def __init__(self, after: int) -> None:
        self.vocab_size = TARGET.vocab_size
        self.after, self.calls = after, 0

    def new_state(self):
        return None

    def rows(self, state, tokens, start):
        self.calls += 1
        if self.calls >= self.after:
            raise KeyboardInterrupt
        return TARGET.rows(state, tokens, start)


@pytest.mark.parametrize("backend", ["simulated", "threads"])
def test_generate_attaches_the_committed_prefix(backend):
    ref = generate([1, 2], target=TARGET, algorithm="nonsi", max_new_tokens=20).tokens
    with pytest.raises(KeyboardInterrupt) as info:
        generate(
            [1, 2], target=Interrupting(6), algorithm="nonsi", max_new_tokens=20, backend=backend
        )
    partial = info.value.partial_tokens
    assert 1 <= len(partial) < 20 and partial == ref[: len(partial)]


@pytest.mark.parametrize("as_json", [False, True])
def test_cli_prints_the_partial_output_then_one_line(monkeypatch, capsys, as_json):
    def interrupted(*a, **k):
        exc = KeyboardInterrupt()
        exc.partial_tokens, exc.partial_text = [5, 6, 7], "five six seven"
        raise exc

    monkeypatch.setattr(dsi_core.api, "generate", interrupted)
    argv = ["generate", "hello"] + (["--json"] if as_json else [])
    assert main(argv) == 130
    out = capsys.readouterr()
    assert out.err == "dsi: interrupted\n"
    if as_json:
        obj = json.loads(out.out)
        assert obj["tokens"] == [5, 6, 7] and obj["interrupted"] is True
    else:
        assert out.out == "five six seven\n"
