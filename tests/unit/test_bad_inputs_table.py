"""Table-driven bad-input suite: every kind of misuse of the API and the CLI, one row each.

Each row states the expected exception type (API) or exit status (CLI) and a message pattern.
Every row is also checked for what must *not* happen: no file written under the working
directory or the model cache, no model loaded when the error is knowable before loading (the
default SmolLM2 loader and ``HFModel.from_pretrained`` raise if called), no network connection
attempted beyond one refused hub probe, no thread left behind, and for the CLI a single
``dsi...error`` line on stderr and no traceback. docs/reliability.md lists the kinds.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import dsi_core.models.smollm2 as smollm2
from dsi_core import generate
from dsi_core.cli import main
from dsi_core.config import MAX_SERVERS, Config
from dsi_core.errors import (
    BackendError,
    ContextLengthError,
    DrafterError,
    InvalidDistributionError,
    InvalidInputError,
    ModelNotFoundError,
    VocabularyMismatchError,
)
from dsi_core.models import resolve
from dsi_core.models.base import Proposal
from dsi_core.testing.toy import ToyModel, random_table_model

V = 4
T = random_table_model(V, 1)
D = random_table_model(V, 2)


# ----------------------------------------------------------------------------- test models


class FnDrafter:
    """A drafter whose proposal is ``fn(tokens)``."""

    vocab_size: int | None = V

    def __init__(self, fn: Callable[[list[int]], Any], row_kind: str = "probs", **attrs: Any):
        self.fn = fn
        self.row_kind = row_kind
        self.name = "bad-drafter"
        self.__dict__.update(attrs)

    def new_state(self) -> Any:
        return None

    def propose(self, state: Any, tokens: Any) -> Any:
        return self.fn(list(tokens))


class FnTarget(ToyModel):
    """A target whose rows are ``fn(tokens, start)``."""

    def __init__(self, fn: Callable[[list[int], int], Any], **attrs: Any) -> None:
        super().__init__(V, T.fn, "bad-target")
        self.rows_fn = fn
        self.__dict__.update(attrs)

    def rows(self, state: Any, tokens: Any, start: int) -> Any:
        return self.rows_fn(list(tokens), start)


def n_rows(tokens: list[int], start: int) -> int:
    return len(tokens) - start + 1


def scaled_target(factor: float) -> FnTarget:
    """Target rows of the table model multiplied by ``factor`` (not probability vectors)."""
    return FnTarget(
        lambda toks, s: [
            np.asarray([float(x) for x in T.row(toks[:j])]) * factor
            for j in range(s, len(toks) + 1)
        ]
    )


UNNORMALISED_Q = FnDrafter(lambda toks: Proposal(q=np.asarray([0.5, 0.5, 0.5, 0.5])))


class Exploding(ToyModel):
    def rows(self, state: Any, tokens: Any, start: int) -> Any:
        self.calls += 1
        if self.calls > 3:
            raise RuntimeError("model blew up")
        return super().rows(state, tokens, start)


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Case:
    id: str
    run: Callable[[Any], Any]  # API: env -> None (raises); CLI: env -> argv
    expect: type[BaseException] | int  # exception type, or exit status for the CLI
    match: str  # regex: exception message / stderr
    loads: bool = False  # a model may be loaded before the error (the error needs one)
    stdout: str | None = None  # CLI: what must still be printed (nothing generated is lost)

    @property
    def cli(self) -> bool:
        return isinstance(self.expect, int)


def api(**kw: Any) -> Callable[[Any], Any]:
    """``generate`` on the toy pair with ``kw`` overriding; ``prompt=`` and callables of env
    (for paths) allowed."""

    def call(env: Any) -> Any:
        args: dict[str, Any] = dict(target=T, drafter=D, max_new_tokens=8)
        args.update(
            {
                k: (v(env) if callable(v) and k in ("target", "drafter") else v)
                for k, v in kw.items()
            }
        )
        prompt = args.pop("prompt", [1, 2])
        return generate(prompt, **args)

    return call


def model_dir(name: str) -> Callable[[Any], str]:
    return lambda env: str(env.models / name)


def cli(*argv: str) -> Callable[[Any], list[str]]:
    def call(env: Any) -> list[str]:
        return [a.format(models=env.models, tmp=env.tmp) for a in argv]

    return call


GEN = ("generate", "hello")
TINY = ("generate", "w1 w2 w3", "--target", "{models}/tiny", "--no-chat")

CASES: list[Case] = [
    # --- Config: every run parameter (API) ---
    Case("lookahead=0", api(lookahead=0), InvalidInputError, "lookahead must be >= 1"),
    Case("lookahead=-3", api(lookahead=-3), InvalidInputError, "lookahead must be >= 1"),
    Case("lookahead=2.5", api(lookahead=2.5), InvalidInputError, "lookahead must be an int"),
    Case("lookahead='4'", api(lookahead="4"), InvalidInputError, "lookahead must be an int"),
    Case("lookahead=True", api(lookahead=True), InvalidInputError, "lookahead must be an int"),
    Case("servers=0", api(servers=0), InvalidInputError, r"servers must be in \[1, 256\]"),
    Case("servers=3000", api(servers=3000), InvalidInputError, "servers must be in"),
    Case("servers=None", api(servers=None), InvalidInputError, "servers must be an int"),
    Case("max_new_tokens=0", api(max_new_tokens=0), InvalidInputError, "max_new_tokens"),
    Case("max_new_tokens=-1", api(max_new_tokens=-1), InvalidInputError, "max_new_tokens"),
    Case("max_new_tokens=1e9", api(max_new_tokens=10**9), InvalidInputError, "max_new_tokens"),
    Case("max_new_tokens=8.0", api(max_new_tokens=8.0), InvalidInputError, "must be an int"),
    Case(
        "temperature=0 rejection",
        api(mode="rejection", temperature=0),
        InvalidInputError,
        "temperature must be a finite number > 0",
    ),
    Case(
        "temperature=-1 coupled",
        api(mode="coupled", temperature=-1.0),
        InvalidInputError,
        "temperature",
    ),
    Case(
        "temperature=nan",
        api(mode="rejection", temperature=float("nan")),
        InvalidInputError,
        "temperature",
    ),
    Case(
        "temperature=inf",
        api(mode="rejection", temperature=float("inf")),
        InvalidInputError,
        "temperature",
    ),
    Case(
        "temperature='hot'",
        api(temperature="hot"),
        InvalidInputError,
        "temperature must be a number",
    ),
    Case("algorithm='turbo'", api(algorithm="turbo"), InvalidInputError, "algorithm must be"),
    Case("algorithm=None", api(algorithm=None), InvalidInputError, "algorithm must be"),
    Case("mode='nucleus'", api(mode="nucleus"), InvalidInputError, "mode must be"),
    Case("backend='gpu-magic'", api(backend="gpu-magic"), InvalidInputError, "backend must be"),
    Case("seed=-5", api(seed=-5), InvalidInputError, r"seed must be in \[0, 2\*\*64\)"),
    Case("seed=2**64", api(seed=2**64), InvalidInputError, "seed must be in"),
    Case("seed=1.5", api(seed=1.5), InvalidInputError, "seed must be an int"),
    Case("seed='0'", api(seed="0"), InvalidInputError, "seed must be an int"),
    Case("config='fast'", api(config="fast"), InvalidInputError, "config must be"),
    # --- prompt ---
    Case("prompt=None", api(prompt=None), InvalidInputError, "got NoneType"),
    Case("prompt=5", api(prompt=5), InvalidInputError, "got int"),
    Case("prompt=bytes", api(prompt=b"hi"), InvalidInputError, "got bytes"),
    Case("prompt=dict", api(prompt={1: 2}), InvalidInputError, "got dict"),
    Case("prompt=''", api(prompt=""), InvalidInputError, "prompt is empty"),
    Case("prompt=blank", api(prompt="  \n "), InvalidInputError, "prompt is empty"),
    Case("prompt=[]", api(prompt=[]), InvalidInputError, "prompt is empty"),
    Case(
        "prompt=empty array",
        api(prompt=np.array([], dtype=np.int64)),
        InvalidInputError,
        "prompt is empty",
    ),
    Case("prompt token 'x'", api(prompt=[1, "x"]), InvalidInputError, "must be ints, got 'x'"),
    Case("prompt token 1.7", api(prompt=[1, 1.7]), InvalidInputError, "must be ints, got 1.7"),
    Case("prompt token True", api(prompt=[True, 1]), InvalidInputError, "must be ints, got True"),
    Case("prompt nested", api(prompt=[[1, 2]]), InvalidInputError, "must be ints"),
    Case(
        "prompt float array",
        api(prompt=np.array([1.0, 2.0])),
        InvalidInputError,
        "must be ints",
    ),
    Case("prompt token -2", api(prompt=[1, -2]), InvalidInputError, "must be >= 0"),
    Case(
        "prompt token 99",
        api(prompt=[1, 99]),
        InvalidInputError,
        r"outside the vocabulary \[0, 4\)",
    ),
    Case(
        "text prompt, no tokenizer",
        api(prompt="hello"),
        InvalidInputError,
        "needs a target with a tokenizer",
    ),
    Case(
        "prompt beyond context",
        api(prompt=[1] * 8, target=FnTarget(lambda t, s: None, max_context=10)),
        ContextLengthError,
        r"exceeds the model's context of 10",
    ),
    # --- target ---
    Case("target=42", api(target=42), InvalidInputError, "target int is neither"),
    Case(
        "target=hub id, offline",
        api(target="bogus-name"),
        ModelNotFoundError,
        "'bogus-name' is neither an existing path nor a Hugging Face hub id cached",
    ),
    Case(
        "target=missing path",
        api(target="/nonexistent/model"),
        ModelNotFoundError,
        "no target model at '/nonexistent/model'",
    ),
    Case(
        "target=dir, not a model",
        api(target=model_dir("not-a-model")),
        ModelNotFoundError,
        "not a Hugging Face model",
    ),
    Case(
        "target=dir, bad config.json",
        api(target=model_dir("bad-json")),
        ModelNotFoundError,
        "config.json is unreadable or not JSON",
    ),
    Case(
        "target=dir, config.json a list",
        api(target=model_dir("list-json")),
        ModelNotFoundError,
        "config.json is not a JSON object",
    ),
    Case(
        "target=dir, no weights",
        api(target=model_dir("no-weights")),
        ModelNotFoundError,
        "no weights",
    ),
    Case(
        "target=a file",
        api(target=lambda env: str(env.models / "tiny" / "config.json")),
        ModelNotFoundError,
        "is a file",
    ),
    Case(
        "target=truncated weights",
        api(target=model_dir("truncated"), drafter="lookup"),
        ModelNotFoundError,
        "cannot load target from .*truncated",
        loads=True,
    ),
    Case(
        "target vocab_size=0",
        api(target=FnTarget(lambda t, s: None, vocab_size=0)),
        InvalidInputError,
        "vocab_size must be an int >= 1",
    ),
    Case(
        "target row_kind='scores'",
        api(target=FnTarget(lambda t, s: None, row_kind="scores")),
        InvalidInputError,
        "row_kind 'scores'",
    ),
    # --- drafter (spec and object) ---
    Case("drafter=42", api(drafter=42), InvalidInputError, "drafter int is neither"),
    Case(
        "drafter=hub id, offline",
        api(drafter="bogus-name"),
        ModelNotFoundError,
        "drafter 'bogus-name' is neither",
    ),
    Case(
        "drafter=bad hub id",
        api(drafter="not a model name"),
        ModelNotFoundError,
        "no drafter model at",
    ),
    Case(
        "drafter=missing path",
        api(drafter="/nonexistent/drafter"),
        ModelNotFoundError,
        "no drafter model",
    ),
    Case("drafter=''", api(drafter=""), InvalidInputError, "drafter spec is empty"),
    Case(
        "drafter=derived:layers=0",
        api(drafter="derived:layers=0"),
        InvalidInputError,
        "unknown derived drafter",
    ),
    Case(
        "drafter=derived:magic",
        api(drafter="derived:magic"),
        InvalidInputError,
        "unknown derived drafter",
    ),
    Case(
        "drafter vocabulary 5",
        api(drafter=random_table_model(5, 2)),
        VocabularyMismatchError,
        r"drafter vocabulary \(5\) differs",
    ),
    Case(
        "drafter context 3",
        api(drafter=FnDrafter(lambda t: None, max_context=3)),
        ContextLengthError,
        "drafter's context 3",
    ),
    Case(
        "drafter row_kind='scores'",
        api(drafter=FnDrafter(lambda t: None, row_kind="scores")),
        InvalidInputError,
        "row_kind 'scores'",
    ),
    Case(
        "drafter vocab_size='4'",
        api(drafter=FnDrafter(lambda t: None, vocab_size="4")),
        InvalidInputError,
        "vocab_size must be an int",
    ),
    # --- drafter breaks its contract mid-run ---
    Case(
        "drafter returns None",
        api(algorithm="si", drafter=FnDrafter(lambda t: None)),
        DrafterError,
        "returned NoneType at position 0, not a dsi_core.models.base.Proposal",
    ),
    Case(
        "drafter token 'x'",
        api(algorithm="si", drafter=FnDrafter(lambda t: Proposal(token="x"))),
        DrafterError,
        "proposed 'x' at position 0, not a token id",
    ),
    Case(
        "drafter token 1.7",
        api(algorithm="si", drafter=FnDrafter(lambda t: Proposal(token=1.7))),
        DrafterError,
        "proposed 1.7 at position 0",
    ),
    Case(
        "drafter token 99",
        api(algorithm="si", drafter=FnDrafter(lambda t: Proposal(token=99))),
        DrafterError,
        "draft token 99 outside the vocabulary of size 4",
    ),
    Case(
        "drafter empty proposal",
        api(algorithm="si", drafter=FnDrafter(lambda t: Proposal())),
        DrafterError,
        "neither a token nor a row",
    ),
    Case(
        "drafter q excludes its token",
        api(
            drafter=FnDrafter(lambda t: Proposal(q=np.array([0.0, 0.5, 0.5, 0.0]), token=3)),
            mode="rejection",
        ),
        DrafterError,
        "probability 0",
    ),
    Case(
        "drafter q unnormalised (rejection, DSI)",
        api(drafter=UNNORMALISED_Q, mode="rejection"),
        InvalidDistributionError,
        r"drafter bad-drafter row q at position 0 sums to 2\.0, not 1",
    ),
    Case(
        "drafter q unnormalised (rejection, SI)",
        api(drafter=UNNORMALISED_Q, mode="rejection", algorithm="si"),
        InvalidDistributionError,
        r"drafter bad-drafter row q at position 0 sums to 2\.0",
    ),
    Case(
        "drafter q unnormalised (greedy, simulated)",
        api(drafter=UNNORMALISED_Q, backend="simulated"),
        InvalidDistributionError,
        "row q at position 0 sums to 2.0",
    ),
    Case(
        "drafter logits +inf",
        api(
            algorithm="si",
            drafter=FnDrafter(lambda t: Proposal(q=np.array([np.inf, 0, 0, 0])), "logits"),
        ),
        InvalidDistributionError,
        r"row q at position 0: logits row contains \+inf",
    ),
    Case(
        "drafter q NaN",
        api(
            algorithm="si",
            drafter=FnDrafter(lambda t: Proposal(q=np.array([np.nan, 0.5, 0.5, 0.0]))),
        ),
        InvalidDistributionError,
        "contains NaN",
    ),
    # --- target breaks its contract mid-run ---
    Case(
        "target rows x7 (rejection)",
        api(target=scaled_target(7), mode="rejection"),
        InvalidDistributionError,
        r"target bad-target row at position 0 sums to 7\.0",
    ),
    Case(
        "target rows x7 (greedy, SI)",
        api(target=scaled_target(7), algorithm="si"),
        InvalidDistributionError,
        "target bad-target row at position 0 sums to 7.0",
    ),
    Case(
        "target rows x7 (non-SI, simulated)",
        api(target=scaled_target(7), algorithm="nonsi", backend="simulated"),
        InvalidDistributionError,
        "sums to 7.0",
    ),
    Case(
        "target row negative",
        api(target=FnTarget(lambda t, s: [np.array([1.5, -0.5, 0, 0])] * n_rows(t, s))),
        InvalidDistributionError,
        "negative probability",
    ),
    Case(
        "target row NaN",
        api(target=FnTarget(lambda t, s: [np.array([np.nan, 1, 0, 0])] * n_rows(t, s))),
        InvalidDistributionError,
        "NaN",
    ),
    Case(
        "target row text",
        api(target=FnTarget(lambda t, s: ["abcd"] * n_rows(t, s))),
        InvalidDistributionError,
        "non-numeric entry 'a'",
    ),
    Case(
        "target returns None",
        api(target=FnTarget(lambda t, s: None)),
        InvalidDistributionError,
        "returned NoneType, not a list of rows",
    ),
    Case(
        "target too few rows (simulated)",
        api(target=FnTarget(lambda t, s: [np.full(V, 0.25)]), backend="simulated"),
        BackendError,
        "returned 1 rows, expected",
    ),
    Case(
        "target raises mid-run",
        api(target=Exploding(V, T.fn), servers=3, max_new_tokens=40),
        RuntimeError,
        "model blew up",
    ),
    # --- simulated backend parameters ---
    Case(
        "sim_target_latency=-1",
        api(backend="simulated", sim_target_latency=-1),
        InvalidInputError,
        "sim_target_latency must be a finite number > 0",
    ),
    Case(
        "sim_draft_latency=nan",
        api(backend="simulated", sim_draft_latency=float("nan")),
        InvalidInputError,
        "sim_draft_latency",
    ),
    Case(
        "sim_order='sideways'",
        api(backend="simulated", sim_order="sideways"),
        InvalidInputError,
        "sim_order must be",
    ),
    Case(
        "sim_order='random:x'",
        api(backend="simulated", sim_order="random:x"),
        InvalidInputError,
        "sim_order must be",
    ),
    # --- CLI: argument values (exit 2, one line, before any model loads) ---
    Case("cli empty prompt", cli("generate", ""), 2, "prompt is empty"),
    Case("cli blank prompt", cli("generate", "   "), 2, "prompt is empty"),
    Case("cli --lookahead 0", cli(*GEN, "--lookahead", "0"), 2, "must be >= 1, got 0"),
    Case("cli --lookahead x", cli(*GEN, "-k", "x"), 2, "not an integer: 'x'"),
    Case("cli --servers 3000", cli(*GEN, "-S", "3000"), 2, rf"must be \[1, {MAX_SERVERS}\]"),
    Case("cli --servers 0", cli(*GEN, "-S", "0"), 2, "must be"),
    Case("cli --max-new-tokens 0", cli(*GEN, "--max-new-tokens", "0"), 2, "must be"),
    Case("cli --temperature 0", cli(*GEN, "--temperature", "0"), 2, "finite number > 0"),
    Case("cli --temperature nan", cli(*GEN, "--temperature", "nan"), 2, "finite number > 0"),
    Case("cli --sim-t nan", cli(*GEN, "--sim-t", "nan"), 2, "finite number > 0, got nan"),
    Case("cli --sim-t inf", cli(*GEN, "--sim-t", "inf"), 2, "finite number > 0, got inf"),
    Case("cli --sim-c -1", cli(*GEN, "--sim-c", "-1"), 2, "finite number > 0, got -1"),
    Case("cli --sim-c 0", cli(*GEN, "--sim-c", "0"), 2, "finite number > 0"),
    Case("cli --seed -1", cli(*GEN, "--seed", "-1"), 2, "must be"),
    Case("cli --seed 2**64", cli(*GEN, "--seed", str(2**64)), 2, "must be"),
    Case("cli --algorithm turbo", cli(*GEN, "--algorithm", "turbo"), 2, "invalid choice"),
    Case("cli --mode nucleus", cli(*GEN, "--mode", "nucleus"), 2, "invalid choice"),
    Case("cli --backend gpu", cli(*GEN, "--backend", "gpu"), 2, "invalid choice"),
    Case("cli unknown option", cli(*GEN, "--frobnicate"), 2, "unrecognized arguments"),
    Case("cli unknown command", cli("frobnicate"), 2, "invalid choice"),
    Case("cli no command", cli(), 2, "required"),
    Case(
        "cli --drafter bogus-name",
        cli(*GEN, "--drafter", "bogus-name"),
        2,
        "drafter 'bogus-name' is neither an existing path nor a Hugging Face hub id",
    ),
    Case(
        "cli --drafter missing path",
        cli(*GEN, "--drafter", "/nonexistent/drafter"),
        2,
        "no drafter model",
    ),
    Case(
        "cli --drafter derived:layers=0",
        cli(*GEN, "--drafter", "derived:layers=0"),
        2,
        "unknown derived drafter",
    ),
    Case("cli --target bogus-name", cli(*GEN, "--target", "bogus-name"), 2, "is neither"),
    Case(
        "cli --target dir, not a model",
        cli(*GEN, "--target", "{models}/not-a-model"),
        2,
        "not a Hugging Face model",
    ),
    Case(
        "cli --target bad config.json",
        cli(*GEN, "--target", "{models}/bad-json"),
        2,
        "not JSON",
    ),
    Case(
        "cli --target a file",
        cli(*GEN, "--target", "{models}/tiny/config.json"),
        2,
        "is a file",
    ),
    Case(
        "cli --timeline missing dir",
        cli(*GEN, "--timeline", "/nonexistent/x.png"),
        2,
        "directory '/nonexistent' does not exist",
    ),
    Case(
        "cli --timeline a directory",
        cli(*GEN, "--timeline", "{tmp}"),
        2,
        "is a directory",
    ),
    Case("cli bench --repeats 0", cli("bench", "--repeats", "0"), 2, "must be >= 1"),
    Case(
        "cli bench --emulate --t-ms nan",
        cli("bench", "--emulate", "--t-ms", "nan"),
        2,
        "finite number > 0",
    ),
    Case(
        "cli bench --acceptance 1.5",
        cli("bench", "--emulate", "--acceptance", "1.5"),
        2,
        r"must be in \[0, 1\]",
    ),
    Case("cli simulate --cells 1", cli("simulate", "--cells", "1"), 2, "must be >= 2"),
    Case(
        "cli simulate --out missing dir",
        cli("simulate", "--out", "/nonexistent/dir/fig", "--cells", "2"),
        2,
        "does not exist",
    ),
    Case("cli estimate --tokens 1", cli("estimate", "--tokens", "1"), 2, "must be >= 2"),
    Case(
        "cli estimate --drafter bogus-name",
        cli("estimate", "--drafter", "bogus-name"),
        2,
        "is neither",
    ),
    # --- CLI: errors that need the (tiny) model ---
    Case(
        "cli --target truncated weights",
        cli(*GEN, "--target", "{models}/truncated"),
        2,
        "cannot load target",
        loads=True,
    ),
    Case(
        "cli beyond the tiny model's context",
        cli(*TINY, "--max-new-tokens", "600"),
        2,
        "exceeds the model's context of 512",
        loads=True,
    ),
    Case(
        "cli derived:layers=5 on a 1-layer target",
        cli(*TINY, "--drafter", "derived:layers=5"),
        2,
        r"layers must be in \[1, 1\]",
        loads=True,
    ),
]


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Model directories: a tiny valid one and broken ones (built once, never modified)."""
    from test_model_cache import tiny_pair  # tests/unit is on sys.path (rootdir conftest)

    root = tmp_path_factory.mktemp("models")
    model, tok = tiny_pair(0)
    model.save_pretrained(root / "tiny")
    tok.save_pretrained(root / "tiny")
    (root / "not-a-model").mkdir()
    (root / "not-a-model" / "notes.txt").write_text("hello")
    for name, cfg in [("bad-json", "{not json"), ("list-json", "[1, 2]"), ("no-weights", None)]:
        (root / name).mkdir()
        text = cfg if cfg is not None else (root / "tiny" / "config.json").read_text()
        (root / name / "config.json").write_text(text)
        if name != "no-weights":
            (root / name / "model.safetensors").write_bytes(b"\0" * 64)
    trunc = root / "truncated"
    trunc.mkdir()
    for f in (root / "tiny").iterdir():
        data = f.read_bytes()
        (trunc / f.name).write_bytes(data[: len(data) // 2] if f.suffix == ".safetensors" else data)
    return root


@dataclass
class Env:
    models: Path
    tmp: Path


def snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for n in dirnames + filenames:
                p = os.path.join(dirpath, n)
                st = os.lstat(p)
                out[p] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def env(models, tmp_path, monkeypatch):
    """cwd and model cache in a fresh directory; loaders and the network watched."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("DSI_CORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    probes: list[Any] = []

    def refused(address: Any, *a: Any, **k: Any) -> Any:
        probes.append(address)
        raise OSError("network unreachable (test)")

    monkeypatch.setattr(resolve.socket, "create_connection", refused)
    monkeypatch.setattr(resolve, "_hub_reachable", None)
    e = Env(models, tmp_path)
    e.probes = probes  # type: ignore[attr-defined]
    return e


def forbid_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    from dsi_core.models.hf import HFModel

    def boom(*a: Any, **k: Any) -> Any:
        raise AssertionError("a model was loaded before validation")

    monkeypatch.setattr(smollm2, "load_smollm2", boom)
    monkeypatch.setattr(HFModel, "from_pretrained", classmethod(boom))


# ----------------------------------------------------------------------------- the test

LIBRARY_THREADS = ("tqdm_monitor",)  # tqdm's daemon monitor: started once, lives forever


def no_new_threads(before: set[threading.Thread], grace_s: float = 5.0) -> bool:
    """True once every thread started during the call has ended. transformers' weight loader
    shuts its pool down with ``wait=False``, so its idle workers get ``grace_s`` to exit."""
    deadline = time.monotonic() + grace_s
    while True:
        new = [
            t
            for t in threading.enumerate()
            if t not in before and t.is_alive() and t.name not in LIBRARY_THREADS
        ]
        if not new:
            return True
        ours = [t for t in new if not t.name.startswith("ThreadPoolExecutor")]
        if ours or time.monotonic() > deadline:
            raise AssertionError(f"threads outlived the call: {new}")
        time.sleep(0.02)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, env: Env, monkeypatch, capsys):
    if not case.loads:
        forbid_loading(monkeypatch)
    watched = (env.tmp, env.models)  # cwd and model cache live under env.tmp
    before_files = snapshot(*watched)
    before_threads = set(threading.enumerate())
    t0 = time.perf_counter()
    if case.cli:
        status = main(case.run(env))
        captured = capsys.readouterr()
        lines = [ln for ln in captured.err.splitlines() if ln.startswith("dsi")]
        assert status == case.expect, captured.err
        assert "Traceback" not in captured.err
        assert len(lines) == 1 and "error: " in lines[0], captured.err
        assert re.search(case.match, lines[0]), lines[0]
        if case.stdout is not None:
            assert case.stdout in captured.out
    else:
        with pytest.raises(case.expect, match=case.match):  # type: ignore[arg-type]
            case.run(env)
    elapsed = time.perf_counter() - t0
    assert no_new_threads(before_threads)
    assert snapshot(*watched) == before_files  # nothing written, nothing touched
    assert len(env.probes) <= 1  # at most one (refused) hub probe, never a download
    if not case.loads:
        assert elapsed < 5, f"{case.id} took {elapsed:.1f} s"


def test_at_least_sixty_kinds():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)
    assert sum(c.cli for c in CASES) >= 20 and sum(not c.cli for c in CASES) >= 40


# ----------------------------------------------------------------------------- beyond the table


def test_offline_env_means_no_probe_at_all(env, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    forbid_loading(monkeypatch)
    with pytest.raises(ModelNotFoundError, match="is neither"):
        generate([1, 2], target=T, drafter="bogus-name")
    assert env.probes == []


def test_a_cached_hub_id_passes_the_check(env, monkeypatch):
    monkeypatch.setattr(resolve, "_hub_cached", lambda repo: repo == "org/cached")
    assert resolve.check_model_source("org/cached", "target") == "org/cached"
    assert env.probes == []  # cached: no probe
    with pytest.raises(ModelNotFoundError):
        resolve.check_model_source("org/not-cached", "target")
    assert len(env.probes) == 1


def test_numpy_integers_and_arrays_are_accepted():
    import torch

    want = generate([1, 2], target=T, drafter=D, max_new_tokens=6, seed=3).tokens
    for prompt in ([1, 2], np.array([1, 2]), (np.int64(1), np.int32(2)), torch.tensor([1, 2])):
        got = generate(
            prompt,
            target=T,
            drafter=D,
            max_new_tokens=np.int64(6),
            seed=np.uint64(3),
            lookahead=np.int16(4),
            servers=np.int8(2),
        ).tokens
        assert got == want
    assert (
        generate((x for x in [1, 2]), target=T, drafter=D, max_new_tokens=6, seed=3).tokens == want
    )
    cfg = Config(seed=np.int64(3), servers=np.int32(2))
    assert type(cfg.seed) is int and type(cfg.servers) is int


def test_greedy_ignores_temperature_documented_coercion():
    assert generate([1, 2], target=T, drafter=D, max_new_tokens=4, temperature=0).tokens


def test_unnormalised_q_no_longer_changes_the_law_silently():
    """The issue's example: q not normalised in rejection mode gave P(token 0) = 0.24 where
    the target gives 0.9. Now every such run stops at the first row, for every algorithm."""
    target = ToyModel(2, lambda toks: np.array([0.9, 0.1]), "p09")
    bad = FnDrafter(lambda toks: Proposal(q=np.array([0.3, 0.3])), vocab_size=2)
    for algorithm in ("dsi", "si"):
        for backend in ("threads", "simulated"):
            for seed in range(5):
                with pytest.raises(InvalidDistributionError, match="position 0 sums to 0.6"):
                    generate(
                        [0],
                        target=target,
                        drafter=bad,
                        mode="rejection",
                        algorithm=algorithm,
                        backend=backend,
                        seed=seed,
                        max_new_tokens=3,
                    )
    # the same drafter declared as logits is normalised explicitly (to_probs) and runs
    ok = FnDrafter(lambda toks: Proposal(q=np.array([0.3, 0.3])), "logits", vocab_size=2)
    assert generate([0], target=target, drafter=ok, mode="rejection", max_new_tokens=3).tokens


def test_cli_timeline_save_failure_keeps_the_text(env, monkeypatch, capsys):
    """Nothing generated is lost: the text is printed before the picture is saved."""
    import dsi_core.experiments.timeline as timeline

    def fail(*a: Any, **k: Any) -> Any:
        raise OSError("disk full (test)")

    monkeypatch.setattr(timeline, "plot_timeline", fail)
    argv = [a.format(models=env.models) for a in TINY] + ["--timeline", "out.png"]
    status = main(argv + ["--max-new-tokens", "5"])
    out = capsys.readouterr()
    assert status == 2
    assert "cannot save the timeline to out.png: disk full" in out.err
    assert len(out.out.strip().split()) >= 1  # the generated words were printed
    assert not Path("out.png").exists()


def test_cli_keyboard_interrupt_in_process(env, monkeypatch, capsys):
    import dsi_core.api

    def interrupted(*a: Any, **k: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(dsi_core.api, "generate", interrupted)
    assert main(["generate", "hello"]) == 130
    err = capsys.readouterr().err
    assert err == "dsi: interrupted\n"


SLOW_RUN = """
import sys, threading, time
import numpy as np
import dsi_core.models.smollm2 as smollm2
from dsi_core.cli import main
from dsi_core.testing.toy import ToyModel

class Tok:
    chat_template = None
    def __call__(self, text):
        return {"input_ids": [1, 2]}
    def decode(self, ids, skip_special_tokens=True):
        return " ".join(map(str, ids))

class Slow(ToyModel):
    def rows(self, state, tokens, start):
        sys.stderr.write("READY\\n"); sys.stderr.flush()
        time.sleep(0.05)
        return super().rows(state, tokens, start)

m = Slow(4, lambda t: np.full(4, 0.25), "slow")
m.tokenizer = Tok()
smollm2.load_smollm2 = lambda device=None: m
code = main(["generate", "hi", "--max-new-tokens", "100000"])
print("threads left:", [t.name for t in threading.enumerate() if t is not threading.main_thread()])
sys.exit(code)
"""


@pytest.mark.timeout(120)
def test_cli_ctrl_c_exits_130_with_one_line_and_no_thread_left(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_RUN],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()  # the first forward has started: we are mid-run
    assert line.strip() == "READY", line
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    lines = [ln for ln in err.splitlines() if ln.strip() != "READY"]
    assert proc.returncode == 130, err
    assert lines == ["dsi: interrupted"], err
    assert "threads left: []" in out


def test_the_thread_check_can_fail():
    before = set(threading.enumerate())
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, name="leaked-worker")
    t.start()
    try:
        with pytest.raises(AssertionError, match="leaked-worker"):
            no_new_threads(before)
    finally:
        stop.set()
        t.join()
    assert no_new_threads(before)


def test_docs_list_every_kind():
    doc = (Path(__file__).parents[2] / "docs" / "reliability.md").read_text(encoding="utf-8")
    missing = [c.id for c in CASES if f"`{c.id[4:] if c.cli else c.id}`" not in doc]
    assert not missing, f"docs/reliability.md does not list: {missing}"


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_low_precision_probability_rows_are_accepted_and_scaled_ones_are_not(dtype):
    """A torch softmax in float32 over 128k tokens sums to 1 only within ~1e-5: accepted (the
    dtype's tolerance), returned as float64 summing to 1; the same row x1.05 is refused."""
    import torch

    from dsi_core.sampling import SUM_TOLERANCE, SUM_TOLERANCES, check_row, to_probs

    torch.manual_seed(0)
    z = torch.randn(128_256) * 5
    p = torch.softmax(z, -1).to(getattr(torch, dtype))
    assert abs(float(p.double().sum()) - 1) > SUM_TOLERANCE or dtype == "float32"
    row = to_probs(p, "probs", what="target m row at position 3")
    assert row.dtype == np.float64 and abs(row.sum() - 1) < 1e-12
    check_row(row)  # holds at the float64 tolerance downstream
    with pytest.raises(InvalidDistributionError, match=r"m row at position 3 sums to 1\.0[45]"):
        to_probs(p * 1.05, "probs", what="target m row at position 3")
    assert SUM_TOLERANCES[dtype] < 0.05
    assert to_probs(z.to(getattr(torch, dtype)), "logits").dtype == np.float64


def test_tensor_rows_run_like_numpy_rows():
    import torch

    as_tensor = ToyModel(V, lambda toks: torch.tensor([float(x) for x in T.row(toks)]), "tensor")
    as_array = ToyModel(V, lambda toks: np.asarray([float(x) for x in T.row(toks)]), "array")
    for mode in ("greedy", "rejection", "coupled"):
        kw = dict(drafter=D, mode=mode, seed=5, max_new_tokens=8, backend="simulated")
        assert (
            generate([1, 2], target=as_tensor, **kw).tokens
            == generate([1, 2], target=as_array, **kw).tokens
        )
