"""Run the installed entry point (``rnnmem.cli:main``) in-process, for the CLI tests."""

from __future__ import annotations

import sys


def run_main(monkeypatch, capsys, args):
    """``rnnmem *args`` in-process: (exit code, stdout, stderr)."""
    from rnnmem.cli import main

    monkeypatch.setattr(sys, "argv", ["rnnmem", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err
