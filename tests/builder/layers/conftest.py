from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # for layer_treeutil (importlib import mode)


@pytest.fixture(autouse=True)
def _needs_root() -> None:
    # The layer format carries owners, device nodes and trusted.* xattrs: these tests run as
    # root (CI runs as root). Fail loudly rather than skip.
    assert os.geteuid() == 0, "builder/layers tests must run as root"
