"""`dsi ... | head`: a reader that leaves early is not an error (exit 0, no traceback)."""

from __future__ import annotations

import subprocess
import sys

import dsi_core.cli as cli


def test_broken_pipe_is_a_quiet_exit(monkeypatch):
    def boom(args):
        raise BrokenPipeError

    monkeypatch.setitem(cli.COMMANDS, "overhead", boom)
    try:
        assert cli.main(["overhead"]) == 0
    finally:
        sys.stdout = sys.__stdout__


def test_head_closes_the_pipe_without_a_traceback():
    code = (
        "import sys, dsi_core.cli as c\n"
        "def many(a):\n"
        "    for i in range(200000):\n"
        "        print('line', i)\n"
        "    return 0\n"
        "c.COMMANDS['overhead'] = many\n"
        "sys.exit(c.main(['overhead']))\n"
    )
    p = subprocess.run(
        f'{sys.executable} -c "{code}" | head -1', shell=True, capture_output=True, text=True
    )
    assert p.stdout == "line 0\n"
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr
