"""Machine-checked claims about DSI (z3 theorems), one module per claim family.

`all_theorems()` collects every family's `THEOREMS`; `python -m proofs` checks them all.
"""

from __future__ import annotations

from proofs.theorem import Theorem


def all_theorems() -> list[Theorem]:
    """Every theorem of every family, in a stable order."""
    from proofs import (
        code_rule,
        expectation,
        expectation_servers,
        fixed_servers,
        latency,
        lossless,
        preemption,
        rejection,
        sp_degree,
    )

    return [
        *lossless.THEOREMS,
        *latency.THEOREMS,
        *expectation.THEOREMS,
        *sp_degree.THEOREMS,
        *fixed_servers.THEOREMS,
        *expectation_servers.THEOREMS,
        *preemption.THEOREMS,
        *rejection.THEOREMS,
        *code_rule.THEOREMS,
    ]
