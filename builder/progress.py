"""Build progress: a live per-step view on a TTY, plain lines for CI logs, JSON events for tools.

The orchestrator reports events through `Progress` (thread-safe: independent stages run
concurrently); a `Progress` never influences the build. `open_progress(mode, stream)` picks one:
"tty" (redrawn view: step, status, duration, CACHED), "plain" (docker's `--progress=plain`
style: `#3 [stage-0 2/4] RUN make`, output lines, `#3 DONE 1.2s`), "rawjson" (one JSON object
per line), "quiet" (nothing but errors), "auto" (tty when the stream is a terminal).
"""

from __future__ import annotations

import json
import threading
import time
from typing import NamedTuple, TextIO

# Every `strata build` imports this module, a no-op rebuild answered by the build memo
# included: plain classes here, because importing dataclasses alone costs ~10 ms.


class StepView:
    """One step as the views show it (mutated under Progress's lock)."""

    __slots__ = ("ended", "id", "last_line", "name", "started", "status")

    def __init__(self, id: int, name: str) -> None:  # noqa: A002 (the step's number)
        self.id = id
        self.name = name
        self.started = time.monotonic()
        self.ended: float | None = None
        self.status = "running"  # running, cached, done, error
        self.last_line = ""

    @property
    def duration(self) -> float:
        return (self.ended or time.monotonic()) - self.started


class Summary(NamedTuple):
    """What a finished build prints last."""

    image_id: str
    names: tuple[str, ...]
    size: int
    cached: int
    run: int
    seconds: float


class Progress:
    """Base: records steps; subclasses render. All methods are thread-safe."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.steps: dict[int, StepView] = {}
        self._lock = threading.Lock()
        self._next = 0

    def start(self, name: str) -> int:
        with self._lock:
            self._next += 1
            view = StepView(self._next, name)
            self.steps[view.id] = view
            self._on_start(view)
            return view.id

    def output(self, step: int, data: bytes) -> None:
        with self._lock:
            view = self.steps[step]
            text = data.decode("utf-8", "replace")
            lines = [ln for ln in text.splitlines() if ln.strip()]
            if lines:
                view.last_line = lines[-1][:120]
            self._on_output(view, text)

    def finish(self, step: int, status: str, message: str = "") -> None:
        with self._lock:
            view = self.steps[step]
            view.status = status
            view.ended = time.monotonic()
            self._on_finish(view, message)

    def note(self, message: str) -> None:
        with self._lock:
            self._on_note(message)

    def close(self, summary: Summary | None) -> None:
        with self._lock:
            self._on_close(summary)

    # -- rendering hooks ------------------------------------------------------------------
    def _on_start(self, view: StepView) -> None: ...

    def _on_output(self, view: StepView, text: str) -> None: ...

    def _on_finish(self, view: StepView, message: str) -> None: ...

    def _on_note(self, message: str) -> None: ...

    def _on_close(self, summary: Summary | None) -> None:
        if summary is not None:
            self.stream.write(summary_text(summary) + "\n")
            self.stream.flush()


def summary_text(s: Summary) -> str:
    from builder.cli_images import human_size

    names = f" ({', '.join(s.names)})" if s.names else ""
    return (f"Successfully built {s.image_id[7:19]}{names}: {human_size(s.size)}, "
            f"{s.cached} steps cached, {s.run} run, {s.seconds:.2f}s\n"
            f"image ID {s.image_id}")


class PlainProgress(Progress):
    def _on_start(self, view: StepView) -> None:
        self.stream.write(f"#{view.id} {view.name}\n")
        self.stream.flush()

    def _on_output(self, view: StepView, text: str) -> None:
        for line in text.splitlines():
            self.stream.write(f"#{view.id} {view.duration:.3f} {line}\n")
        self.stream.flush()

    def _on_finish(self, view: StepView, message: str) -> None:
        if view.status == "cached":
            self.stream.write(f"#{view.id} CACHED\n")
        elif view.status == "error":
            self.stream.write(f"#{view.id} ERROR: {message.splitlines()[0] if message else ''}\n")
        else:
            self.stream.write(f"#{view.id} DONE {view.duration:.1f}s\n")
        self.stream.flush()

    def _on_note(self, message: str) -> None:
        self.stream.write(message + "\n")
        self.stream.flush()


class JsonProgress(Progress):
    def _emit(self, obj: dict[str, object]) -> None:
        obj["time"] = round(time.time(), 6)
        self.stream.write(json.dumps(obj, sort_keys=True) + "\n")
        self.stream.flush()

    def _on_start(self, view: StepView) -> None:
        self._emit({"event": "start", "step": view.id, "name": view.name})

    def _on_output(self, view: StepView, text: str) -> None:
        self._emit({"event": "log", "step": view.id, "data": text})

    def _on_finish(self, view: StepView, message: str) -> None:
        self._emit({"event": view.status, "step": view.id, "name": view.name,
                    "duration": round(view.duration, 6), "message": message or None})

    def _on_note(self, message: str) -> None:
        self._emit({"event": "note", "message": message})

    def _on_close(self, summary: Summary | None) -> None:
        if summary is not None:
            self._emit({"event": "summary", "image_id": summary.image_id,
                        "names": list(summary.names), "size": summary.size,
                        "cached": summary.cached, "run": summary.run,
                        "seconds": round(summary.seconds, 6)})


class QuietProgress(Progress):
    def _on_close(self, summary: Summary | None) -> None:
        del summary


class TtyProgress(Progress):
    """Redraws one line per step (ANSI cursor movement) at most every 100 ms."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._drawn = 0
        self._last = 0.0
        self._t0 = time.monotonic()

    def _line(self, view: StepView) -> str:
        status = {"cached": "CACHED", "done": "DONE", "error": "ERROR"}.get(view.status, "")
        dur = f"{view.duration:5.1f}s"
        text = f"#{view.id:<3} {view.name[:70]:<70} {status:>6} {dur}"
        if view.status == "running" and view.last_line:
            text += f"\n     > {view.last_line[:100]}"
        return text

    def _redraw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        lines: list[str] = [f"[+] Building {now - self._t0:.1f}s"]
        for view in self.steps.values():
            lines.extend(self._line(view).split("\n"))
        out = ""
        if self._drawn:
            out += f"\x1b[{self._drawn}F"
        out += "".join(f"\x1b[2K{ln}\n" for ln in lines)
        self.stream.write(out)
        self.stream.flush()
        self._drawn = len(lines)

    def _on_start(self, view: StepView) -> None:
        self._redraw(force=True)

    def _on_output(self, view: StepView, text: str) -> None:
        self._redraw()

    def _on_finish(self, view: StepView, message: str) -> None:
        self._redraw(force=True)
        if view.status == "error" and message:
            self.stream.write(message + "\n")
            self._drawn = 0

    def _on_note(self, message: str) -> None:
        self.stream.write(message + "\n")
        self._drawn = 0


def open_progress(mode: str, stream: TextIO, *, quiet: bool = False) -> Progress:
    if quiet:
        return QuietProgress(stream)
    if mode == "auto":
        mode = "tty" if stream.isatty() else "plain"
    classes: dict[str, type[Progress]] = {"tty": TtyProgress, "plain": PlainProgress,
                                          "rawjson": JsonProgress, "quiet": QuietProgress}
    if mode not in classes:
        from builder.errors import InvalidArgument

        raise InvalidArgument(f"unknown progress mode {mode!r} (auto, tty, plain, rawjson)")
    return classes[mode](stream)
