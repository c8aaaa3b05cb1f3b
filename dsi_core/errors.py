"""Typed errors raised by dsi_core. All derive from :class:`DSIError`."""

from __future__ import annotations


class DSIError(Exception):
    """Base class of every error dsi_core raises on purpose."""


class InvalidInputError(DSIError, ValueError):
    """A parameter or prompt is out of range (lookahead < 1, empty prompt, ...)."""


class VocabularyMismatchError(InvalidInputError):
    """The drafter and the target do not share a vocabulary."""


class ContextLengthError(InvalidInputError):
    """The prompt plus the requested new tokens exceed the model's context."""


class InvalidDistributionError(DSIError, ValueError):
    """A logits or probability row contains NaN/inf, negative mass or no mass at all."""


class DrafterError(DSIError):
    """The drafter broke its contract (e.g. reported q gives its own token probability 0)."""


class ModelNotFoundError(DSIError, FileNotFoundError):
    """A model path or package does not exist; the message says how to get it."""


class BackendError(DSIError, RuntimeError):
    """A worker failed or a backend broke its protocol; the original error is chained."""


class DeadlineExceededError(DSIError, TimeoutError):
    """The run, or one draft or target task, took longer than its deadline."""
