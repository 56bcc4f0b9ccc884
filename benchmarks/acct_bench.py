"""Durable accounting throughput of `aaa serve` on PostgreSQL (issue 5).

Set-up, not timed: a throwaway PostgreSQL cluster, the schema, 10,000 subscribers and a
MikroTik NAS (as in auth_bench), `aaa serve` on free loopback ports. Then, over UDP with
the radload generator: one Accounting Start per subscriber (10,000 open sessions), and
Interim-Updates for those sessions — each one acknowledged only once durable (group
commit into PostgreSQL). Prints throughput and p50/p99 latency; checks afterwards that
every session is in the database with its last counters; last line JSON
{"throughput", "p50_ms", "p99_ms", ...}. FreeRADIUS with rlm_sql does about 2,800/s
here (one transaction per packet); the target is >= 15,000 durable records/s.

    .venv/bin/python benchmarks/acct_bench.py [--duration 10] [--subscribers 10000] [--window 256]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from auth_bench import SECRET, Server, populate  # noqa: E402
from radload import ACCOUNTING_RESPONSE, LoadConfig, run_load  # noqa: E402
from sqlalchemy import create_engine, func, select, text  # noqa: E402

from aaa.db import migrate  # noqa: E402
from aaa.db.models import AcctSession  # noqa: E402
from tests.pg import Cluster  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of Interim-Updates")
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=256, help="outstanding requests")
    parser.add_argument("--sockets", type=int, default=8)
    args = parser.parse_args(argv)

    base = Path(tempfile.mkdtemp(prefix="aaa-acct-bench-"))
    base.chmod(0o755)
    cluster = Cluster(base / "pg")
    cluster.start()
    try:
        admin = create_engine(cluster.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text("CREATE DATABASE bench"))
        admin.dispose()
        url = cluster.url("bench")
        engine = create_engine(url)
        migrate.upgrade(engine)
        subscribers = populate(url, args.subscribers)
        workdir = base / "work"
        workdir.mkdir()
        with Server(url, workdir, 1) as server:
            port = server.acct_port
            start = run_load(LoadConfig(
                host="127.0.0.1", port=port, secret=SECRET.encode(), window=args.window,
                duration=120.0, count=len(subscribers), sockets=args.sockets, accounting="start",
                expect_code=ACCOUNTING_RESPONSE, timeout=5.0), subscribers)
            print("starts:  " + start.summary(), flush=True)
            interim = run_load(LoadConfig(
                host="127.0.0.1", port=port, secret=SECRET.encode(), window=args.window,
                duration=args.duration, sockets=args.sockets, accounting="interim",
                expect_code=ACCOUNTING_RESPONSE, expect_rate=40_000.0, timeout=5.0), subscribers)
            print("interim: " + interim.summary(), flush=True)
        with engine.connect() as connection:
            rows = connection.scalar(select(func.count()).select_from(AcctSession))
            updated = connection.scalar(select(func.count()).select_from(AcctSession)
                                        .where(AcctSession.input_octets > 0))
        engine.dispose()
        print(f"database: {rows} sessions, {updated} with interim counters", flush=True)
        print(json.dumps({
            "throughput": round(interim.throughput), "p50_ms": round(interim.p50_ms, 3),
            "p99_ms": round(interim.p99_ms, 3), "starts_per_s": round(start.throughput),
            "sessions": rows, "errors": interim.errors + start.errors, "window": args.window}))
        return 0
    finally:
        cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
