"""Spinners and progress bars on stderr, as Ollama's `progress` package draws them.

On a terminal there is one live line, redrawn by a thread; when the next step starts the
live line is finished and left in place, so the steps read as a list afterwards. Anywhere else
(a pipe, a log file) nothing is animated: each status is written once as a plain line, and a
bar only when it completes, so logs stay free of escape codes.
"""

from __future__ import annotations

import sys
import threading
from typing import TextIO

import attrs

from trio_ollama.gocompat.format import human_bytes

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
BAR_WIDTH = 20
REDRAW = 0.1
CLEAR_LINE = "\r\x1b[K"


@attrs.define
class _Spinner:
    text: str
    frame: int = 0

    def render(self, done: bool) -> str:
        if done:
            return self.text
        mark = SPINNER[self.frame % len(SPINNER)]
        return f"{self.text} {mark}" if self.text else mark


@attrs.define
class _Bar:
    label: str
    total: int
    completed: int = 0

    def render(self, done: bool) -> str:
        fraction = min(self.completed / self.total, 1.0) if self.total > 0 else 1.0
        filled = int(fraction * BAR_WIDTH)
        bar = "█" * filled + " " * (BAR_WIDTH - filled)
        amount = (
            human_bytes(self.total)
            if fraction >= 1.0
            else f"{human_bytes(self.completed)}/{human_bytes(self.total)}"
        )
        return f"{self.label} {int(fraction * 100):3d}% ▕{bar}▏ {amount}"


class Progress:
    def __init__(self, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._lock = threading.Lock()
        self._current: _Spinner | _Bar | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_plain = ""

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def status(self, text: str) -> None:
        """Start a step: the previous live line is finished and stays on screen."""
        if not self.live:
            if text and text != self._last_plain:
                self._write(text + "\n")
            self._last_plain = text
            return
        with self._lock:
            if isinstance(self._current, _Spinner) and self._current.text == text:
                return
            self._finish()
            self._current = _Spinner(text)
            self._draw()
        self._start_thread()

    def bar(self, label: str, completed: int, total: int) -> None:
        if not self.live:
            if completed >= total and label != self._last_plain:
                self._write(f"{label} 100% {human_bytes(total)}\n")
                self._last_plain = label
            return
        with self._lock:
            current = self._current
            if not (isinstance(current, _Bar) and current.label == label):
                self._finish()
                current = self._current = _Bar(label, total)
            current.total, current.completed = total, completed
            self._draw()

    def stop(self, clear: bool = False) -> None:
        """End the live line: `clear` erases it (a wait spinner), else it is kept as a step."""
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
            self._thread = None
        with self._lock:
            if self._current is not None:
                if clear:
                    self._write(CLEAR_LINE)
                else:
                    self._finish()
                self._current = None

    # ----- internals (the lock is held)

    def _finish(self) -> None:
        if self._current is not None:
            self._write(CLEAR_LINE + self._current.render(done=True) + "\n")
            self._current = None

    def _draw(self) -> None:
        if self._current is not None:
            self._write(CLEAR_LINE + self._current.render(done=False))

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def _start_thread(self) -> None:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._animate, daemon=True)
            self._thread.start()

    def _animate(self) -> None:
        while not self._stopping.wait(REDRAW):
            with self._lock:
                if isinstance(self._current, _Spinner):
                    self._current.frame += 1
                    self._draw()
