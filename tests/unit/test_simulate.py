"""``dsi simulate`` machinery on a tiny grid (the full grid is a benchmark, not a test)."""

from __future__ import annotations

import csv
from fractions import Fraction

from dsi_core.cli import main
from dsi_core.experiments.simulate import PANELS, run_grid, simulate_cell, summary, write_csv
from dsi_core.testing.synthetic import iid_pattern
from proofs.latency_model import dsi_latency, si_latency


def test_cell_latencies_match_the_proved_model():
    c, a, ks, n, seeds = 0.25, 0.7, [1, 2, 3], 30, [0, 1]
    cell = simulate_cell((c, a, ks, 64, n, seeds))  # 64 servers: no task waits
    for k in ks:
        want_si = sum(si_latency(iid_pattern(n, a, s), 1, Fraction(1, 4), k) for s in seeds) / 2
        want_dsi = sum(dsi_latency(iid_pattern(n, a, s), 1, Fraction(1, 4), k) for s in seeds) / 2
        assert abs(cell.si[k] - float(want_si)) < 1e-9
        assert abs(cell.dsi[k] - float(want_dsi)) < 1e-9
        assert not cell.dsi_waited[k]


def test_panels_and_outputs(tmp_path):
    cells = run_grid(
        [0.1, 0.9], [0.2, 0.9], [1, 2], servers=2, n_tokens=20, seeds=[0], progress=False
    )
    for cell in cells:
        for variant in ("restricted", "free"):
            v = cell.panels(variant)
            si, dsi = cell.si[v["si_k"]], cell.dsi[v["dsi_k"]]
            assert v["dsi_vs_best"] == min(si, cell.nonsi) / dsi
            assert v["dsi_vs_si"] == si / dsi
        # free SI is at least as fast as restricted SI
        assert cell.panels("free")["dsi_vs_si"] <= cell.panels("restricted")["dsi_vs_si"]
    path = tmp_path / "g.csv"
    write_csv(cells, str(path))
    rows = list(csv.DictReader(open(path)))
    assert len(rows) == 4 and all(f"free_{p}" in rows[0] for p in PANELS)
    assert "dsi_vs_best" in summary(cells)


def test_cli_simulate(tmp_path, capsys):
    out = str(tmp_path / "fig")
    assert (
        main(
            [
                "simulate",
                "--cells",
                "2",
                "--lookahead-max",
                "2",
                "--tokens",
                "10",
                "--seeds",
                "1",
                "--out",
                out,
            ]
        )
        == 0
    )
    assert "dsi_vs_nonsi" in capsys.readouterr().out
    with open(out + ".png", "rb") as f:
        assert f.read(4) == b"\x89PNG"
    assert main(["simulate", "--cells", "0"]) == 2
