"""Draw docs/layers.png: dsi_core's layers and the direction of imports (needs matplotlib).

Run from the repository root: ``.venv/bin/python scripts/draw_layers.py``. The picture is
static; ``tests/unit/test_layout.py`` checks the import rule it shows.
"""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

# (label, modules, x, y, width, colour): boxes in data coordinates, layers top to bottom
BOXES = [
    ("faces", "api.py   cli.py", 0.0, 5.0, 10.0, "#d9d9d9"),
    (
        "lab: experiments/",
        "simulate  emulate  estimate  bench  authors  timeline",
        0.0,
        4.0,
        6.4,
        "#fde0c5",
    ),
    ("proofs/", "z3 theorems, latency_model", 6.8, 4.0, 3.2, "#e1d5e7"),
    (
        "kit: testing/",
        "exact  toy  synthetic  replay  conformance  strategies",
        0.0,
        3.0,
        10.0,
        "#d5e8d4",
    ),
    (
        "execution: backends/",
        "worker  driver  simulated  threads  processes  ray",
        0.0,
        2.0,
        5.6,
        "#dae8fc",
    ),
    ("models/", "hf  smollm2  lookup  derived  resolve", 6.0, 2.0, 4.0, "#fff2cc"),
    ("models/base.py", "TargetModel / DrafterModel protocols", 3.0, 1.0, 4.0, "#fff2cc"),
    (
        "trusted core",
        "coordinator  sampling  config  events  errors  checker  (numpy only)",
        0.0,
        0.0,
        10.0,
        "#f8cecc",
    ),
]
HEIGHT = 0.7


def main(out: str = "docs/layers.png") -> None:
    fig, ax = plt.subplots(figsize=(9, 5.4))
    for label, mods, x, y, w, colour in BOXES:
        ax.add_patch(
            FancyBboxPatch((x, y), w, HEIGHT, boxstyle="round,pad=0.05", fc=colour, ec="#555")
        )
        ax.text(
            x + w / 2, y + 0.47, label, ha="center", va="center", fontsize=10, fontweight="bold"
        )
        ax.text(x + w / 2, y + 0.18, mods, ha="center", va="center", fontsize=8)
    ax.annotate(
        "",
        xy=(10.6, 0.35),
        xytext=(10.6, 5.35),
        arrowprops=dict(arrowstyle="->", lw=1.5, color="#333"),
    )
    ax.text(10.8, 2.85, "imports point down only", rotation=90, va="center", fontsize=9)
    ax.set_xlim(-0.3, 11.3)
    ax.set_ylim(-0.3, 6.0)
    ax.axis("off")
    ax.set_title("dsi_core layers", fontsize=12)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main(*sys.argv[1:])
