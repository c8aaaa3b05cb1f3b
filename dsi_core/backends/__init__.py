"""Backends execute the coordinator's actions: ``simulated`` (virtual clock) and ``threads``."""

from dsi_core.backends.simulated import SimulatedBackend
from dsi_core.backends.threads import ThreadsBackend

__all__ = ["SimulatedBackend", "ThreadsBackend"]
