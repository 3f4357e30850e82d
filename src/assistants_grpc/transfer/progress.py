"""What the import and export commands tell the person running them, on stderr.

On a terminal: one bar redrawn in place (at most ten times a second) and the problems above it.
Otherwise (a log, CI, a pipe): a plain line every `interval` seconds and at the end of each
phase, so a long import shows it is alive without flooding the log. Counts shown are of
committed work only: what a progress line says was imported is in the database.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]

_BAR_WIDTH = 24
_REDRAW_SECONDS = 0.1


class Progress:
    def __init__(
        self, stream: TextIO | None = None, *, interval: float = 5.0, tty: bool | None = None
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty() if tty is None else tty
        self._interval = interval
        self._phase = ""
        self._unit = ""
        self._total: int | None = None
        self._done = 0
        self._extra = ""
        self._began = time.monotonic()
        self._shown_at = float("-inf")
        self._bar_shown = False
        self._last = ""

    def phase(self, name: str, total: int | None, unit: str) -> None:
        """Start a phase (`reading`, `writing`): `total` units (bytes, objects), if known."""
        self._phase, self._total, self._unit = name, total, unit
        self._done, self._extra = 0, ""
        self._began = time.monotonic()
        self._shown_at = float("-inf")

    def advance(self, done: int, extra: str = "") -> None:
        """`done` units so far in this phase; `extra` is shown after the count."""
        self._done, self._extra = done, extra
        now = time.monotonic()
        wait = _REDRAW_SECONDS if self._tty else self._interval
        if now - self._shown_at >= wait:
            self._shown_at = now
            self._show()

    def end_phase(self) -> None:
        self._show()
        if self._tty and self._bar_shown:
            self._stream.write("\n")
            self._bar_shown = False
        self._stream.flush()

    def problem(self, text: str) -> None:
        """A line of the report (file:line: field: reason), above the bar on a terminal."""
        if self._tty and self._bar_shown:
            self._stream.write("\r\x1b[K")
            self._bar_shown = False
        self._stream.write(text + "\n")
        if self._tty:
            self._show()
        self._stream.flush()

    def _show(self) -> None:
        if not self._phase:
            return
        elapsed = max(time.monotonic() - self._began, 1e-9)
        rate = self._done / elapsed
        count = _amount(self._done, self._unit)
        if self._total:
            share = min(self._done / self._total, 1.0)
            count += f" of {_amount(self._total, self._unit)} ({share:.0%})"
        else:
            share = None
        text = f"{self._phase}: {count}, {_amount(int(rate), self._unit)}/s"
        if self._extra:
            text += f", {self._extra}"
        if text == self._last:
            return
        self._last = text
        if self._tty:
            filled = round(_BAR_WIDTH * share) if share is not None else 0
            bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
            self._stream.write(f"\r\x1b[K[{bar}] {text}")
            self._bar_shown = True
        else:
            self._stream.write(text + "\n")
        self._stream.flush()


def _amount(value: int, unit: str) -> str:
    if unit == "bytes":
        for size, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
            if value >= size:
                return f"{value / size:.1f} {name}"
        return f"{value} B"
    return f"{value:,} {unit}"
