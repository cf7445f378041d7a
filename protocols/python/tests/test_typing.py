"""The package is fully typed: mypy --strict passes on it and on the examples that use it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]


def test_mypy_strict(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--python-version", "3.10", "--cache-dir", str(tmp_path),
         "src/prm_client", *sorted(str(path.relative_to(PACKAGE)) for path in (PACKAGE / "examples").glob("*.py"))],
        cwd=PACKAGE, capture_output=True, text=True, timeout=300, env={"MYPYPATH": str(PACKAGE / "src"), "PATH": ""})
    assert run.returncode == 0, run.stdout + run.stderr
