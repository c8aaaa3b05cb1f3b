"""Model adapters and drafters: the protocols, Hugging Face, prompt lookup, derived drafters.

Test models (toy probability tables, synthetic patterns) live in :mod:`dsi_core.testing`.
"""

from dsi_core.models.base import DrafterModel, Proposal, TargetModel
from dsi_core.models.lookup import LookupDrafter

__all__ = ["DrafterModel", "LookupDrafter", "Proposal", "TargetModel"]
