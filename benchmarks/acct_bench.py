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
        [--workers 2] [--profile]

--profile: during the Interim phase, py-spy samples `aaa serve` (the thread holding the
GIL), and the CPU seconds of `aaa serve` and of the PostgreSQL processes are read from
/proc, with the acct_sessions table's update counters (HOT or not) and the database's
commits, per record (every process of `aaa serve`: its workers and their auth-log writers).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from auth_bench import SECRET, Server, populate  # noqa: E402
from pyspy import ensure_pyspy, report, summarize  # noqa: E402
from radload import ACCOUNTING_RESPONSE, LoadConfig, cpu_probe_ms, run_load  # noqa: E402
from sqlalchemy import create_engine, func, select, text  # noqa: E402

from aaa.db import migrate  # noqa: E402
from aaa.db.models import AcctSession  # noqa: E402
from tests.pg import Cluster  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")
_TABLE_STATS = text("SELECT n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                    "WHERE relname = 'acct_sessions'")
_COMMITS = text("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")


def _tree_cpu(root: int) -> float:
    """CPU seconds of `root` and every process descended from it, as they are now: for
    `aaa serve --workers N` that is every worker and their auth-log writers."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[1])
            ticks[int(entry.name)] = int(stat[11]) + int(stat[12])
    total = 0
    for pid, tick in ticks.items():
        ancestor = pid
        while ancestor not in (root, 0, 1) and ancestor in parents:
            ancestor = parents[ancestor]
        if ancestor == root:
            total += tick
    return total / _TICK


def _db_counters(engine: Any) -> tuple[int, int, int, int]:
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_stat_clear_snapshot()"))
        ins, upd, hot = connection.execute(_TABLE_STATS).one()
        commits = connection.scalar(_COMMITS)
    return int(ins), int(upd), int(hot), int(commits)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of Interim-Updates")
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=256, help="outstanding requests")
    parser.add_argument("--sockets", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2,
                        help="`aaa serve --workers N` (default: one per core here, as in auth_bench)")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy and CPU per record during the Interim phase")
    args = parser.parse_args(argv)

    probe_before = cpu_probe_ms()
    print(f"machine speed: a fixed Python loop takes {probe_before} ms (lower is faster)", flush=True)
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
        with Server(url, workdir, args.workers) as server:
            port = server.acct_port
            start = run_load(LoadConfig(
                host="127.0.0.1", port=port, secret=SECRET.encode(), window=args.window,
                duration=120.0, count=len(subscribers), sockets=args.sockets, accounting="start",
                expect_code=ACCOUNTING_RESPONSE, timeout=5.0), subscribers)
            print("starts:  " + start.summary(), flush=True)
            profile: dict[str, Any] = {}
            if args.profile:
                postmaster = cluster.pid or 0
                spy_out = base / "serve.raw"
                # Stopped (SIGINT) when the phase ends: its packets are built first, untimed.
                spy = subprocess.Popen(
                    [str(ensure_pyspy()), "record", "--pid", str(server.process.pid),
                     "--duration", str(round(args.duration) + 120), "--rate", "250", "--nonblocking", "--gil",
                     "--threads", "--format", "raw", "-o", str(spy_out)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                before = (_tree_cpu(server.process.pid), _tree_cpu(postmaster),
                          _db_counters(engine))
            interim = run_load(LoadConfig(
                host="127.0.0.1", port=port, secret=SECRET.encode(), window=args.window,
                duration=args.duration, sockets=args.sockets, accounting="interim",
                expect_code=ACCOUNTING_RESPONSE, expect_rate=40_000.0, timeout=5.0), subscribers)
            print("interim: " + interim.summary(), flush=True)
            if args.profile:
                after = (_tree_cpu(server.process.pid), _tree_cpu(postmaster),
                         _db_counters(engine))
                records = max(1, interim.ok)
                (ins0, upd0, hot0, commits0), (ins1, upd1, hot1, commits1) = before[2], after[2]
                profile = {
                    "serve_cpu_us_per_record": round(1e6 * (after[0] - before[0]) / records, 1),
                    "postgres_cpu_us_per_record": round(1e6 * (after[1] - before[1]) / records, 1),
                    "inserts": ins1 - ins0, "updates": upd1 - upd0, "hot_updates": hot1 - hot0,
                    "commits": commits1 - commits0,
                    "records_per_commit": round(records / max(1, commits1 - commits0), 1)}
                print("profile: " + json.dumps(profile), flush=True)
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
                if spy_out.exists():
                    report("aaa serve during the Interim phase", summarize(spy_out, top=25))
        with engine.connect() as connection:
            rows = connection.scalar(select(func.count()).select_from(AcctSession))
            updated = connection.scalar(select(func.count()).select_from(AcctSession)
                                        .where(AcctSession.input_octets > 0))
        engine.dispose()
        print(f"database: {rows} sessions, {updated} with interim counters", flush=True)
        print(json.dumps({
            "throughput": round(interim.throughput), "p50_ms": round(interim.p50_ms, 3),
            "p99_ms": round(interim.p99_ms, 3), "starts_per_s": round(start.throughput),
            "sessions": rows, "errors": interim.errors + start.errors, "window": args.window,
            "workers": args.workers, "cpu_probe_ms_before": probe_before,
            "cpu_probe_ms_after": cpu_probe_ms(), **profile}))
        return 0
    finally:
        cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
