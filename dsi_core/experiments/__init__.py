"""The lab: benchmarks, Figure 1, emulation, estimates, the authors' accounting, timelines.

Nothing here decides anything: every experiment drives the coordinator through a backend.
"""
