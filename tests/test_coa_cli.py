"""`aaa coa ...` without a daemon (in-process CLI on SQLite and PostgreSQL), and the
Error-Cause table.

Sessions are put in acct_sessions directly; history rows are written as the dispatcher
writes them (aaa.db.coa.finish), so these tests pin the CLI's reading and output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aaa.coa.errors import ERROR_CAUSES, describe
from aaa.db import coa as jobs_db
from aaa.db.engine import make_engine
from aaa.db.models import AcctSession, CoaJob, Service
from tests.conftest import CliResult

RFC5176_CAUSES = {201, 202, *range(401, 408), *range(501, 509)}
AT = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


def setup(cli: Callable[..., CliResult], online: bool = True) -> None:
    for args in (("plan", "add", "FIBRA-100", "--download", "100000", "--upload", "50000",
                  "--price", "99.90"),
                 ("nas", "add", "mk", "--ip", "127.0.0.1", "--secret", "s3cr3t", "--vendor",
                  "mikrotik"),
                 ("customer", "add", "--name", "Cliente", "--document", "52998224725"),
                 ("service", "add", "--customer", "52998224725", "--plan", "FIBRA-100",
                  "--login", "ana", "--password", "s3nh@Forte")):
        assert cli("--format", "json", *args).code == 0
    if online:
        with _session(cli) as session, session.begin():
            service_id = session.scalar(select(Service.id).where(Service.login == "ana"))
            session.add(AcctSession(unique_id="u1", acct_session_id="81000001", nas_id=1,
                                    nas_ip="127.0.0.1", login="ana", service_id=service_id,
                                    framed_ip="100.64.0.10", started_at=AT, updated_at=AT))


@contextmanager
def _session(cli: Callable[..., CliResult]) -> Iterator[Session]:
    engine = make_engine(cli.url)  # type: ignore[attr-defined]
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def test_disconnect_queues_a_job_and_prints_it(cli: Callable[..., CliResult]) -> None:
    """`aaa coa disconnect LOGIN` queues one pending job and prints it (with its id);
    `aaa coa jobs --status pending` lists it."""
    setup(cli)
    result = cli("--format", "json", "coa", "disconnect", "ana", "--reason", "teste")
    assert result.code == 0, result.err
    job = result.json
    assert (job["login"], job["kind"], job["status"], job["reason"], job["operator"]) == (
        "ana", "disconnect", "pending", "teste", "admin")
    listed = cli("--format", "json", "coa", "jobs", "--status", "pending").json
    assert [j["id"] for j in listed] == [job["id"]]
    assert cli("--format", "json", "coa", "jobs", "--status", "done").json == []


def test_wait_without_a_daemon_is_bounded(cli: Callable[..., CliResult]) -> None:
    """`--wait` gives up after the given seconds with exit 1 (rule coa.not_settled)."""
    setup(cli)
    result = cli("--format", "json", "coa", "update", "ana", "--wait", "0.5")
    assert result.code == 1 and "coa.not_settled" in result.err
    assert result.json["status"] == "pending"


def test_no_open_session_is_refused(cli: Callable[..., CliResult]) -> None:
    """Nothing to act on: exit 1, rule coa.no_open_session, no job queued."""
    setup(cli, online=False)
    result = cli("coa", "update", "ana")
    assert result.code == 1 and "coa.no_open_session" in result.err
    assert cli("--format", "json", "coa", "jobs").json == []


def test_history_shows_error_causes_in_english_and_portuguese(cli: Callable[..., CliResult]) -> None:
    """`aaa coa history` lists every attempt newest first with the Error-Cause's name and
    meaning in both languages, the NAS by name, operator and reason; csv and table too."""
    setup(cli)
    job_id = cli("--format", "json", "coa", "disconnect", "ana").json["id"]
    rows: list[dict[str, Any]] = []
    for attempt, (result, cause) in enumerate((("timeout", None), ("nak", 503)), start=1):
        rows.append({"job_id": job_id, "at": AT.replace(second=attempt), "service_id": 1,
                     "login": "ana", "nas_id": 1, "nas_ip": "127.0.0.1",
                     "acct_session_id": "81000001", "request_type": "disconnect",
                     "attempt": attempt, "result": result, "error_cause": cause,
                     "latency_ms": 3.5 if cause else None, "operator_login": "admin",
                     "reason": "operator: disconnect"})
    with _session(cli) as session, session.begin():
        jobs_db.finish(session, job_id, "done", "ok", AT, rows)
    history = cli("--format", "json", "coa", "history", "ana").json
    assert [(h["attempt"], h["result"], h["error_cause"]) for h in history] == [
        (2, "nak", 503), (1, "timeout", None)]
    newest = history[0]
    assert newest["error_name"] == "Session Context Not Found"
    assert newest["meaning"] == "the subscriber was not found on the NAS: maybe already disconnected"
    assert newest["meaning_pt"] == "O assinante não foi encontrado no NAS, talvez já esteja desconectado."
    assert (newest["nas"], newest["session"], newest["type"], newest["operator"]) == (
        "mk", "81000001", "disconnect", "admin")
    assert newest["time"] == "2026-11-23T15:00:02+00:00"
    table = cli("coa", "history", "ana")
    assert table.code == 0 and "talvez já esteja desconectado" in table.out
    csv = cli("--format", "csv", "coa", "history", "ana").out.splitlines()
    assert csv[0].startswith("time,nas,nas_ip,login,session,type,attempt,result,error_cause,")
    assert cli("--format", "json", "coa", "jobs", "--status", "done").json[0]["id"] == job_id
    with _session(cli) as session:
        assert session.get(CoaJob, job_id).status == "done"  # type: ignore[union-attr]


def test_history_of_an_unknown_login(cli: Callable[..., CliResult]) -> None:
    """An unknown login: exit 1 (service.not_found)."""
    result = cli("coa", "history", "nobody")
    assert result.code == 1 and "service.not_found" in result.err


def test_every_rfc5176_error_cause_has_both_meanings() -> None:
    """201, 202, 401–407 and 501–508 are all known, with English and Portuguese meanings;
    an unknown code still describes itself."""
    assert set(ERROR_CAUSES) == RFC5176_CAUSES
    for cause in ERROR_CAUSES.values():
        assert cause.name and cause.meaning and cause.meaning_pt
    unknown = describe(999)
    assert unknown is not None and unknown.name == "Error-Cause 999"
    assert describe(None) is None
