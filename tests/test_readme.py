"""The README's two set-up commands are the ones CI and users really run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert block, "README has no ```sh block with the set-up commands"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_readme_opens_with_two_commands() -> None:
    """The first shell block holds exactly two commands: run the server, run the tests."""
    commands = readme_commands()
    assert len(commands) == 2
    assert "aaa demo" in commands[0] and "pytest" in commands[1]


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run contains the README's test command verbatim."""
    assert readme_commands()[1] in (ROOT / ".ci" / "run").read_text()


def test_every_metric_the_readme_names_exists() -> None:
    """The alert table and the rest of the README name only series `/metrics` really has
    (a renamed metric must not leave an alert that can never fire)."""
    import os
    import socket

    from prometheus_client import generate_latest

    from aaa.daemon.metrics import Metrics
    from management.audit import NOTIFY_CHANNEL

    metrics = Metrics()
    metrics.drop("bad_authenticator", "mk")  # labelled series appear once used
    metrics.requests.inc("mk", "pap", "accept")
    metrics.duplicate("mk")
    metrics.authlog_dropped.inc()
    metrics.coa.requests.labels(nas="mk", type="coa", result="ack").inc()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        metrics.receive_drops.sockets["auth"] = os.fstat(sock.fileno()).st_ino
        exposed = set(re.findall(r"^(aaa_[a-z_]+)", generate_latest(metrics.registry).decode(), re.M))
    histograms = {name.removesuffix("_bucket") for name in exposed if name.endswith("_bucket")}
    named = set(re.findall(r"`[^`]*?\b(aaa_[a-z_]+)", (ROOT / "README.md").read_text()))
    named -= {NOTIFY_CHANNEL}
    assert len(named) >= 10, named
    known = exposed | histograms
    # a name is a series, or a prefix the README greps for (`grep aaa_radius`)
    missing = [n for n in named if n not in known and not any(e.startswith(n + "_") for e in known)]
    assert not missing, missing
