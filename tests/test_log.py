"""Structured log lines (aaa.log): one write per line, repeated failures summarised."""

from __future__ import annotations

import io

import pytest

from aaa.log import Repeating, log_event


def test_a_line_is_one_write_with_quoted_values() -> None:
    """The whole line, newline included, leaves in one write (workers share stderr)."""
    writes: list[str] = []

    class Stream(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

    log_event("start", Stream(), worker=0, source="a file.toml", empty="")
    [line] = writes
    assert line.endswith("\n") and line.count("\n") == 1
    assert ' event=start worker=0 source="a file.toml" empty=""' in line


def test_repeating_failure_logs_first_then_once_a_minute_then_recovery(
        capsys: pytest.CaptureFixture[str]) -> None:
    """An hour-long outage failing every second: the first failure, one line a minute
    with the count since the last and how long it has failed, one `_recovered` line at
    the end — 61 lines instead of 3,600."""
    now = [0.0]
    failures = Repeating("view_refresh_failed", every=60.0, clock=lambda: now[0])
    for second in range(3600):
        now[0] = float(second)
        failures.failed(error="OperationalError")
    now[0] = 3600.0
    failures.succeeded()
    failures.succeeded()  # already recovered: nothing more
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 61
    assert "event=view_refresh_failed error=OperationalError" in lines[0] and "repeated" not in lines[0]
    assert "event=view_refresh_failed repeated=60 failing_for=60 error=OperationalError" in lines[1]
    assert "event=view_refresh_recovered failures=3600 failing_for=3600" in lines[-1]
    now[0] = 4000.0
    failures.failed(error="OperationalError")  # a new run starts with its own first line
    assert "repeated" not in capsys.readouterr().err
