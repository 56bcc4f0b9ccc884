"""One structured line per event on stderr (logfmt: `event=start key=value ...`).

Callers pass only what may be shown: never a secret or a password.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TextIO


def _quote(value: object) -> str:
    text = str(value)
    if not text or any(c in text for c in ' ="'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def log_event(event: str, stream: TextIO | None = None, **fields: object) -> None:
    _emit(event, fields, stream)


def _emit(event: str, fields: Mapping[str, object], stream: TextIO | None = None) -> None:
    parts = [f"ts={datetime.now(UTC).isoformat(timespec='milliseconds')}", f"event={_quote(event)}"]
    parts.extend(f"{key}={_quote(value)}" for key, value in fields.items())
    # One write of the whole line: the workers of `serve --workers N` share stderr, and
    # print() (text, then the newline) let their lines run into each other.
    out = stream or sys.stderr
    out.write(" ".join(parts) + "\n")
    out.flush()


class Repeating:
    """A failure that repeats every second while something is away (the database, for an
    hour at 3 a.m.) logs its first occurrence, then at most one line per `every` seconds
    with how many there were since (`repeated=`) and for how long (`failing_for=`), and one
    `<event>_recovered` line when it stops: the log stays readable through an outage."""

    def __init__(self, event: str, every: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.event = event
        self.every = every
        self._clock = clock
        self._first: float | None = None
        self._last = 0.0
        self._since = 0
        self._total = 0

    def failed(self, **fields: object) -> None:
        now = self._clock()
        self._total += 1
        if self._first is None:
            self._first = self._last = now
            self._since = 0
            _emit(self.event, fields)
            return
        self._since += 1
        if now - self._last >= self.every:
            _emit(self.event, {"repeated": self._since, "failing_for": round(now - self._first), **fields})
            self._last = now
            self._since = 0

    def succeeded(self) -> None:
        if self._first is None:
            return
        _emit(f"{self.event.removesuffix('_failed')}_recovered",
              {"failures": self._total, "failing_for": round(self._clock() - self._first)})
        self._first = None
        self._total = 0
