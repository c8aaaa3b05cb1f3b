"""The benchmark helpers run and report sane structures (no timing assertions)."""

from __future__ import annotations

from dsi_core.bench import Row, coordinator_overhead, format_bench
from dsi_core.cli import main


def test_overhead_reports_every_mode_and_drafter():
    out = coordinator_overhead(n_tokens=100, vocab=16, repeats=1)
    assert set(out) == {(m, d) for m in ("greedy", "rejection") for d in ("perfect", "half")}
    for us, acc in out.values():
        assert us > 0 and 0 <= acc <= 1
    assert out[("greedy", "perfect")][1] == 1.0


def test_format_bench_ratios():
    rows = [
        Row("-", "nonsi", 1, 1, [4.0, 4.0], 10, 0.0, 10.0),
        Row("x", "si", 2, 1, [2.0, 2.0], 10, 0.5, 5.0),
        Row("x", "dsi", 2, 3, [1.0, 1.0], 10, 0.5, 7.0),
    ]
    speed = {("x", "si", 2, 1): [2.0, 2.0], ("x", "dsi", 2, 3): [4.0, 4.0]}
    text = format_bench(rows, speed, 2)
    dsi_line = next(line for line in text.splitlines() if line.startswith("x") and "dsi" in line)
    assert dsi_line.split()[-2:] == ["4.00", "2.00"]


def test_cli_overhead_and_bad_bench_args(capsys):
    assert main(["overhead", "--tokens", "50"]) == 0
    assert "us/token" in capsys.readouterr().out
    assert main(["bench", "--repeats", "0"]) == 2
