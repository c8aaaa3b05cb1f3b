"""`python -m proofs [--only FAMILY] [--name SUBSTRING] [--json] [-j JOBS]`: see `proofs.runner`.

The worker processes of `-j` import `proofs.runner`, not this module (a spawned worker cannot
import the `__main__` of `python -m`).
"""

from __future__ import annotations

import sys

from proofs.runner import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
