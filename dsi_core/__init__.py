"""dsi_core: Distributed Speculative Inference (DSI), SI and non-SI on one decision core.

Start with :func:`dsi_core.generate`; the decisions live in :mod:`dsi_core.coordinator`, the
verification rules in :mod:`dsi_core.sampling`.
"""

from dsi_core.api import Result, generate
from dsi_core.coordinator import Config, Coordinator
from dsi_core.errors import (
    BackendError,
    ContextLengthError,
    DrafterError,
    DSIError,
    InvalidDistributionError,
    InvalidInputError,
    ModelNotFoundError,
    VocabularyMismatchError,
)
from dsi_core.sampling import DecisionRule, KeyedNoise

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "Config",
    "ContextLengthError",
    "Coordinator",
    "DSIError",
    "DecisionRule",
    "DrafterError",
    "InvalidDistributionError",
    "InvalidInputError",
    "KeyedNoise",
    "ModelNotFoundError",
    "Result",
    "VocabularyMismatchError",
    "generate",
]
