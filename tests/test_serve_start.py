"""`aaa serve` refusing to start: one readable line, exit 1, nothing half-started.

A second daemon on the same data directory (its accounting journal), or on a port
another process holds, is what an operator meets at 3 a.m. after starting `aaa serve` by
hand beside the one systemd runs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.conftest import CliResult
from tests.daemon_process import BIND, free_tcp_port, running_daemon


def _serve(url: str, cwd: Path, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AAA_")}
    env.update(AAA_DATABASE_URL=url, AAA_DATA_DIR=str(cwd / "data"))
    options = ["--config", str(config)] if config else []
    return subprocess.run([sys.executable, "-m", "aaa.cli", *options, "serve", "--bind", BIND, *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return lines[0]


def test_a_second_daemon_on_the_same_data_directory_is_refused(
        cli: Callable[..., CliResult], tmp_path: Path) -> None:
    """The journal is locked by the running daemon: the second one (other ports) exits 1
    naming the journal and the first one's pid, and the first goes on answering with its
    journal untouched."""
    with running_daemon(cli.url, tmp_path) as daemon:  # type: ignore[attr-defined]
        journal = tmp_path / "data" / "journal" / "accounting-0.jnl"
        second = _serve(cli.url, tmp_path, "--auth-port", "0", "--acct-port", "0",  # type: ignore[attr-defined]
                        "--metrics-port", "0")
        line = _one_line(second)
        assert line.startswith("aaa: the accounting journal") and str(journal) in line
        assert f"(pid {daemon.pid})" in line and "[rule: serve.journal_in_use]" in line
        assert daemon.process.poll() is None
        assert daemon.sample("aaa_acct_journal_records") == 0
    with running_daemon(cli.url, tmp_path) as daemon:  # type: ignore[attr-defined]
        assert daemon.events("start")  # the lock went with the first daemon


def test_a_port_in_use_is_one_line(cli: Callable[..., CliResult], tmp_path: Path) -> None:
    """The authentication port held by another socket, or the metrics port: exit 1 with the
    address, the port, what it was for and the system's reason."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((BIND, 0))
        port = taken.getsockname()[1]
        line = _one_line(_serve(cli.url, tmp_path, "--auth-port", str(port), "--acct-port", "0",  # type: ignore[attr-defined]
                                "--metrics-port", "0"))
    assert line == (f"aaa: cannot listen on {BIND} port {port}/udp (authentication): "
                    "Address already in use [rule: serve.cannot_listen]")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind((BIND, free_tcp_port()))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_line(_serve(cli.url, tmp_path, "--auth-port", "0", "--acct-port", "0",  # type: ignore[attr-defined]
                                "--metrics-port", str(port)))
    assert f"cannot listen on {BIND} port {port}/tcp (metrics)" in line


def test_an_unusable_data_directory_or_dictionary_is_one_line(
        cli: Callable[..., CliResult], tmp_path: Path) -> None:
    """A data directory that cannot hold the journal (here a file stands in its way): exit
    1 naming the journal; an extra dictionary that does not exist: a configuration error,
    exit 2. Neither leaves a traceback."""
    (tmp_path / "data").write_text("not a directory")
    line = _one_line(_serve(cli.url, tmp_path, "--auth-port", "0", "--acct-port", "0",  # type: ignore[attr-defined]
                            "--metrics-port", "0"))
    assert line.startswith(f"aaa: cannot open the accounting journal {tmp_path / 'data' / 'journal'}")
    assert line.endswith("[rule: serve.data_dir]")
    (tmp_path / "data").unlink()
    config = tmp_path / "aaa.toml"
    config.write_text('[radius]\nextra_dictionaries = ["/nonexistent/dictionary.vendor"]\n')
    result = _serve(cli.url, tmp_path, "--auth-port", "0", "--acct-port", "0",  # type: ignore[attr-defined]
                    "--metrics-port", "0", config=config)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip() == ("aaa: configuration error: radius.extra_dictionaries: dictionary "
                                     "path /nonexistent/dictionary.vendor does not exist")


def test_a_journal_left_by_a_worker_that_no_longer_runs_is_replayed(
        cli: Callable[..., CliResult], tmp_path: Path) -> None:
    """The daemon ran with --workers 2 and worker 1's journal still holds acknowledged
    records (the database was down when it stopped); it is started again with one worker:
    worker 0 adopts that journal (its records appended to its own, the orphan emptied,
    `event=accounting_journal_adopted`) and the replay stores them."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    from aaa.accounting.events import START, AcctEvent
    from aaa.accounting.journal import Journal
    from aaa.db.engine import make_engine
    from aaa.db.models import AcctSession
    from tests.acct_process import poll

    assert cli("nas", "add", "mk", "--ip", "10.0.0.1", "--secret", "s", "--vendor", "mikrotik").code == 0
    orphan_path = tmp_path / "data" / "journal" / "accounting-1.jnl"
    orphan = Journal(orphan_path, 10_000_000)
    orphan.append([AcctEvent(START, datetime(2026, 11, 23, 12, 0, tzinfo=UTC), 1, "10.0.0.1",
                             unique_id=f"orphan-{n}", acct_session_id=f"s{n}", login="ana")
                   for n in range(3)])
    orphan.close()
    engine = make_engine(cli.url)  # type: ignore[attr-defined]

    def stored() -> list[str]:
        with engine.connect() as connection:
            return sorted(connection.scalars(select(AcctSession.unique_id)))

    try:
        with running_daemon(cli.url, tmp_path) as daemon:  # type: ignore[attr-defined]
            [adopted] = daemon.events("accounting_journal_adopted")
            assert adopted["records"] == "3" and adopted["journal"] == str(orphan_path)
            assert poll(lambda: stored() == ["orphan-0", "orphan-1", "orphan-2"], 15), stored()
        assert orphan_path.stat().st_size == 0
    finally:
        engine.dispose()
