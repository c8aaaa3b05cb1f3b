"""The Python API: :func:`generate` runs non-SI, SI or DSI and returns tokens, text and stats.

Everything is validated before any model is loaded or thread started, so a bad argument
raises a typed :class:`~dsi_core.errors.DSIError` and leaves nothing half-done.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import numpy as np

from dsi_core.config import BACKENDS, Config
from dsi_core.coordinator import Coordinator, Stats, TraceEvent
from dsi_core.errors import (
    ContextLengthError,
    InvalidInputError,
    VocabularyMismatchError,
)
from dsi_core.models.resolve import (
    check_drafter_spec,
    check_target_spec,
    resolve_drafter,
    resolve_target,
)
from dsi_core.sampling import DecisionRule, KeyedNoise

__all__ = [
    "BACKENDS",
    "Result",
    "check_prompt",
    "encode_prompt",
    "generate",
    "resolve_drafter",
    "resolve_target",
]


@dataclass
class Result:
    """What :func:`generate` returns."""

    tokens: list[int]
    text: str | None
    stats: Stats
    trace: list[TraceEvent] = field(repr=False)
    settings: dict[str, Any] = field(default_factory=dict)
    transport: dict[str, Any] = field(default_factory=dict)  # bytes, overhead, preemption delay

    def to_dict(self, trace: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "tokens": list(self.tokens),
            "text": self.text,
            "stats": self.stats.as_dict(),
            "settings": self.settings,
            "transport": self.transport,
        }
        if trace:
            d["trace"] = [
                {
                    "t": float(e.time),
                    "what": e.what,
                    "id": e.id,
                    "pos": e.pos,
                    "detail": e.detail,
                    "epoch": e.epoch,
                    "data": list(e.data),
                }
                for e in self.trace
            ]
        return d


def _token_id(x: Any) -> int:
    """``x`` as a token id: any integer (Python, numpy, a 0-d integer tensor), never a bool."""
    if isinstance(x, bool | np.bool_) or isinstance(x, float | complex | str | bytes):
        raise InvalidInputError(f"prompt token ids must be ints, got {x!r}")
    try:
        return operator.index(x)
    except TypeError:
        raise InvalidInputError(f"prompt token ids must be ints, got {x!r}") from None


def check_prompt(prompt: Any) -> None:
    """Prompt checks that need no model (run before anything loads).

    A prompt is a non-blank string or a non-empty sequence of integer token ids (a list, a
    tuple, a 1-D numpy array or tensor; numpy and tensor integers are accepted). ``None``,
    numbers, bytes and nested sequences are refused with :class:`InvalidInputError`; token ids
    are range-checked against the vocabulary once the target is known.
    """
    if isinstance(prompt, str):
        if not prompt.strip():
            raise InvalidInputError("prompt is empty")
        return
    if (
        prompt is None
        or isinstance(prompt, bytes | bytearray | memoryview | dict | set | frozenset)
        or not hasattr(prompt, "__iter__")
    ):
        raise InvalidInputError(
            f"prompt must be a string or a sequence of token ids, got {type(prompt).__name__}"
        )
    ids = [_token_id(x) for x in prompt]
    if not ids:
        raise InvalidInputError("prompt is empty")
    if min(ids) < 0:
        raise InvalidInputError(f"prompt token ids must be >= 0, got {min(ids)}")


def encode_prompt(prompt: Any, target: Any, chat: bool = True) -> list[int]:
    """A string goes through the target's tokenizer (chat template if it has one)."""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise InvalidInputError("prompt is empty")
        tok = getattr(target, "tokenizer", None)
        if tok is None:
            raise InvalidInputError("a text prompt needs a target with a tokenizer; pass ids")
        if chat and getattr(tok, "chat_template", None):
            enc = tok.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True
            )
            ids = enc["input_ids"] if isinstance(enc, dict) or hasattr(enc, "keys") else enc
            return [int(x) for x in ids]
        return [int(x) for x in tok(prompt)["input_ids"]]
    check_prompt(prompt)
    ids = []
    for x in list(prompt):
        x = _token_id(x)
        if not 0 <= x < target.vocab_size:
            raise InvalidInputError(
                f"prompt token {x} outside the vocabulary [0, {target.vocab_size})"
            )
        ids.append(x)
    if not ids:
        raise InvalidInputError("prompt is empty")
    return ids


def generate(
    prompt: str | Sequence[int],
    *,
    target: Any = None,
    drafter: Any = None,
    algorithm: str = "dsi",
    lookahead: int = 4,
    servers: int = 2,
    mode: str = "greedy",
    temperature: float = 1.0,
    seed: int = 0,
    max_new_tokens: int = 64,
    backend: str = "threads",
    chat: bool = True,
    stop_at_eos: bool = True,
    sim_target_latency: Any = Fraction(1),
    sim_draft_latency: Any = Fraction(1, 10),
    sim_order: Any = None,
    config: Config | None = None,
    devices: Sequence[str] | None = None,
    threads_per_server: int | None = None,
    timeout_s: float | None = None,
    task_timeout_s: float | None = None,
    runner: Any = None,
    ray_address: str | None = None,
    num_gpus: float = 0.0,
    num_cpus: float = 0.0,
) -> Result:
    """Generate ``max_new_tokens`` tokens (fewer at EOS) with non-SI, SI or DSI.

    ``target``: None (SmolLM2-135M-Instruct), a path, a ``transformers`` ``PreTrainedModel``
    or a :class:`~dsi_core.models.base.TargetModel`. ``drafter``: None or "lookup" (prompt
    n-gram), "derived:KIND" (a cheap copy of the target, see :mod:`dsi_core.models.derived`),
    a path, a ``PreTrainedModel`` or a :class:`~dsi_core.models.base.DrafterModel`. The run
    parameters (``algorithm`` .. ``backend``) form a :class:`~dsi_core.config.Config`; pass
    ``config=`` to use a prebuilt one instead (then those keywords are ignored). Everything
    that needs no model is validated before any model loads.

    Backend options: ``devices`` (one per target server, e.g. ``["cuda:0", "cuda:1"]``) and
    ``threads_per_server`` place the ``processes`` backend's workers; ``timeout_s`` bounds the
    whole run and ``task_timeout_s`` each draft and target task (real backends): exceeding
    either raises :class:`~dsi_core.errors.DeadlineExceededError` after every worker stopped.
    ``runner``: an open :class:`~dsi_core.backends.processes.ProcessesBackend` (or
    :class:`~dsi_core.backends.ray_backend.RayBackend`) to reuse across calls (its workers stay
    up between runs; you close it); its placement options win. ``ray`` backend: ``ray_address``
    (default ``RAY_ADDRESS``, else a local Ray), ``num_gpus`` and ``num_cpus`` per server actor.
    """
    for name, v in (("timeout_s", timeout_s), ("task_timeout_s", task_timeout_s)):
        if v is not None and (
            isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < float("inf")
        ):
            raise InvalidInputError(f"{name} must be a finite number > 0 or None, got {v!r}")
    if config is None:
        config = Config(
            algorithm=algorithm,  # type: ignore[arg-type]
            lookahead=lookahead,
            servers=servers,
            max_new_tokens=max_new_tokens,
            mode=mode,  # type: ignore[arg-type]
            temperature=temperature,
            seed=seed,
            backend=backend,  # type: ignore[arg-type]
        )
    elif not isinstance(config, Config):
        raise InvalidInputError(f"config must be a dsi_core.Config, got {type(config).__name__}")
    cfg = config
    if isinstance(prompt, Iterator):  # one pass only: the check would consume it
        prompt = list(prompt)
    check_prompt(prompt)
    check_target_spec(target)
    if cfg.speculative:
        check_drafter_spec(drafter)
    if cfg.backend == "simulated":
        from dsi_core.backends.simulated import check_latency, check_order

        check_latency(sim_target_latency, "sim_target_latency", zero_ok=False)
        check_latency(sim_draft_latency, "sim_draft_latency", zero_ok=False)
        check_order(sim_order, "sim_order")
    target = resolve_target(target)
    ids = encode_prompt(prompt, target, chat=chat)
    ctx = getattr(target, "max_context", None)
    if ctx is not None and len(ids) + cfg.max_new_tokens > ctx:
        raise ContextLengthError(
            f"prompt ({len(ids)} tokens) + max_new_tokens ({cfg.max_new_tokens}) exceeds the "
            f"model's context of {ctx} tokens"
        )
    d = None
    if cfg.speculative:
        d = resolve_drafter(drafter, target)
        dv = getattr(d, "vocab_size", None)
        if dv is not None and dv != target.vocab_size:
            raise VocabularyMismatchError(
                f"drafter vocabulary ({dv}) differs from the target's ({target.vocab_size})"
            )
        dctx = getattr(d, "max_context", None)
        if dctx is not None and len(ids) + cfg.max_new_tokens > dctx:
            raise ContextLengthError(
                f"prompt + max_new_tokens exceeds the drafter's context {dctx}"
            )
    eos = getattr(target, "eos_token_id", None) if stop_at_eos else None
    cfg = replace(cfg, eos_token_id=eos)
    temp = cfg.effective_temperature
    coord = Coordinator(cfg, DecisionRule(cfg.mode, KeyedNoise(cfg.seed)))
    transport: dict[str, Any] = {}
    owned = runner is None or cfg.backend not in ("processes", "ray")
    if not owned:
        if runner.servers != cfg.effective_servers:
            raise InvalidInputError(
                f"runner has {runner.servers} servers, the run needs {cfg.effective_servers}"
            )
        runner.timeout_s, runner.task_timeout_s = timeout_s, task_timeout_s
        backend_obj = runner
    elif cfg.backend == "threads":
        from dsi_core.backends.threads import ThreadsBackend

        backend_obj = ThreadsBackend(
            cfg.effective_servers, timeout_s=timeout_s, task_timeout_s=task_timeout_s
        )
    elif cfg.backend == "processes":
        from dsi_core.backends.processes import ProcessesBackend

        backend_obj = ProcessesBackend(
            cfg.effective_servers,
            devices=devices,
            threads_per_server=threads_per_server,
            timeout_s=timeout_s,
            task_timeout_s=task_timeout_s,
        )
    elif cfg.backend == "ray":
        from dsi_core.backends.ray_backend import RayBackend

        backend_obj = RayBackend(
            cfg.effective_servers,
            address=ray_address,
            num_gpus=num_gpus,
            num_cpus=num_cpus,
            threads_per_server=threads_per_server,
            timeout_s=timeout_s,
            task_timeout_s=task_timeout_s,
        )
    else:
        from dsi_core.backends.simulated import SimulatedBackend

        backend_obj = SimulatedBackend(sim_target_latency, sim_draft_latency, order=sim_order)
    try:
        backend_obj.run(coord, target, d, ids, temp)
        report = getattr(backend_obj, "report", None)  # real transports measure themselves
        if report is not None:
            transport = report.as_dict()
    except KeyboardInterrupt as exc:  # keep what was decided: the caller may print it
        exc.partial_tokens = list(coord.committed)  # type: ignore[attr-defined]
        tok = getattr(target, "tokenizer", None)
        exc.partial_text = (  # type: ignore[attr-defined]
            tok.decode(coord.committed, skip_special_tokens=True) if tok is not None else None
        )
        raise
    finally:
        if owned and hasattr(backend_obj, "close"):
            backend_obj.close()  # processes/ray started for this call: nothing outlives it
    tok = getattr(target, "tokenizer", None)
    text = tok.decode(coord.committed, skip_special_tokens=True) if tok is not None else None
    settings = {
        "algorithm": cfg.algorithm,
        "lookahead": cfg.lookahead,
        "servers": cfg.servers,
        "effective_servers": cfg.effective_servers,
        "mode": cfg.mode,
        "temperature": cfg.temperature,
        "seed": cfg.seed,
        "max_new_tokens": cfg.max_new_tokens,
        "backend": cfg.backend,
        "target": getattr(target, "name", type(target).__name__),
        "drafter": getattr(d, "name", type(d).__name__) if d is not None else None,
        "prompt_tokens": len(ids),
    }
    return Result(list(coord.committed), text, coord.stats, coord.trace, settings, transport)
