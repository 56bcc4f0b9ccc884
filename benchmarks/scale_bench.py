"""Scale: the view's load time and the daemon's memory at 100,000 and 1,000,000 subscribers,
auth latency at 1,000,000 against 10,000, and a change-feed burst (issue 9).

Set-up: a throwaway PostgreSQL cluster (tests/pg.py), the schema, one plan and one
MikroTik NAS (as auth_bench), then the subscribers bulk-loaded with COPY (customers and
services with explicit ids; populate() in auth_bench uses executemany, far too slow for a
million), grown step by step to each size of `--sizes`. At each size:

1. **view load**: `load_view()` timed in a fresh Python process (the very function
   `aaa serve` calls at start), with that process's RSS before and after;
2. **daemon**: `aaa serve` started (wall time from spawn to its `event=start` line) and
   its RSS (VmRSS, and the peak VmHWM) read from /proc right after;
3. **auth latency**: a short window-16 run of PAP Access-Requests for up to 50,000
   subscribers drawn at random from the whole table (every reply validated);
4. **change-feed burst**: 10,000 services suspended in ONE transaction (UPDATE services
   SET status='suspended_debt' and 10,000 change_feed rows, with pg_notify('aaa_changes')),
   timed from the commit until the daemon's `aaa_view_seq` on /metrics reaches the new
   maximum seq; then the same 10,000 re-enabled the same way (also timed), so the next
   size starts from enabled subscribers.

Targets (issue 9): load <= 10 s and memory <= 1.5 GB at 1,000,000; auth latency at
1,000,000 no worse than at 10,000; the burst applied in <= 2 s. `--profile` records the
1,000,000 view load with py-spy (installed into the venv with pip when missing) and
prints where its time goes. Last line JSON.

    .venv/bin/python benchmarks/scale_bench.py [--sizes 10000,100000,1000000]
        [--auth-duration 5] [--burst 10000] [--profile]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import pyspy  # noqa: E402
from auth_bench import SECRET, Server  # noqa: E402
from radload import LoadConfig, Subscriber, mac_for, run_load  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from tests.pg import Cluster  # noqa: E402

PY = ROOT / ".venv" / "bin" / "python"


def login(i: int) -> str:
    return f"bench{i:07d}"


def password(i: int) -> str:
    return f"pw-{i:07d}-x"


def prepare(url: str) -> None:
    """The schema, one plan and one NAS (the auth_bench ones)."""
    from aaa.db import migrate

    engine = create_engine(url)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO plans (id, name, download_kbps, upload_kbps, price, technology, pool, "
            "allows_association, created_at) VALUES (1, 'Fibra 300M', 300000, 150000, 99.90, 'fiber', "
            "'pool-fibra', false, now())"))
        conn.execute(text(
            "INSERT INTO nas (name, ip, vendor, model, secret, coa_port, require_message_authenticator, "
            "enabled, created_at) VALUES ('bench-mikrotik', '127.0.0.1', 'mikrotik', 'CCR2004', :secret, "
            "3799, true, true, now())"), {"secret": SECRET})
    engine.dispose()


def grow(url: str, start: int, end: int, chunk: int = 200_000) -> float:
    """Subscribers start..end-1 as customers + services rows (ids i+1), with COPY."""
    began = time.perf_counter()
    engine = create_engine(url)
    raw = engine.raw_connection()
    now = datetime.now(UTC).isoformat()
    try:
        cursor = raw.cursor()
        for low in range(start, end, chunk):
            high = min(end, low + chunk)
            customers = io.StringIO()
            services = io.StringIO()
            for i in range(low, high):
                customers.write(f"{i + 1}\tPF\tCliente {i}\t{10_000_000_000 + i:011d}\t"
                                f"Campinas\tSP\tt\t{now}\n")
                services.write(f"{i + 1}\t{i + 1}\t1\t{login(i)}\t{password(i)}\tenabled\toff\t1\t"
                               f"{now}\t{now}\n")
            customers.seek(0)
            services.seek(0)
            cursor.copy_expert("COPY customers (id, person_type, name, document, city, state, active, "
                               "created_at) FROM STDIN", customers)
            cursor.copy_expert("COPY services (id, customer_id, plan_id, login, password, status, "
                               "mac_binding, simultaneous_use, created_at, updated_at) FROM STDIN", services)
        for table in ("customers", "services"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                           f"(SELECT max(id) FROM {table}))")
        raw.commit()
        raw.driver_connection.autocommit = True  # type: ignore[union-attr]
        cursor.execute("VACUUM ANALYZE customers")
        cursor.execute("VACUUM ANALYZE services")
    finally:
        raw.close()
        engine.dispose()
    return time.perf_counter() - began


def rss_kb(pid: int | str = "self") -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = int(line.split()[1])
    return out


def measure_load(url: str) -> None:
    """In a fresh process: time load_view() and the memory it takes; prints JSON."""
    from aaa.db.engine import make_engine, session_factory
    from aaa.db.views import load_view

    engine = make_engine(url)
    sessions = session_factory(engine)
    with sessions() as session, session.begin():  # connect and import outside the timing
        session.execute(text("SELECT 1"))
    before = rss_kb()
    began = time.perf_counter()
    with sessions() as session, session.begin():
        view = load_view(session)
    elapsed = time.perf_counter() - began
    after = rss_kb()
    print(json.dumps({"load_s": round(elapsed, 2), "services": len(view.services_by_id),
                      "rss_before_mb": round(before["VmRSS"] / 1024),
                      "rss_after_mb": round(after["VmRSS"] / 1024),
                      "peak_mb": round(after["VmHWM"] / 1024)}))


def timed_load(url: str) -> dict[str, Any]:
    result = subprocess.run([str(PY), __file__, "--measure-load", url], capture_output=True, text=True,
                            timeout=900, check=True)
    measured: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return measured


def metric(port: int, name: str) -> float | None:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    match = re.search(rf"^{name} ([0-9.e+]+)$", body, re.M)
    return float(match.group(1)) if match else None


def burst(url: str, server: Server, first_id: int, count: int, status: str,
          limit: float = 60.0) -> dict[str, Any]:
    """`count` services set to `status` in one transaction with their change-feed rows and a
    NOTIFY; seconds from the commit until the daemon's view has applied the last row."""
    engine = create_engine(url)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        began = time.perf_counter()
        cursor.execute("UPDATE services SET status = %s, updated_at = now() WHERE id BETWEEN %s AND %s",
                       (status, first_id, first_id + count - 1))
        updated = cursor.rowcount
        cursor.execute("INSERT INTO change_feed (object_type, object_id, at) "
                       "SELECT 'service', id::text, now() FROM generate_series(%s, %s) AS id",
                       (first_id, first_id + count - 1))
        cursor.execute("SELECT max(seq) FROM change_feed")
        target = int(cursor.fetchone()[0])  # type: ignore[index]
        cursor.execute("SELECT pg_notify('aaa_changes', 'x')")
        raw.commit()
        committed = time.perf_counter()
    finally:
        raw.close()
        engine.dispose()
    applied = None
    while time.perf_counter() - committed < limit:
        seq = metric(server.metrics_port, "aaa_view_seq")
        if seq is not None and seq >= target:
            applied = time.perf_counter() - committed
            break
        time.sleep(0.01)
    return {"status": status, "services": updated, "seq": target,
            "transaction_s": round(committed - began, 3),
            "applied_s": round(applied, 3) if applied is not None else None}


def profile_load(url: str, out: Path) -> dict[str, Any]:
    """py-spy over measure_load (the largest view): where the load's time goes."""
    raw = out / "load.collapsed"
    pyspy.record_command([str(PY), __file__, "--measure-load", url], raw)
    summary = pyspy.summarize(raw, keep=("aaa/", "sqlalchemy/", "psycopg2/"))
    pyspy.report("load_view() of the largest view", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")],
                        default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--auth-duration", type=float, default=5.0)
    parser.add_argument("--auth-sample", type=int, default=50_000)
    parser.add_argument("--burst", type=int, default=10_000, help="services suspended in one transaction")
    parser.add_argument("--profile", action="store_true", help="py-spy the largest view load")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"),
                        help="where scale_bench.json goes ('' for nowhere)")
    parser.add_argument("--measure-load", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure_load:
        measure_load(args.measure_load)
        return 0

    sizes = sorted(args.sizes)
    base = Path(tempfile.mkdtemp(prefix="aaa-scale-bench-"))
    base.chmod(0o755)
    cluster = Cluster(base / "pg")
    report: dict[str, Any] = {"sizes": {}, "profile": None}
    rng = random.Random(9)
    try:
        cluster.start()
        cluster.wait_ready()
        admin = create_engine(cluster.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text("CREATE DATABASE scale"))
        admin.dispose()
        url = cluster.url("scale")
        prepare(url)
        have = 0
        for size in sizes:
            row: dict[str, Any] = {}
            row["copy_s"] = round(grow(url, have, size), 1)
            print(f"{size:,} subscribers: COPY of {size - have:,} in {row['copy_s']} s", flush=True)
            have = size
            row["view"] = timed_load(url)
            print(f"  load_view(): {row['view']['load_s']} s, process RSS {row['view']['rss_before_mb']} -> "
                  f"{row['view']['rss_after_mb']} MB (peak {row['view']['peak_mb']} MB)", flush=True)
            workdir = base / f"work-{size}"
            workdir.mkdir()
            spawned = time.perf_counter()
            with Server(url, workdir, 1) as server:
                row["daemon_start_s"] = round(time.perf_counter() - spawned, 2)
                memory = rss_kb(server.process.pid)
                row["daemon_rss_mb"] = round(memory["VmRSS"] / 1024)
                row["daemon_peak_rss_mb"] = round(memory["VmHWM"] / 1024)
                print(f"  aaa serve: ready in {row['daemon_start_s']} s, RSS {row['daemon_rss_mb']} MB "
                      f"(peak {row['daemon_peak_rss_mb']} MB)", flush=True)
                sample = sorted(rng.sample(range(size), min(size, args.auth_sample)))
                rng.shuffle(sample)
                subscribers = [Subscriber(login(i), password(i), mac_for(i)) for i in sample]
                config = LoadConfig(host="127.0.0.1", port=server.port, secret=SECRET.encode(), window=16,
                                    duration=args.auth_duration, expect_rate=10_000.0)
                run_load(LoadConfig(host="127.0.0.1", port=server.port, secret=SECRET.encode(), window=16,
                                    duration=1.0, count=3_000), subscribers)  # warm-up
                server.settle()
                result = run_load(config, subscribers)
                server.settle()
                row["auth_window16"] = {"throughput": round(result.throughput),
                                        "p50_ms": round(result.p50_ms, 3),
                                        "p99_ms": round(result.p99_ms, 3), "max_ms": round(result.max_ms, 3),
                                        "errors": result.errors, "distinct_subscribers": len(sample)}
                print(f"  auth: {result.summary()}", flush=True)
                if size >= args.burst:
                    first = size - args.burst + 1
                    suspend = burst(url, server, first, args.burst, "suspended_debt")
                    enable = burst(url, server, first, args.burst, "enabled")
                    row["burst"] = {"suspend": suspend, "re_enable": enable}
                    print(f"  burst: {suspend['services']:,} suspended in one transaction "
                          f"({suspend['transaction_s']} s), applied to the view {suspend['applied_s']} s "
                          f"after the commit; re-enabled: applied in {enable['applied_s']} s", flush=True)
                row["daemon_rss_after_mb"] = round(rss_kb(server.process.pid)["VmRSS"] / 1024)
            report["sizes"][str(size)] = row
        if args.profile:
            report["profile"] = profile_load(url, base)
    finally:
        cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)
    largest = report["sizes"][str(sizes[-1])]
    smallest = report["sizes"][str(sizes[0])]
    summary = {
        "largest": sizes[-1],
        "load_s": largest["view"]["load_s"], "daemon_start_s": largest["daemon_start_s"],
        "daemon_rss_mb": largest["daemon_rss_mb"],
        "p99_ms_largest": largest["auth_window16"]["p99_ms"],
        "p99_ms_smallest": smallest["auth_window16"]["p99_ms"],
        "burst_applied_s": largest.get("burst", {}).get("suspend", {}).get("applied_s"),
        "targets": {"load_s<=10": largest["view"]["load_s"] <= 10,
                    "rss_mb<=1536": largest["daemon_rss_mb"] <= 1536,
                    "burst_s<=2": (largest.get("burst", {}).get("suspend", {}).get("applied_s") or 99) <= 2},
    }
    line = json.dumps({**summary, **report, "machine": {
        "nproc": os.cpu_count(), "load_1min": os.getloadavg()[0],
        "date": time.strftime("%Y-%m-%d %H:%M %Z")}})
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "scale_bench.json").write_text(line + "\n")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
