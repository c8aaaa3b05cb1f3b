"""A public testing kit: import it in your own tests.

* :mod:`dsi_core.testing.exact`: the exact output law of a sampler, by enumerating every
  outcome of its uniforms with rational probabilities.
* :mod:`dsi_core.testing.toy`: exact probability-table models (targets and drafters).
* :mod:`dsi_core.testing.synthetic`: models that realise a given acceptance pattern.
* :mod:`dsi_core.testing.replay`: the one replay helper (pattern -> simulated run).
* :mod:`dsi_core.testing.conformance`: certify any speculative sampler (docs/conformance.md).
"""
