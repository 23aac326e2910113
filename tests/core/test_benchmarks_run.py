"""The benchmarks still run against the current package (they reach into a few internals).

A refactor once broke two of them unnoticed until the next `make bench`; this smoke run keeps
them working. It measures nothing: the figures come from `make bench` on a quiet machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmarks_run_without_failures(tmp_path: Path) -> None:
    proc = subprocess.run(  # noqa: S603  (our own interpreter and module)
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--only",
            "overhead,bulk,tokens,webhook",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "failed**" not in out, out[-4000:]
    ran = json.loads((tmp_path / "latest.json").read_text(encoding="utf-8"))["benchmarks"]
    assert set(ran) == {"overhead", "bulk", "tokens", "webhook"}
    for name, result in ran.items():
        assert result["error"] is None, (name, result["error"])
        assert result["rows"], f"{name} measured nothing"
