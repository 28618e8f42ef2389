"""Progress views for pull and push: docker's per-layer lines.

`update(item, status, current, total)` is called from the transfer loop; views decide what to
draw. TtyProgress redraws one line per layer in place (bytes, speed, a bar) at most ten times a
second; PlainProgress prints a line when a layer's status changes; JsonProgress prints one JSON
object per status change (and per second while bytes move).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO


def human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.1f}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n:.1f}GB"


@dataclass(slots=True)
class _Item:
    status: str = "Waiting"
    current: int = 0
    total: int = 0
    started: float = field(default_factory=time.monotonic)
    last_emit: float = 0.0

    def speed(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.current / elapsed if elapsed > 0 else 0.0


class TransferProgress:
    """Base view: tracks items; subclasses render. `quiet` views print nothing."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.items: dict[str, _Item] = {}

    def update(self, item: str, status: str, current: int | None = None,
               total: int | None = None) -> None:
        entry = self.items.get(item)
        if entry is None:
            entry = self.items[item] = _Item()
        changed = entry.status != status
        if changed and status in ("Downloading", "Pushing"):
            entry.started = time.monotonic()
        entry.status = status
        if current is not None:
            entry.current = current
        if total is not None:
            entry.total = total
        self._render(item, entry, changed)

    def advance(self, item: str, status: str, delta: int) -> None:
        entry = self.items.get(item)
        current = (entry.current if entry else 0) + delta
        self.update(item, status, current)

    def note(self, message: str) -> None:
        self.stream.write(message + "\n")
        self.stream.flush()

    def close(self) -> None:
        pass

    def _render(self, item: str, entry: _Item, changed: bool) -> None:
        pass


class QuietProgress(TransferProgress):
    def note(self, message: str) -> None:
        pass


class PlainProgress(TransferProgress):
    def _render(self, item: str, entry: _Item, changed: bool) -> None:
        if not changed:
            return
        extra = f" ({human_size(entry.total)})" if entry.total and entry.status in (
            "Downloading", "Pushing") else ""
        self.stream.write(f"{item}: {entry.status}{extra}\n")
        self.stream.flush()


class JsonProgress(TransferProgress):
    def _render(self, item: str, entry: _Item, changed: bool) -> None:
        now = time.monotonic()
        if not changed and now - entry.last_emit < 1.0:
            return
        entry.last_emit = now
        self.stream.write(json.dumps({"id": item, "status": entry.status,
                                      "current": entry.current, "total": entry.total}) + "\n")
        self.stream.flush()

    def note(self, message: str) -> None:
        self.stream.write(json.dumps({"message": message}) + "\n")
        self.stream.flush()


class TtyProgress(TransferProgress):
    """docker's live view: one line per layer, redrawn in place."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._drawn = 0
        self._last = 0.0

    def _line(self, item: str, entry: _Item) -> str:
        if entry.status in ("Downloading", "Pushing") and entry.total:
            width = 40
            done = min(width, int(width * entry.current / entry.total))
            bar = "=" * max(done - 1, 0) + (">" if done else "") + " " * (width - done)
            return (f"{item}: {entry.status:<12} [{bar}] {human_size(entry.current)}/"
                    f"{human_size(entry.total)} {human_size(entry.speed())}/s")
        return f"{item}: {entry.status}"

    def _render(self, item: str, entry: _Item, changed: bool) -> None:
        now = time.monotonic()
        if not changed and now - self._last < 0.1:
            return
        self._last = now
        self._redraw()

    def _redraw(self) -> None:
        out = []
        if self._drawn:
            out.append(f"\x1b[{self._drawn}F")
        for item, entry in self.items.items():
            out.append("\x1b[2K" + self._line(item, entry) + "\n")
        self._drawn = len(self.items)
        self.stream.write("".join(out))
        self.stream.flush()

    def note(self, message: str) -> None:
        self._redraw()
        self._drawn = 0
        self.items.clear()
        super().note(message)

    def close(self) -> None:
        if self.items:
            self._redraw()


def open_transfer_progress(mode: str = "auto", stream: TextIO | None = None,
                           quiet: bool = False) -> TransferProgress:
    """`auto` picks `tty` on a terminal and `plain` otherwise."""
    out = stream if stream is not None else sys.stderr
    if quiet:
        return QuietProgress(out)
    if mode == "auto":
        mode = "tty" if out.isatty() else "plain"
    views: dict[str, type[TransferProgress]] = {
        "tty": TtyProgress, "plain": PlainProgress, "json": JsonProgress}
    return views.get(mode, PlainProgress)(out)
