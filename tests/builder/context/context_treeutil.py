"""Small helpers to lay out real context trees for the build-context tests."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Link:
    target: str


@dataclass(frozen=True)
class Dir:
    mode: int = 0o755


def make_tree(root: Path, spec: dict[str, str | bytes | Link | Dir]) -> Path:
    """Create `spec` (relative path -> content / Link / Dir) under `root`; returns `root`."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, value in spec.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(value, Link):
            os.symlink(value.target, path)
        elif isinstance(value, Dir):
            path.mkdir(exist_ok=True)
            path.chmod(value.mode)
        else:
            data = value.encode() if isinstance(value, str) else value
            path.write_bytes(data)
            path.chmod(0o644)
    return root


class CountingHasher:
    """A ContentHasher that counts calls and remembers the inodes it read."""

    def __init__(self) -> None:
        import hashlib

        self._hashlib = hashlib
        self.calls = 0
        self.inodes: list[int] = []

    def __call__(self, stream: object) -> str:
        self.calls += 1
        self.inodes.append(os.fstat(stream.fileno()).st_ino)  # type: ignore[attr-defined]
        return self._hashlib.file_digest(stream, "sha256").hexdigest()  # type: ignore[arg-type]
