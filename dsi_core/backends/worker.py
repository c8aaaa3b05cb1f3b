"""The one piece of code that turns an action into an event, whatever the transport.

Every backend (simulated, threads, processes, ray) computes a draft or a target task through
:func:`compute_draft` / :func:`compute_target`: they prepend the prompt, call the model, and
convert its raw output into decision rows with :func:`dsi_core.sampling.to_probs` (the one
place where temperature is applied). Only token ids go in; only what the decision needs (rows
for the task's positions, or the drafter's token and row) comes out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dsi_core.errors import BackendError, DrafterError, InvalidDistributionError
from dsi_core.events import DraftDone, StartDraft, StartTarget, TargetDone
from dsi_core.models.base import Proposal
from dsi_core.sampling import to_probs


def row_kind(model: Any) -> str:
    """``"logits"`` or ``"probs"`` (the default for models that do not say)."""
    return getattr(model, "row_kind", "probs")


def model_name(model: Any) -> str:
    return str(getattr(model, "name", type(model).__name__))


def compute_target(
    model: Any, state: Any, prompt: Sequence[int], action: StartTarget, temperature: float
) -> TargetDone:
    """Rows for positions ``action.lo .. len(action.context)`` (positions count new tokens)."""
    tokens = list(prompt) + list(action.context)
    raw = model.rows(state, tokens, len(prompt) + action.lo)
    need = len(action.context) - action.lo + 1
    try:
        n = len(raw)
    except TypeError:
        raise InvalidDistributionError(
            f"target {model_name(model)} returned {type(raw).__name__}, not a list of rows"
        ) from None
    if n != need:
        raise BackendError(f"target {model_name(model)} returned {n} rows, expected {need}")
    kind = row_kind(model)
    name = model_name(model)
    rows = tuple(
        to_probs(r, kind, temperature, f"target {name} row at position {action.lo + i}")
        for i, r in enumerate(raw)
    )
    return TargetDone(action.task_id, rows)


def compute_draft(
    model: Any, state: Any, prompt: Sequence[int], action: StartDraft, temperature: float
) -> DraftDone:
    """The drafter's proposal for position ``len(action.context)``."""
    prop = model.propose(state, list(prompt) + list(action.context))
    pos = len(action.context)
    if not isinstance(prop, Proposal):
        raise DrafterError(
            f"drafter {model_name(model)} returned {type(prop).__name__} at position {pos}, "
            "not a dsi_core.models.base.Proposal"
        )
    token = prop.token
    if token is not None:
        import numbers

        if isinstance(token, bool) or not isinstance(token, numbers.Integral):
            raise DrafterError(
                f"drafter {model_name(model)} proposed {token!r} at position {pos}, not a token id"
            )
        token = int(token)
    q = prop.q
    if q is not None:
        what = f"drafter {model_name(model)} row q at position {pos}"
        q = to_probs(q, row_kind(model), temperature, what)
    elif token is None:
        raise DrafterError(f"drafter {model_name(model)} returned neither a token nor a row")
    return DraftDone(action.request_id, q, token)
