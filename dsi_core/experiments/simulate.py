"""``dsi simulate``: the paper's Figure 1 on the simulated backend (real coordinator).

For each cell (drafter latency ``c/t``, acceptance rate ``a``) and seed, an i.i.d. acceptance
pattern of ``n_tokens`` is drawn (synthetic models, :mod:`dsi_core.testing.synthetic`); non-SI,
SI with every lookahead and DSI with every lookahead (``servers`` target servers, tasks wait
when all are busy) run on the virtual clock. Each algorithm takes its own best lookahead (by
mean latency over the seeds). Two SI variants: *restricted* to the lookaheads DSI can afford
(those for which DSI never had to wait for a server in this cell, as the authors restricted
SI), and *free* (any lookahead). Panels are speedups (higher = the first is faster):

* ``si_vs_nonsi``   = non-SI / SI
* ``dsi_vs_si``     = SI / DSI
* ``dsi_vs_nonsi``  = non-SI / DSI
* ``dsi_vs_best``   = min(SI, non-SI) / DSI
"""

from __future__ import annotations

import csv
import statistics
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from dsi_core.testing.replay import replay_pattern

PANELS = ("si_vs_nonsi", "dsi_vs_si", "dsi_vs_nonsi", "dsi_vs_best")


@dataclass
class Cell:
    c: float
    a: float
    nonsi: float
    si: dict[int, float]
    dsi: dict[int, float]
    dsi_waited: dict[int, bool]
    authors_si: dict[int, float] | None = None
    authors_dsi: dict[int, float] | None = None

    def authors_panels(self) -> dict[str, Any]:
        """The authors' accounting on the same patterns, and ours relative to it."""
        assert self.authors_si is not None and self.authors_dsi is not None
        # the authors' accounting ignores server limits: give it only the lookaheads our DSI
        # ran without waiting for a server (with ``servers`` servers), for DSI and restricted SI
        ks = [k for k in self.si if not self.dsi_waited[k]] or list(self.si)
        a_si_r = min(self.authors_si[k] for k in ks)
        a_si_f = min(self.authors_si.values())
        a_dsi = min(self.authors_dsi[k] for k in ks)
        ours_dsi = min(self.dsi.values())
        return {
            "authors_dsi_vs_si_restricted": a_si_r / a_dsi,
            "authors_dsi_vs_si_free": a_si_f / a_dsi,
            "authors_dsi_vs_nonsi": self.nonsi / a_dsi,
            "ours_vs_authors_dsi": a_dsi / ours_dsi,
        }

    def panels(self, si_variant: str) -> dict[str, Any]:
        ks = list(self.si)
        if si_variant == "restricted":
            afford = [k for k in ks if not self.dsi_waited[k]]
            ks = afford or ks
        si_k = min(ks, key=lambda k: self.si[k])
        dsi_k = min(self.dsi, key=lambda k: self.dsi[k])
        si, dsi = self.si[si_k], self.dsi[dsi_k]
        return {
            "si_vs_nonsi": self.nonsi / si,
            "dsi_vs_si": si / dsi,
            "dsi_vs_nonsi": self.nonsi / dsi,
            "dsi_vs_best": min(si, self.nonsi) / dsi,
            "si_k": si_k,
            "dsi_k": dsi_k,
        }


def run_one(algorithm: str, pattern: Sequence[int], c: float, k: int, servers: int) -> Any:
    end, coord = replay_pattern(algorithm, pattern, k, servers, 1.0, c)
    return float(end), coord.stats.task_waits > 0


def simulate_cell(args: tuple) -> Cell:
    from dsi_core.experiments.authors import authors_dsi, authors_si
    from dsi_core.testing.synthetic import iid_pattern

    c, a, lookaheads, servers, n_tokens, seeds = args
    si = dict.fromkeys(lookaheads, 0.0)
    dsi = dict.fromkeys(lookaheads, 0.0)
    a_si = dict.fromkeys(lookaheads, 0.0)
    a_dsi = dict.fromkeys(lookaheads, 0.0)
    waited = dict.fromkeys(lookaheads, False)
    for seed in seeds:
        pattern = iid_pattern(n_tokens, a, seed)
        for k in lookaheads:
            si[k] += run_one("si", pattern, c, k, 1)[0] / len(seeds)
            end, w = run_one("dsi", pattern, c, k, servers)
            dsi[k] += end / len(seeds)
            waited[k] = waited[k] or w
            a_si[k] += authors_si(pattern, 1.0, c, k) / len(seeds)
            a_dsi[k] += authors_dsi(pattern, 1.0, c, k) / len(seeds)
    return Cell(c, a, float(n_tokens), si, dsi, waited, a_si, a_dsi)


def run_grid(
    c_values: Sequence[float],
    a_values: Sequence[float],
    lookaheads: Sequence[int],
    servers: int = 7,
    n_tokens: int = 1000,
    seeds: Sequence[int] = (0, 1, 2),
    jobs: int = 1,
    progress: bool = True,
) -> list[Cell]:
    from tqdm import tqdm

    work = [
        (c, a, list(lookaheads), servers, n_tokens, list(seeds)) for c in c_values for a in a_values
    ]
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as ex:
            return list(
                tqdm(
                    ex.map(simulate_cell, work, chunksize=4),
                    total=len(work),
                    disable=not progress,
                    desc="cells",
                )
            )
    return [simulate_cell(w) for w in tqdm(work, disable=not progress, desc="cells")]


AUTHORS_PANELS = (
    "authors_dsi_vs_si_restricted",
    "authors_dsi_vs_si_free",
    "authors_dsi_vs_nonsi",
    "ours_vs_authors_dsi",
)


def summary_dict(cells: list[Cell]) -> dict[str, dict[str, float]]:
    """``{variant/panel: {min, median, max, cells_below_1}}`` (the numbers of :func:`summary`)."""
    out: dict[str, dict[str, float]] = {}
    groups: list[tuple[str, list[dict[str, Any]], tuple[str, ...]]] = []
    if cells and cells[0].authors_dsi is not None:
        groups.append(("authors", [c.authors_panels() for c in cells], AUTHORS_PANELS))
    for variant in ("restricted", "free"):
        groups.append((variant, [c.panels(variant) for c in cells], PANELS))
    for variant, vals, panels in groups:
        for p in panels:
            xs = [v[p] for v in vals]
            out[f"{variant}/{p}"] = {
                "min": min(xs),
                "median": statistics.median(xs),
                "max": max(xs),
                "cells_below_1": sum(x < 1 - 1e-12 for x in xs),
            }
    return out


def summary(cells: list[Cell]) -> str:
    lines = [f"{'variant':<11}{'panel':<30}{'min':>8}{'median':>8}{'max':>8}{'cells<1':>9}"]
    if cells and cells[0].authors_dsi is not None:
        vals = [c.authors_panels() for c in cells]
        for p in AUTHORS_PANELS:
            xs = [v[p] for v in vals]
            below = sum(x < 1 - 1e-12 for x in xs)
            lines.append(
                f"{'authors':<11}{p:<30}{min(xs):>8.3f}{statistics.median(xs):>8.3f}"
                f"{max(xs):>8.3f}{below:>9}"
            )
    for variant in ("restricted", "free"):
        vals = [c.panels(variant) for c in cells]
        for p in PANELS:
            xs = [v[p] for v in vals]
            below = sum(x < 1 - 1e-12 for x in xs)
            lines.append(
                f"{variant:<11}{p:<30}{min(xs):>8.3f}{statistics.median(xs):>8.3f}"
                f"{max(xs):>8.3f}{below:>9}"
            )
    return "\n".join(lines)


def write_csv(cells: list[Cell], path: str) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        head = ["c_over_t", "acceptance", "nonsi"]
        for variant in ("restricted", "free"):
            head += [f"{variant}_{p}" for p in PANELS] + [f"{variant}_si_k", f"{variant}_dsi_k"]
        head += list(AUTHORS_PANELS)
        w.writerow(head)
        for c in cells:
            row: list[Any] = [c.c, c.a, c.nonsi]
            for variant in ("restricted", "free"):
                v = c.panels(variant)
                row += [f"{v[p]:.6f}" for p in PANELS] + [v["si_k"], v["dsi_k"]]
            ap = c.authors_panels()
            row += [f"{ap[p]:.6f}" for p in AUTHORS_PANELS]
            w.writerow(row)


def _heat(fig: Any, ax: Any, cells: list[Cell], value: Any, title: str) -> None:
    cs = sorted({c.c for c in cells})
    acc = sorted({c.a for c in cells})
    grid = np.full((len(cs), len(acc)), np.nan)
    for cell in cells:
        grid[cs.index(cell.c), acc.index(cell.a)] = value(cell)
    lim = max(abs(np.log2(np.nanmin(grid))), abs(np.log2(np.nanmax(grid))), 0.05)
    im = ax.imshow(
        np.log2(grid),
        origin="lower",
        aspect="auto",
        cmap="RdBu",
        vmin=-lim,
        vmax=lim,
        extent=(acc[0], acc[-1], cs[0], cs[-1]),
    )
    if np.nanmin(grid) < 1 < np.nanmax(grid):
        ax.contour(acc, cs, grid, levels=[1.0], colors="k", linewidths=0.8)
    ax.set_title(
        f"{title}\nmin {np.nanmin(grid):.3f} median {np.nanmedian(grid):.3f} "
        f"max {np.nanmax(grid):.2f}",
        fontsize=10,
    )
    ax.set_xlabel("acceptance rate")
    ax.set_ylabel("drafter latency c/t")
    fig.colorbar(im, ax=ax).set_label("log2 speedup")


def plot(cells: list[Cell], path: str, title: str = "") -> None:
    """Two rows (SI restricted / free) of the four panels; a third row: authors' accounting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    authors = bool(cells) and cells[0].authors_dsi is not None
    rows = 3 if authors else 2
    fig, axes = plt.subplots(rows, 4, figsize=(19, 4.3 * rows), constrained_layout=True)
    for r, variant in enumerate(("restricted", "free")):
        for j, p in enumerate(PANELS):
            _heat(
                fig,
                axes[r][j],
                cells,
                lambda c, p=p, v=variant: c.panels(v)[p],
                f"{p} (SI {variant})",
            )
    if authors:
        for j, p in enumerate(AUTHORS_PANELS):
            _heat(fig, axes[2][j], cells, lambda c, p=p: c.authors_panels()[p], p)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=90)
    plt.close(fig)
