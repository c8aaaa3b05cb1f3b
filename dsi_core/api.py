"""The Python API: :func:`generate` runs non-SI, SI or DSI and returns tokens, text and stats.

Everything is validated before any model is loaded or thread started, so a bad argument
raises a typed :class:`~dsi_core.errors.DSIError` and leaves nothing half-done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

from dsi_core.config import BACKENDS, Config
from dsi_core.coordinator import Coordinator, Stats, TraceEvent
from dsi_core.errors import (
    ContextLengthError,
    InvalidInputError,
    VocabularyMismatchError,
)
from dsi_core.models.resolve import check_drafter_spec, resolve_drafter, resolve_target
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

    def to_dict(self, trace: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "tokens": list(self.tokens),
            "text": self.text,
            "stats": self.stats.as_dict(),
            "settings": self.settings,
        }
        if trace:
            d["trace"] = [
                {"t": float(e.time), "what": e.what, "id": e.id, "pos": e.pos, "detail": e.detail}
                for e in self.trace
            ]
        return d


def check_prompt(prompt: Any) -> None:
    """Prompt checks that need no model (run before anything loads)."""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise InvalidInputError("prompt is empty")
        return
    if (
        prompt is None
        or isinstance(prompt, bytes | bytearray | memoryview)
        or not hasattr(prompt, "__iter__")
    ):
        raise InvalidInputError(
            f"prompt must be a string or a sequence of token ids, got {type(prompt).__name__}"
        )
    if hasattr(prompt, "__len__") and len(prompt) == 0:
        raise InvalidInputError("prompt is empty")


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
    import numbers

    if isinstance(prompt, bytes | bytearray | memoryview) or not hasattr(prompt, "__iter__"):
        raise InvalidInputError(
            f"prompt must be a string or a sequence of token ids, got {type(prompt).__name__}"
        )
    ids = []
    for x in list(prompt):
        if isinstance(x, bool) or not isinstance(x, numbers.Integral):
            raise InvalidInputError(f"prompt token ids must be ints, got {x!r}")
        x = int(x)
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
) -> Result:
    """Generate ``max_new_tokens`` tokens (fewer at EOS) with non-SI, SI or DSI.

    ``target``: None (SmolLM2-135M-Instruct), a path, a ``transformers`` ``PreTrainedModel``
    or a :class:`~dsi_core.models.base.TargetModel`. ``drafter``: None or "lookup" (prompt
    n-gram), "derived:KIND" (a cheap copy of the target, see :mod:`dsi_core.models.derived`),
    a path, a ``PreTrainedModel`` or a :class:`~dsi_core.models.base.DrafterModel`. The run
    parameters (``algorithm`` .. ``backend``) form a :class:`~dsi_core.config.Config`; pass
    ``config=`` to use a prebuilt one instead (then those keywords are ignored). Everything
    that needs no model is validated before any model loads.
    """
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
    check_prompt(prompt)
    if cfg.speculative:
        check_drafter_spec(drafter)
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
    if cfg.backend == "threads":
        from dsi_core.backends.threads import ThreadsBackend

        ThreadsBackend(cfg.effective_servers).run(coord, target, d, ids, temp)
    else:
        from dsi_core.backends.simulated import SimulatedBackend

        SimulatedBackend(sim_target_latency, sim_draft_latency, order=sim_order).run(
            coord, target, d, ids, temp
        )
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
    return Result(list(coord.committed), text, coord.stats, coord.trace, settings)
