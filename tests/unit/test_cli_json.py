"""The CLI as a newcomer meets it: ``--json`` everywhere, defaults in ``--help``, core choices.

* Every subcommand's ``--json`` prints exactly one JSON object (a dict) with the keys its
  consumers read. Model-loading subcommands get a small probability-table target with a toy
  tokenizer (``resolve_target`` is patched), so nothing here loads SmolLM2 or torch weights.
* Every option of every subcommand shows its default once in ``--help``, and the default shown
  is the parser's.
* Choice lists are the objects in :mod:`dsi_core.config`, not copies typed out again.
"""

from __future__ import annotations

import argparse
import json
import re

import pytest

import dsi_core.api
import dsi_core.models.resolve
from dsi_core import config
from dsi_core.cli import COMMANDS, _parser, main
from dsi_core.testing.toy import random_table_model

VOCAB = 8  # random_table_model supports up to 8


class _ToyTokenizer:
    """Words -> ids modulo the vocabulary; enough for ``encode_prompt`` and ``decode``."""

    chat_template = None

    def __call__(self, text: str) -> dict[str, list[int]]:
        return {"input_ids": [1 + len(w) % (VOCAB - 1) for w in text.split()] or [1]}

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return " ".join(f"w{i}" for i in ids)


def _toy_target(*_args, **_kwargs):
    target = random_table_model(VOCAB, seed=3, exact=False)
    target.tokenizer = _ToyTokenizer()
    target.max_context = None
    return target


@pytest.fixture
def toy_target(monkeypatch):
    """Any subcommand that loads the default target gets the toy one instead."""
    monkeypatch.setattr(dsi_core.api, "resolve_target", _toy_target)
    monkeypatch.setattr(dsi_core.models.resolve, "resolve_target", _toy_target)


def run_json(capsys, argv: list[str]) -> dict:
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, f"--json must print one line, got {len(lines)}:\n{out[:2000]}"
    obj = json.loads(lines[0])
    assert isinstance(obj, dict), f"--json must print an object, got {type(obj).__name__}"
    return obj


# ----------------------------------------------------------------------------- --json


@pytest.mark.parametrize("backend", ["simulated", "threads"])
def test_generate_json(capsys, toy_target, backend):
    obj = run_json(
        capsys,
        ["generate", "a b c", "--backend", backend, "--max-new-tokens", "6", "-k", "2", "--json"],
    )
    assert {"tokens", "text", "stats", "settings"} <= obj.keys()
    assert "trace" not in obj
    assert len(obj["tokens"]) == 6 and all(0 <= t < VOCAB for t in obj["tokens"])
    assert obj["settings"]["backend"] == backend
    assert obj["settings"]["lookahead"] == 2
    assert "acceptance_rate" in obj["stats"]


def test_generate_json_with_trace(capsys, toy_target):
    obj = run_json(
        capsys,
        ["generate", "a b", "--backend", "simulated", "--max-new-tokens", "3", "--json", "--trace"],
    )
    assert obj["trace"] and {"t", "what", "id", "pos", "detail"} <= obj["trace"][0].keys()


def test_check_json(capsys, toy_target, tmp_path):
    run = run_json(
        capsys,
        ["generate", "a b", "--backend", "simulated", "--max-new-tokens", "4", "--json", "--trace"],
    )
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run))
    obj = run_json(capsys, ["check", str(path), "--json"])
    assert obj == {"ok": True, "violations": []}


def test_bench_emulate_json(capsys):
    obj = run_json(
        capsys,
        [
            "bench",
            "--emulate",
            "--tokens",
            "6",
            "--repeats",
            "1",
            "-k",
            "1",
            "-S",
            "2",
            "--t-ms",
            "2",
            "--c-ms",
            "1",
            "--json",
        ],
    )
    assert obj["synthetic"] is True
    assert {"t_s", "c_s", "acceptance", "tokens", "rows"} <= obj.keys()
    assert [r["algorithm"] for r in obj["rows"]] == ["nonsi", "si", "dsi"]


def test_simulate_json(capsys, tmp_path):
    out = tmp_path / "fig"
    obj = run_json(
        capsys,
        [
            "simulate",
            "--cells",
            "2",
            "--lookahead-max",
            "2",
            "--tokens",
            "8",
            "--seeds",
            "1",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert {"cells", "summary", "csv"} <= obj.keys()
    assert obj["cells"] == 4
    assert (tmp_path / "fig.csv").is_file() and (tmp_path / "fig.png").is_file()


def test_overhead_json(capsys):
    obj = run_json(capsys, ["overhead", "--tokens", "20", "--json"])
    assert obj["tokens"] == 20
    assert {(r["mode"], r["drafter"]) for r in obj["rows"]} == {
        (m, d) for m in ("greedy", "rejection") for d in ("perfect", "half")
    }


def test_prove_json(capsys):
    pytest.importorskip("z3")
    obj = run_json(capsys, ["prove", "--name", "accept_mass", "--json"])
    assert {"theorems", "passed", "total"} <= obj.keys()
    assert obj["total"] >= 1 and obj["passed"] == obj["total"]
    assert all("accept_mass" in th["name"] for th in obj["theorems"])


def test_prove_passes_jobs_to_the_runner(capsys, monkeypatch):
    """``dsi prove -j J`` runs the proof runner with J workers (as ``python -m proofs -j J``)."""
    pytest.importorskip("z3")
    import proofs.runner as runner

    real, seen = runner._results, []

    def record(theorems, indices, jobs):
        seen.append(jobs)
        return real(theorems, indices, 1)

    monkeypatch.setattr(runner, "_results", record)
    run_json(capsys, ["prove", "--name", "accept_mass", "-j", "3", "--json"])
    run_json(capsys, ["prove", "--name", "accept_mass", "--json"])
    assert seen == [3, _subparsers()["prove"].get_default("jobs")]
    assert main(["prove", "-j", "0"]) == 2
    assert "must be >= 1" in capsys.readouterr().err


def test_estimate_json(capsys, toy_target):
    obj = run_json(
        capsys, ["estimate", "--tokens", "4", "-k", "1", "2", "--max-servers", "2", "--json"]
    )
    assert {"machine", "decode_s", "acceptance", "predictions", "recommended"} <= obj.keys()
    assert {r["algorithm"] for r in obj["predictions"]} == {"nonsi", "si", "dsi"}


def test_conform_json(capsys):
    obj = run_json(
        capsys,
        [
            "conform",
            "dsi_core.testing.conformance:reference_rule",
            "--vocab",
            "2",
            "--max-drafts",
            "1",
            "--no-statistical",
            "--json",
        ],
    )
    assert {"function", "interface", "passed"} <= obj.keys()
    assert obj["passed"] is True


COVERED = {"generate", "bench", "simulate", "estimate", "overhead", "prove", "conform", "check"}


def test_every_subcommand_is_covered_here():
    """A new subcommand must get a --json test above."""
    assert set(COMMANDS) <= COVERED, f"add a --json test for {set(COMMANDS) - COVERED}"
    for name, parser in _subparsers().items():
        assert any("--json" in a.option_strings for a in parser._actions), name


# ----------------------------------------------------------------------------- --help


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _help_entries(text: str) -> dict[str, str]:
    """Option entries of an argparse help text: first option string -> its whole entry."""
    entries: dict[str, str] = {}
    current = None
    in_options = False
    for line in text.splitlines():
        if re.match(r"^(options|optional arguments):", line):
            in_options = True
            continue
        if not in_options:
            continue
        m = re.match(r"^  (-[\w-]+|--[\w-]+)", line)
        if m:
            current = m.group(1)
            entries[current] = line
        elif current and line.startswith("   "):
            entries[current] += " " + line.strip()
        elif line.strip():
            current = None
    return entries


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_shows_its_default_once(capsys, monkeypatch, name):
    monkeypatch.setenv("COLUMNS", "300")
    assert main([name, "--help"]) == 0
    entries = _help_entries(capsys.readouterr().out)
    parser = _subparsers()[name]
    missing, bad = [], []
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        entry = next((entries[o] for o in action.option_strings if o in entries), None)
        if entry is None:
            missing.append(action.option_strings[0])
            continue
        shown = re.findall(r"\(default: ([^)]*)\)", entry)
        if len(shown) != 1:
            bad.append(f"{action.option_strings[0]}: {len(shown)} defaults shown: {entry}")
        elif shown[0] != str(action.default):
            bad.append(f"{action.option_strings[0]}: shows {shown[0]}, parser has {action.default}")
    assert not missing, f"options absent from `dsi {name} --help`: {missing}"
    assert not bad, "\n".join(bad)


def test_choice_lists_are_the_core_constants():
    constants = {"algorithm": config.ALGORITHMS, "mode": config.MODES, "backend": config.BACKENDS}
    seen = set()
    for name, parser in _subparsers().items():
        for action in parser._actions:
            if action.choices is None or isinstance(action, argparse._SubParsersAction):
                continue
            assert action.dest in constants, f"dsi {name} {action.dest}: choices not from config"
            assert action.choices is constants[action.dest], f"dsi {name} --{action.dest}"
            seen.add(action.dest)
    assert seen == set(constants)
