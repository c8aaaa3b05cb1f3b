"""dsi_core: Distributed Speculative Inference (DSI), SI and non-SI on one decision core.

Start with :func:`dsi_core.generate`. The trusted core sits at the top of the package: the
decisions in :mod:`dsi_core.coordinator`, the verification rules in :mod:`dsi_core.sampling`,
the run configuration in :mod:`dsi_core.config`, the coordinator/backend messages in
:mod:`dsi_core.events`. Around it: ``backends/`` (who runs a forward), ``models/`` (adapters and
drafters), ``testing/`` (a kit for your own tests), ``experiments/`` (benchmarks, Figure 1).
"""

__version__ = "0.1.0"

from dsi_core.api import Result, generate  # noqa: E402
from dsi_core.checker import TraceCheckError, assert_trace_ok, check_trace  # noqa: E402
from dsi_core.config import Config  # noqa: E402
from dsi_core.coordinator import Coordinator  # noqa: E402
from dsi_core.errors import (  # noqa: E402
    BackendError,
    ContextLengthError,
    DrafterError,
    DSIError,
    InvalidDistributionError,
    InvalidInputError,
    ModelNotFoundError,
    VocabularyMismatchError,
)
from dsi_core.sampling import DecisionRule, KeyedNoise  # noqa: E402

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
    "TraceCheckError",
    "VocabularyMismatchError",
    "__version__",
    "assert_trace_ok",
    "check_trace",
    "generate",
]
