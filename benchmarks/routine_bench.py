"""Suspension routine benchmark on a throwaway PostgreSQL (tests.pg.Cluster).

Bulk-loads (COPY) N services (one customer each, default 100,000) with ten monthly
invoices each (default 1,000,000), two payment methods, and an open accounting session for
half of the services; then times one SUSPENSION routine run end to end through
`billing_bridge.routines.run_routine` (lock, aggregate query, pure rules, bulk status
updates, history, change feed, CoA jobs, commit, run log). The issue's goal: ≤ 30 s.

Debt profile as of 2026-11-23 (São Paulo): 70 % of services paid everything; 15 % owe the
invoice due 2026-11-10 (13 days: BOLETO → partial, PIX → total); 10 % owe two invoices
(44 days: total); 5 % owe one due 2026-11-20 (3 days: nothing yet).
The last line printed is JSON: {"services": ..., "invoices": ..., "seconds": ...}.

    .venv/bin/python benchmarks/routine_bench.py [--services N] [--invoices-per-service K]
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aaa.db import migrate
from aaa.db.engine import make_engine, session_factory
from billing_bridge import routines
from management.context import DEFAULT_ZONE
from tests.pg import Cluster

NOW = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)  # 08:00 in São Paulo, a Monday
CREATED = "2026-01-01 00:00:00+00"
DUES = [date(2026, month, 10) for month in range(2, 12)]  # Feb..Nov, the 10th


def copy(engine: Engine, table: str, columns: tuple[str, ...], rows: Iterator[tuple[Any, ...]],
         chunk: int = 200_000) -> int:
    """COPY rows (tab-separated text) into a table, in chunks; returns the row count."""
    raw = engine.raw_connection()
    total = 0
    try:
        cursor = raw.cursor()
        buffer = io.StringIO()
        pending = 0

        def flush() -> None:
            buffer.seek(0)
            cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", buffer)  # type: ignore[attr-defined]
            buffer.seek(0)
            buffer.truncate()

        for row in rows:
            buffer.write("\t".join("\\N" if v is None else str(v) for v in row))
            buffer.write("\n")
            pending += 1
            total += 1
            if pending >= chunk:
                flush()
                pending = 0
        if pending:
            flush()
        raw.commit()
    finally:
        raw.close()
    return total


def profile(i: int) -> str:
    bucket = i % 20
    if bucket < 14:
        return "paid"
    if bucket < 17:
        return "one_overdue"
    if bucket < 19:
        return "two_overdue"
    return "recent"


def invoice_rows(services: int, per_service: int) -> Iterator[tuple[Any, ...]]:
    dues = DUES[-per_service:] if per_service <= len(DUES) else (
        [date(2025, 1, 1)] * (per_service - len(DUES)) + DUES)
    invoice_id = 0
    for i in range(services):
        service_id = i + 1
        kind = profile(i)
        open_from = {"paid": per_service, "one_overdue": per_service - 1,
                     "two_overdue": per_service - 2, "recent": per_service}[kind]
        for k, due in enumerate(dues):
            invoice_id += 1
            amount = "99.90"
            if k >= open_from:
                paid, status = ("0.00", "open") if k % 2 else ("30.00", "partially_paid")
            else:
                paid, status = amount, "paid"
            yield (invoice_id, service_id, due.isoformat(), amount, paid, status, None, CREATED,
                   CREATED)
        if kind == "recent":
            invoice_id += 1
            yield (invoice_id, service_id, "2026-11-20", "99.90", "0.00", "open", None, CREATED,
                   CREATED)


def load(engine: Engine, services: int, per_service: int) -> int:
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO plans (id, name, download_kbps, upload_kbps, price, allows_association,"
            " created_at) VALUES (1, 'FIBRA-100', 100000, 50000, 99.90, false, :t)"), {"t": NOW})
        connection.execute(text(
            "INSERT INTO payment_methods (id, name, allows_partial, partial_after_days,"
            " allows_total, total_after_days, min_open_amount, reduction_type, reduction_value,"
            " created_at) VALUES (1, 'BOLETO', true, 5, true, 15, 10.00, 'relative', 50, :t),"
            " (2, 'PIX', false, NULL, true, 10, 0.00, 'absolute', 1024, :t)"), {"t": NOW})
    copy(engine, "customers", ("id", "person_type", "name", "document", "active", "created_at"),
         ((i + 1, "PF", f"Cliente {i}", f"{i:011d}", "t", CREATED) for i in range(services)))
    copy(engine, "services", ("id", "customer_id", "plan_id", "login", "password", "status",
                              "mac_binding", "simultaneous_use", "payment_method_id", "created_at",
                              "updated_at"),
         ((i + 1, i + 1, 1, f"cliente{i}", f"senha{i}", "enabled", "off", 1, 1 + (i % 3 == 0),
           CREATED, CREATED) for i in range(services)))
    invoices = copy(engine, "invoices", ("id", "service_id", "due_date", "amount", "amount_paid",
                                         "status", "payment_method_id", "created_at", "updated_at"),
                    invoice_rows(services, per_service))
    copy(engine, "acct_sessions", ("unique_id", "acct_session_id", "nas_id", "nas_ip", "login",
                                   "service_id", "started_at", "updated_at", "session_time",
                                   "input_octets", "output_octets"),
         ((f"{i:032x}", f"s{i}", 1, "10.0.0.1", f"cliente{i}", i + 1, CREATED, CREATED, 0, 0, 0)
          for i in range(0, services, 2)))
    with engine.begin() as connection:
        for table in ("customers", "services", "invoices", "payment_methods", "acct_sessions"):
            last = connection.execute(text(f"SELECT coalesce(max(id), 1) FROM {table}")).scalar()
            connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {last})"))
        connection.execute(text(
            "INSERT INTO routines (name, task, month, day, weekday, hour, minute, enabled, created_at)"
            " VALUES ('suspensao', 'SUSPENSION', '*', '*', '1-5', '8', '0', true, :t)"), {"t": NOW})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
    return invoices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=100_000)
    parser.add_argument("--invoices-per-service", type=int, default=10)
    options = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="aaa-routine-bench-"))
    base.chmod(0o755)
    cluster = Cluster(base / "cluster")
    cluster.start()
    try:
        admin = create_engine(cluster.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text("CREATE DATABASE bench"))
        admin.dispose()
        engine = make_engine(cluster.url("bench"))
        migrate.upgrade(engine)
        started = time.perf_counter()
        invoices = load(engine, options.services, options.invoices_per_service)
        print(f"loaded {options.services} services, {invoices} invoices in "
              f"{time.perf_counter() - started:.1f} s", file=sys.stderr)

        sessions = session_factory(engine)
        started = time.perf_counter()
        run, result = routines.run_routine(
            sessions, "suspensao", NOW, actor=routines.ROUTINE_ACTOR, owner="bench",
            zone=DEFAULT_ZONE, settings=routines.RoutineSettings())
        seconds = time.perf_counter() - started
        if run.result != "ok":
            raise SystemExit(f"routine {run.result}: {run.error}")
        with engine.connect() as connection:
            by_status = dict(connection.execute(text(
                "SELECT status, count(*) FROM services GROUP BY status")).all())
        print(f"counts {result.counts}; services by status {by_status}", file=sys.stderr)
        engine.dispose()
        print(json.dumps({"services": options.services, "invoices": invoices,
                          "seconds": round(seconds, 2), "changed": result.counts.get("changed", 0),
                          "coa_jobs": result.counts.get("coa_jobs", 0)}))
    finally:
        cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
