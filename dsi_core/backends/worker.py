"""The one piece of code that turns an action into an event, whatever the transport.

Every backend (simulated, threads, processes, ray) computes a draft or a target task through
:func:`compute_draft` / :func:`compute_target`: they prepend the prompt, call the model, and
convert its raw output into decision rows with :func:`dsi_core.sampling.to_probs` (the one
place where temperature is applied). Only token ids go in; only what the decision needs (rows
for the task's positions, or the drafter's token and row) comes out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from dsi_core.errors import BackendError, DrafterError, InvalidDistributionError
from dsi_core.events import (
    Action,
    DraftAborted,
    DraftDone,
    Event,
    StartDraft,
    StartTarget,
    TargetAborted,
    TargetDone,
)
from dsi_core.models.base import Preempted, Proposal
from dsi_core.sampling import DecisionRule, greedy_logits_token, to_probs

StopFn = Callable[[], bool]
STOP_ALL = -2  # a cancel flag value that stops whatever job a worker runs


def job_id(action: Action) -> int:
    """The id a job is cancelled and acked by (draft request id or target task id)."""
    return action.request_id if isinstance(action, StartDraft) else action.task_id  # type: ignore[union-attr]


def place(model: Any, device: str | None, threads: int | None) -> None:
    """Set up a worker process or actor: torch's intra-op threads, and the model's device."""
    if threads is not None:
        try:
            import torch

            torch.set_num_threads(threads)
        except ImportError:
            pass
    if device is not None and hasattr(model, "to"):
        model.to(device)


def row_kind(model: Any) -> str:
    """``"logits"`` or ``"probs"`` (the default for models that do not say)."""
    return getattr(model, "row_kind", "probs")


def model_name(model: Any) -> str:
    return str(getattr(model, "name", type(model).__name__))


def _call(fn: Any, model: Any, should_stop: StopFn | None, *args: Any) -> Any:
    if should_stop is not None and getattr(model, "preemptible", False):
        return fn(*args, should_stop=should_stop)
    return fn(*args)


def compute_target(
    model: Any,
    state: Any,
    prompt: Sequence[int],
    action: StartTarget,
    temperature: float,
    should_stop: StopFn | None = None,
    rule: DecisionRule | None = None,
) -> TargetDone:
    """Rows for positions ``action.lo .. len(action.context)`` (positions count new tokens).

    With ``rule``, each row is reduced by :meth:`DecisionRule.compact` (greedy/coupled: only the
    token travels back). A preemptible model stops between layers once ``should_stop()`` holds
    and raises :class:`~dsi_core.models.base.Preempted`.
    """
    tokens = list(prompt) + list(action.context)
    raw = _call(model.rows, model, should_stop, state, tokens, len(prompt) + action.lo)
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

    def one(i: int, r: Any) -> Any:
        what = f"target {name} row at position {action.lo + i}"
        if rule is not None and kind == "logits":  # greedy: decided on the row's device
            return rule.compact_logits(action.lo + i, r, temperature, what)
        row = to_probs(r, kind, temperature, what)
        return row if rule is None else rule.compact(action.lo + i, row)

    return TargetDone(action.task_id, tuple(one(i, r) for i, r in enumerate(raw)))


def compute_draft(
    model: Any,
    state: Any,
    prompt: Sequence[int],
    action: StartDraft,
    temperature: float,
    should_stop: StopFn | None = None,
    rule: DecisionRule | None = None,
) -> DraftDone:
    """The drafter's proposal for position ``len(action.context)``.

    With ``rule`` outside rejection mode, a row-only proposal is reduced to its token here
    (:meth:`DecisionRule.draft_token`, the same keyed function the coordinator would apply).
    """
    prop = _call(model.propose, model, should_stop, state, list(prompt) + list(action.context))
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
    vocab = getattr(model, "vocab_size", None)
    if q is not None:
        if rule is not None and rule.mode == "greedy" and token is None:
            fast = greedy_logits_token(q, temperature) if row_kind(model) == "logits" else None
            if fast is not None and (vocab is None or q.numel() == vocab):
                return DraftDone(action.request_id, None, fast)  # decided on q's device
        what = f"drafter {model_name(model)} row q at position {pos}"
        q = to_probs(q, row_kind(model), temperature, what)
    elif token is None:
        raise DrafterError(f"drafter {model_name(model)} returned neither a token nor a row")
    if rule is not None and not rule.needs_draft and token is None and vocab is not None:
        # the row stays here, so its length is checked here (generate checked the drafter's
        # vocab_size against the target's); a drafter of any vocabulary sends its row on
        if len(q) != vocab:
            raise DrafterError(
                f"drafter {model_name(model)} row q at position {pos} has {len(q)} entries, "
                f"its vocabulary {vocab}"
            )
        return DraftDone(action.request_id, None, rule.draft_token(pos, q))
    return DraftDone(action.request_id, q, token)


class ServerWorker:
    """One target server or the drafter: the model, its own state (KV cache), and preemption.

    The same object runs inside a thread (``threads``), a process (``processes``) or an actor:
    :meth:`handle` turns one action into one event. A task whose ``should_stop()`` holds before
    or during its forward is acked as aborted (:class:`~dsi_core.events.TargetAborted` /
    :class:`~dsi_core.events.DraftAborted`), which frees the server; a preemptible model stops
    at the next decoder layer with its KV cache cropped to the last complete prefix.
    """

    def __init__(
        self,
        model: Any,
        prompt: Sequence[int],
        temperature: float,
        rule: DecisionRule | None = None,
    ) -> None:
        self.model = model
        self.prompt = list(prompt)
        self.temperature = temperature
        self.rule = rule
        self.state = model.new_state()
        self.last_context: tuple[int, ...] = ()
        self.forward_s = 0.0  # time spent inside model calls (for transport overhead)

    def reset(self, prompt: Sequence[int], temperature: float, rule: DecisionRule | None) -> None:
        """Start a new run (a new prompt) with the same model; the KV cache is kept."""
        self.prompt = list(prompt)
        self.temperature = temperature
        self.rule = rule

    def handle(self, action: Action, should_stop: StopFn) -> Event:
        is_draft = isinstance(action, StartDraft)
        ident = job_id(action)
        aborted: Event = DraftAborted(ident) if is_draft else TargetAborted(ident)
        if should_stop():
            return aborted
        t0 = time.perf_counter()
        try:
            if is_draft:
                return compute_draft(
                    self.model,
                    self.state,
                    self.prompt,
                    action,
                    self.temperature,
                    should_stop,
                    self.rule,
                )
            self.last_context = tuple(action.context)  # type: ignore[union-attr]
            return compute_target(
                self.model,
                self.state,
                self.prompt,
                action,
                self.temperature,
                should_stop,
                self.rule,
            )
        except Preempted:
            return aborted
        finally:
            self.forward_s += time.perf_counter() - t0
