"""Model protocol, adapters (Hugging Face, prompt lookup, toy tables) and the default model."""

from dsi_core.models.base import DrafterModel, Proposal, TargetModel
from dsi_core.models.lookup import LookupDrafter
from dsi_core.models.toy import ToyModel

__all__ = ["DrafterModel", "LookupDrafter", "Proposal", "TargetModel", "ToyModel"]
