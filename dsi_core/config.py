"""One frozen run configuration, validated once.

:class:`Config` is what every face builds (``generate``'s keywords, the CLI's argparse types)
and what the coordinator and the backends read. It is validated in ``__post_init__`` and
nowhere else; it also decides the one policy fact that used to be repeated in several files:
SI runs on exactly one target server (:attr:`Config.effective_servers`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, get_args

from dsi_core.errors import InvalidInputError

Algorithm = Literal["dsi", "si", "nonsi"]
Mode = Literal["greedy", "rejection", "coupled"]
BackendName = Literal["threads", "processes", "ray", "simulated"]

ALGORITHMS: tuple[str, ...] = get_args(Algorithm)
MODES: tuple[str, ...] = get_args(Mode)
BACKENDS: tuple[str, ...] = get_args(BackendName)
MAX_NEW_TOKENS_LIMIT = 1_000_000
MAX_SERVERS = 256  # one OS thread/process/actor per server; more is a typo, not a cluster
SEED_LIMIT = 1 << 64


def _is_int(v: object) -> bool:
    import numbers

    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


@dataclass(frozen=True)
class Config:
    """What to run. Positional order (algorithm, lookahead, servers, max_new_tokens) is stable.

    * ``algorithm``: ``"dsi"`` | ``"si"`` | ``"nonsi"``.
    * ``lookahead`` (k): drafts per verification, >= 1.
    * ``servers`` (S): target servers (SP degree), 1..``MAX_SERVERS``; DSI only (SI uses one).
    * ``max_new_tokens`` (N): 1..``MAX_NEW_TOKENS_LIMIT``.
    * ``eos_token_id``: stop after committing it (None: never).
    * ``mode``: verification rule, ``"greedy"`` | ``"rejection"`` | ``"coupled"``.
    * ``temperature``: finite > 0; applied to both models' rows; ignored in greedy mode.
    * ``seed``: key of the counter-based randomness, in [0, 2**64).
    * ``backend``: who runs the forwards (see :mod:`dsi_core.backends`).
    """

    algorithm: Algorithm = "dsi"
    lookahead: int = 4
    servers: int = 2
    max_new_tokens: int = 64
    eos_token_id: int | None = None
    mode: Mode = "greedy"
    temperature: float = 1.0
    seed: int = 0
    backend: BackendName = "threads"

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise InvalidInputError(
                f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}"
            )
        if self.mode not in MODES:
            raise InvalidInputError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.backend not in BACKENDS:
            raise InvalidInputError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        for name in ("lookahead", "servers", "max_new_tokens", "seed"):
            v = getattr(self, name)
            if not _is_int(v):
                raise InvalidInputError(f"{name} must be an int, got {v!r}")
            object.__setattr__(self, name, int(v))  # numpy integers become ints
        if self.lookahead < 1:
            raise InvalidInputError(f"lookahead must be >= 1, got {self.lookahead}")
        if not 1 <= self.servers <= MAX_SERVERS:
            raise InvalidInputError(f"servers must be in [1, {MAX_SERVERS}], got {self.servers}")
        if not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS_LIMIT:
            raise InvalidInputError(
                f"max_new_tokens must be in [1, {MAX_NEW_TOKENS_LIMIT}], got {self.max_new_tokens}"
            )
        if not 0 <= self.seed < SEED_LIMIT:
            raise InvalidInputError(f"seed must be in [0, 2**64), got {self.seed}")
        if self.eos_token_id is not None:
            if not _is_int(self.eos_token_id) or self.eos_token_id < 0:
                raise InvalidInputError("eos_token_id must be an int >= 0 or None")
            object.__setattr__(self, "eos_token_id", int(self.eos_token_id))
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float, Fraction)):
            import numbers

            if not isinstance(t, numbers.Real) or isinstance(t, bool):
                raise InvalidInputError(f"temperature must be a number, got {t!r}")
        if self.mode != "greedy" and not (t > 0 and math.isfinite(float(t))):
            raise InvalidInputError(
                f"temperature must be a finite number > 0 in {self.mode!r} mode, got {t}"
            )

    @property
    def speculative(self) -> bool:
        """Whether a drafter takes part (SI and DSI)."""
        return self.algorithm != "nonsi"

    @property
    def effective_servers(self) -> int:
        """Target servers the run actually uses: SI verifies on one, DSI and non-SI on S."""
        return 1 if self.algorithm == "si" else self.servers

    @property
    def effective_temperature(self) -> float:
        """The temperature applied to rows: 1 in greedy mode (argmax ignores it)."""
        return 1.0 if self.mode == "greedy" else self.temperature
