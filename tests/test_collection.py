"""`make test` runs every test file: none is skipped by a collection rule.

pytest's default norecursedirs contains "build", which silently dropped tests/builder/build
(every real build test) from the suite; pyproject.toml now sets norecursedirs itself.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_test_file_is_collected() -> None:
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p",
                          "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    collected = {line.split("::", 1)[0] for line in out.stdout.splitlines() if "::" in line}
    on_disk = {str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")}
    assert on_disk - collected == set()
    assert "tests/builder/build/test_memo.py" in collected
