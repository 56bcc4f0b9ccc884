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
    print(" ".join(parts), file=stream or sys.stderr, flush=True)
