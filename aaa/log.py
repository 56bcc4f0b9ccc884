"""One structured line per event on stderr (logfmt: `event=start key=value ...`).

Callers pass only what may be shown: never a secret or a password.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TextIO


def _quote(value: object) -> str:
    text = str(value)
    if not text or any(c in text for c in ' ="'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def log_event(event: str, stream: TextIO | None = None, **fields: object) -> None:
    parts = [f"ts={datetime.now(UTC).isoformat(timespec='milliseconds')}", f"event={_quote(event)}"]
    parts.extend(f"{key}={_quote(value)}" for key, value in fields.items())
    # One write of the whole line: the workers of `serve --workers N` share stderr, and
    # print() (text, then the newline) let their lines run into each other.
    out = stream or sys.stderr
    out.write(" ".join(parts) + "\n")
    out.flush()
