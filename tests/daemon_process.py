"""`aaa serve` as a real process for end-to-end tests.

`running_daemon(url, cwd)` starts `python -m aaa.cli serve` on 127.0.0.1 against the
database at `url` (data directory — the accounting journal — under `cwd`, ephemeral
auth and accounting ports), waits (bounded) for its `event=start` line, yields a `Daemon` with the
ports it really listens on, and on exit sends SIGTERM to that one process, waits
(bounded) and kills it only if it did not stop.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
BIND = "127.0.0.1"

_LABELS = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def free_tcp_port(count: int = 1) -> int:
    """A TCP port free right now on 127.0.0.1 (the kernel picks it), with the `count` - 1
    after it free too (`--workers N` serves metrics on port + i)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((BIND, 0))
            base = int(sock.getsockname()[1])
        if base + count <= 65536 and all(_tcp_free(base + i) for i in range(1, count)):
            return base
    raise RuntimeError(f"no {count} consecutive free TCP ports")


def _tcp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((BIND, port))
        except OSError:
            return False
        return True


def parse_logfmt(line: str) -> dict[str, str]:
    """`key=value key="quoted value"` → dict (enough for our own log lines)."""
    fields: dict[str, str] = {}
    for match in re.finditer(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)', line):
        value = match.group(2)
        if value.startswith('"'):
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        fields[match.group(1)] = value
    return fields


@dataclass
class Daemon:
    process: subprocess.Popen[str]
    auth_port: int
    metrics_port: int
    acct_port: int = 0
    lines: list[str] = field(default_factory=list)  # stderr, as it arrives

    @property
    def pid(self) -> int:
        return self.process.pid

    def events(self, name: str) -> list[dict[str, str]]:
        return [f for f in map(parse_logfmt, list(self.lines)) if f.get("event") == name]

    def metrics_text(self) -> str:
        url = f"http://{BIND}:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every sample: (name, labels) → value."""
        samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for line in self.metrics_text().splitlines():
            if not line or line.startswith("#"):
                continue
            head, _, value = line.rpartition(" ")
            name, _, labels = head.partition("{")
            samples[(name, frozenset(_LABELS.findall(labels)))] = float(value)
        return samples

    def sample(self, name: str, **labels: str) -> float:
        """One sample's value, 0 when the series does not exist (yet)."""
        return self.metrics().get((name, frozenset(labels.items())), 0.0)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM to this daemon's own pid; kill it if it has not stopped in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return int(self.process.returncode)


def _drain(stream: object, lines: list[str], started: threading.Event) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.append(line.rstrip("\n"))
        if "event=start" in line:
            started.set()
    started.set()  # EOF: the process is gone; the waiter looks at the exit code


@contextmanager
def running_daemon(url: str, cwd: Path, extra_args: tuple[str, ...] = (),
                   timeout: float = START_TIMEOUT, config: Path | None = None) -> Iterator[Daemon]:
    """Run `aaa serve` on 127.0.0.1 with an ephemeral auth port and a free metrics port
    (and `aaa --config CONFIG` when given)."""
    workers = int(extra_args[extra_args.index("--workers") + 1]) if "--workers" in extra_args else 1
    metrics_port = free_tcp_port(workers)
    env = {k: v for k, v in os.environ.items()
           if k not in ("AAA_CONFIG", "AAA_OPERATOR", "AAA_WORKER_INDEX", "AAA_WORKER_AUTH_PORT",
                     "AAA_WORKER_ACCT_PORT")}
    env["AAA_DATABASE_URL"] = url
    env["AAA_DATA_DIR"] = str(cwd / "data")
    global_options = ("--config", str(config)) if config else ()
    command = [sys.executable, "-m", "aaa.cli", *global_options, "serve", "--bind", BIND, "--auth-port", "0",
               "--acct-port", "0", "--metrics-port", str(metrics_port), *extra_args]
    process = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    started = threading.Event()
    reader = threading.Thread(target=_drain, args=(process.stderr, lines, started), daemon=True)
    reader.start()
    daemon = Daemon(process, 0, metrics_port, lines=lines)
    try:
        deadline = time.monotonic() + timeout
        while not started.wait(0.05):
            if time.monotonic() > deadline:
                raise TimeoutError(f"aaa serve did not start in {timeout}s: {lines[-5:]}")
        start = daemon.events("start")
        if not start:
            process.wait(STOP_TIMEOUT)
            raise RuntimeError(f"aaa serve exited ({process.returncode}): " + "\n".join(lines[-20:]))
        daemon.auth_port = int(start[0]["auth_port"])
        daemon.acct_port = int(start[0].get("acct_port", 0))
        daemon.metrics_port = int(start[0]["metrics_port"])
        yield daemon
    finally:
        daemon.stop()
        reader.join(STOP_TIMEOUT)
        if process.stderr is not None:
            process.stderr.close()
