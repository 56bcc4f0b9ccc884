"""`aaa serve` against FreeRADIUS 3.2 on the same machine, data and load (issue 9).

Set-up, not timed:
- FreeRADIUS 3.2 from Debian (`freeradius`, `freeradius-postgresql`, `freeradius-utils`),
  installed with apt-get only when missing (a benchmark may install, a test may not);
- one throwaway PostgreSQL cluster (tests/pg.py) holding two databases: `aaa` (our schema,
  N subscribers and the MikroTik NAS, as in auth_bench) and `radius` (FreeRADIUS's stock
  PostgreSQL schema with the same N subscribers as radcheck Cleartext-Password rows and
  radreply Framed-Pool / Mikrotik-Rate-Limit / Acct-Interim-Interval rows: the reply
  `aaa serve` gives them);
- three servers on loopback ports, each from its own private configuration:
  `aaa serve` (auth log on, durable accounting), FreeRADIUS (a) `rlm_sql` on the same
  cluster (radpostauth on, radacct per packet) and FreeRADIUS (b) the `files` module with
  the same users (nothing stored: the protocol ceiling). FreeRADIUS runs from a copy of
  /etc/freeradius/3.0 with the templates in benchmarks/freeradius/, in the foreground
  as the current user, and is stopped by its PID.

Load (benchmarks/radload.py, one generator process, every reply validated): for each
round, for each window (16, 64, 256), each server in turn (A B C A B C ...), `--duration`
seconds of PAP Access-Requests with Message-Authenticator; then one Accounting Start
per subscriber to each server, and the same rounds of Interim-Updates of those open
sessions (counters growing from run to run). Prints a table of medians (spread min-max)
of throughput and latency, the ratios ours / FreeRADIUS-sql and ours / FreeRADIUS-files,
writes benchmarks/results/compare_freeradius.{json,png}; the last line is JSON.

    .venv/bin/python benchmarks/compare_freeradius.py [--duration 5] [--runs 3]
        [--windows 16,64,256] [--subscribers 10000] [--modes auth,acct] [--workers 1]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import pyspy  # noqa: E402
import radload  # noqa: E402
from auth_bench import SECRET, Server, populate  # noqa: E402
from radload import (  # noqa: E402
    ACCOUNTING_RESPONSE,
    LoadConfig,
    LoadResult,
    Subscriber,
    cpu_probe_ms,
    measure_ceiling,
    run_load,
)
from sqlalchemy import create_engine, text  # noqa: E402

from aaa.db import migrate  # noqa: E402
from aaa.policy.vendors import mikrotik_rate_limit  # noqa: E402
from tests.pg import Cluster, free_port  # noqa: E402

TEMPLATES = ROOT / "benchmarks" / "freeradius"
RESULTS = ROOT / "benchmarks" / "results"
SYSTEM_RADDB = Path("/etc/freeradius/3.0")
PG_SCHEMA = SYSTEM_RADDB / "mods-config" / "sql" / "main" / "postgresql" / "schema.sql"
# What `aaa serve` answers a subscriber of the benchmark plan (populate(): "Fibra 300M",
# pool-fibra, 300/150 Mbit/s; the default Acct-Interim-Interval of 300 s).
REPLY = (("Framed-Pool", "pool-fibra"), ("Mikrotik-Rate-Limit", mikrotik_rate_limit(300_000, 150_000)),
         ("Acct-Interim-Interval", "300"))
TARGETS = ("aaa", "fr_sql", "fr_files")
LABELS = {"aaa": "aaa serve", "fr_sql": "FreeRADIUS sql", "fr_files": "FreeRADIUS files"}


# --- FreeRADIUS -----------------------------------------------------------------------------


def ensure_freeradius() -> str:
    """FreeRADIUS 3.2 with the PostgreSQL driver; apt-get install when missing."""
    driver = Path("/usr/lib/freeradius/rlm_sql_postgresql.so")
    if not (shutil.which("freeradius") and driver.exists() and PG_SCHEMA.exists()):
        if os.geteuid() != 0:
            raise SystemExit("FreeRADIUS is missing and we are not root: apt-get install -y "
                             "freeradius freeradius-postgresql freeradius-utils")
        print("installing FreeRADIUS from Debian (apt-get) ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, timeout=600,
                       stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-q", "freeradius", "freeradius-postgresql",
                        "freeradius-utils"], check=True, env=env, timeout=900, stdout=subprocess.DEVNULL)
    out = subprocess.run(["freeradius", "-v"], capture_output=True, text=True, timeout=30).stdout
    version = out.splitlines()[0] if out else "unknown"
    if "Version 3.2" not in version:
        print(f"warning: expected FreeRADIUS 3.2, found: {version}", flush=True)
    return version


def _render(template: str, **values: object) -> str:
    body = (TEMPLATES / template).read_text()
    for key, value in values.items():
        body = body.replace(f"@{key}@", str(value))
    return body


def users_file(subscribers: list[Subscriber]) -> str:
    out = io.StringIO()
    for sub in subscribers:
        out.write(f'{sub.login}\tCleartext-Password := "{sub.password}"\n')
        out.write(",\n".join(f'\t{name} = "{value}"' for name, value in REPLY) + "\n\n")
    return out.getvalue()


class FreeRadius:
    """FreeRADIUS in the foreground from a private copy of its configuration; stopped by PID."""

    # Debian's mods-enabled stays as it is (loaded, unused modules cost nothing per
    # request; the stock queries and policies need `expr`), but for eap, which would
    # want certificates and which nothing here calls.
    DROPPED_MODULES = ("eap",)

    def __init__(self, kind: str, base: Path, subscribers: list[Subscriber],
                 pg_port: int = 0, pg_db: str = "radius") -> None:
        self.kind = kind
        self.port = free_port()
        self.acct_port = free_port()
        self.raddb = base / f"raddb-{kind}"
        self.logdir = base / f"log-{kind}"
        self.rundir = base / f"run-{kind}"
        for path in (self.logdir, self.rundir):
            path.mkdir(parents=True)
        shutil.copytree(SYSTEM_RADDB, self.raddb, symlinks=True)
        conf = self.raddb / "radiusd.conf"
        lines = []
        for line in conf.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("user =", "group =")):
                line = "#" + line  # run as whoever runs the benchmark
            elif stripped.startswith("logdir ="):
                line = f"logdir = {self.logdir}"
            elif stripped.startswith("run_dir ="):
                line = f"run_dir = {self.rundir}"
            lines.append(line)
        conf.write_text("\n".join(lines) + "\n")
        (self.raddb / "clients.conf").write_text(_render("clients.conf.in", SECRET=SECRET))
        for entry in (self.raddb / "sites-enabled").iterdir():
            entry.unlink()
        for module in self.DROPPED_MODULES:
            (self.raddb / "mods-enabled" / module).unlink(missing_ok=True)
        (self.raddb / "sites-enabled" / "bench").write_text(
            _render(f"site-{kind}.in", AUTH_PORT=self.port, ACCT_PORT=self.acct_port))
        if kind == "sql":
            (self.raddb / "mods-enabled" / "sql").write_text(
                _render("sql.in", PG_PORT=pg_port, PG_DB=pg_db))
        # The files module reads its users at start; for the sql set-up it stays empty.
        (self.raddb / "mods-config" / "files" / "authorize").write_text(
            users_file(subscribers) if kind == "files" else "")
        self.process: subprocess.Popen[str] | None = None
        self.lines: list[str] = []

    def start(self) -> None:
        check = subprocess.run(["freeradius", "-C", "-d", str(self.raddb)], capture_output=True,
                               text=True, timeout=120)
        if check.returncode != 0:
            detail = subprocess.run(["freeradius", "-XC", "-d", str(self.raddb)],
                                    capture_output=True, text=True, timeout=120)
            raise RuntimeError(f"FreeRADIUS ({self.kind}) configuration refused:\n"
                               + "\n".join((detail.stdout + detail.stderr).splitlines()[-30:]))
        self.process = subprocess.Popen(
            ["freeradius", "-f", "-d", str(self.raddb), "-l", "stdout"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        ready = threading.Event()

        def read() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                self.lines.append(line)
                del self.lines[:-200]
                if "Ready to process requests" in line:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + 60
        while not ready.wait(0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"FreeRADIUS ({self.kind}) did not start:\n" + "".join(self.lines[-30:]))

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)


def radius_database(cluster: Cluster, subscribers: list[Subscriber]) -> str:
    """FreeRADIUS's stock PostgreSQL schema in database `radius`, the users bulk-loaded."""
    admin = create_engine(cluster.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text("CREATE DATABASE radius"))
    admin.dispose()
    url = cluster.url("radius")
    engine = create_engine(url)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(PG_SCHEMA.read_text())
        check = io.StringIO()
        reply = io.StringIO()
        for sub in subscribers:
            check.write(f"{sub.login}\tCleartext-Password\t:=\t{sub.password}\n")
            for name, value in REPLY:
                reply.write(f"{sub.login}\t{name}\t:=\t{value}\n")
        check.seek(0)
        reply.seek(0)
        cursor.copy_expert("COPY radcheck (username, attribute, op, value) FROM STDIN", check)
        cursor.copy_expert("COPY radreply (username, attribute, op, value) FROM STDIN", reply)
        raw.commit()
        cursor.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
        engine.dispose()
    return url


def aaa_database(cluster: Cluster, count: int) -> tuple[str, list[Subscriber]]:
    admin = create_engine(cluster.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text("CREATE DATABASE aaa"))
    admin.dispose()
    url = cluster.url("aaa")
    engine = create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url, populate(url, count)


# --- load -----------------------------------------------------------------------------------

# Interim-Updates carry counters that grow with radload's round number; without an offset
# every run would resend the first run's counters. The generator's processes are forked,
# so they see the offset set before each run.
_ROUND_BASE = [0]
_accounting_packet = radload._accounting_packet


def _growing_accounting_packet(dictionary: Any, sub: Subscriber, index: int, round_: int,
                               ident: int, config: LoadConfig) -> bytes:
    # Acct-Output-Octets is 9,000,000 x (round + 1): keep it within 32 bits.
    return _accounting_packet(dictionary, sub, index, (round_ + _ROUND_BASE[0]) % 470, ident, config)


radload._accounting_packet = _growing_accounting_packet


class Bench:
    def __init__(self, args: argparse.Namespace, subscribers: list[Subscriber],
                 servers: dict[str, Any]) -> None:
        self.args = args
        self.subscribers = subscribers
        self.servers = servers
        self.guess: dict[tuple[str, str], float] = {}
        self.results: dict[str, dict[int, dict[str, list[LoadResult]]]] = {}

    def config(self, target: str, mode: str, window: int, duration: float, count: int = 0) -> LoadConfig:
        server = self.servers[target]
        port = server.port if mode == "auth" else server.acct_port
        guess = self.guess.get((target, mode), 40_000.0 if target == "fr_files" else 12_000.0)
        return LoadConfig(
            host="127.0.0.1", port=port, secret=SECRET.encode(), window=window, duration=duration,
            count=count, sockets=self.args.sockets, chap=self.args.chap, expect_rate=guess,
            accounting="interim" if mode == "acct" else "",
            expect_code=ACCOUNTING_RESPONSE if mode == "acct" else radload.ACCESS_ACCEPT,
            timeout=self.args.timeout)

    def load(self, target: str, mode: str, window: int, duration: float) -> LoadResult:
        config = self.config(target, mode, window, duration)
        if mode == "acct":
            _ROUND_BASE[0] += int(config.expect_rate * duration * 1.02) // len(self.subscribers) + 2
        result = run_load(config, self.subscribers)
        # Enough packets for the next run of this server at 1.5x this rate (building them is
        # not timed, but costs the wall clock).
        self.guess[(target, mode)] = max(3_000.0, result.throughput * 1.5)
        if target == "aaa":  # the auth-log backlog is written before the next run
            result.extra["settle_s"] = round(self.servers["aaa"].settle(), 2)
        return result

    def warm_up(self, mode: str) -> None:
        for target in TARGETS:
            self.load(target, mode, 16, 1.0)

    def starts(self) -> None:
        """One Accounting Start per subscriber to each server: the sessions to update."""
        for target in TARGETS:
            config = LoadConfig(**{**asdict(self.config(target, "acct", 64, 120.0,
                                                         count=len(self.subscribers))),
                                   "accounting": "start", "timeout": 5.0})
            result = run_load(config, self.subscribers)
            print(f"  starts -> {LABELS[target]}: {result.summary()}", flush=True)

    def profile(self, mode: str, out: Path) -> dict[str, Any]:
        """py-spy on `aaa serve` during one more window-16 run (not counted in the table)."""
        raw = out / f"aaa-{mode}.collapsed"
        seconds = max(3.0, self.args.duration)
        spy = pyspy.record_pid(self.servers["aaa"].process.pid, seconds + 1, raw)
        time.sleep(0.5)
        result = self.load("aaa", mode, 16, seconds)
        spy.wait(60)
        print(f"  profiled run: {result.summary()}", flush=True)
        summary = pyspy.summarize(raw)
        pyspy.report(f"aaa serve under {mode} load, window 16 ({result.throughput:,.0f}/s while sampled)",
                     summary)
        return summary

    def rounds(self, mode: str) -> None:
        table = self.results.setdefault(mode, {})
        for round_ in range(self.args.runs):
            for window in self.args.windows:
                for target in TARGETS:
                    result = self.load(target, mode, window, self.args.duration)
                    table.setdefault(window, {}).setdefault(target, []).append(result)
                    print(f"  {mode} round {round_ + 1} window {window:>3} {LABELS[target]:<17} "
                          f"{result.throughput:>9,.0f}/s p50 {result.p50_ms:7.3f} p99 {result.p99_ms:8.3f} ms"
                          + (f"  ERRORS wrong_code={result.wrong_code} bad_auth={result.bad_authenticator} "
                             f"stray={result.stray} timeouts={result.timeouts}" if result.errors else ""),
                          flush=True)


# --- report ---------------------------------------------------------------------------------


def summarize(results: dict[str, dict[int, dict[str, list[LoadResult]]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode, windows in results.items():
        for window, targets in windows.items():
            row: dict[str, Any] = {}
            for target, runs in targets.items():
                rates = [r.throughput for r in runs]
                row[target] = {
                    "throughput": round(statistics.median(rates)),
                    "min": round(min(rates)), "max": round(max(rates)),
                    "p50_ms": round(statistics.median(r.p50_ms for r in runs), 3),
                    "p99_ms": round(statistics.median(r.p99_ms for r in runs), 3),
                    "p99_min_ms": round(min(r.p99_ms for r in runs), 3),
                    "p99_max_ms": round(max(r.p99_ms for r in runs), 3),
                    "runs": len(runs), "errors": sum(r.errors for r in runs),
                    "timeouts": sum(r.timeouts for r in runs),
                    "settle_s": max(r.extra.get("settle_s", 0.0) for r in runs),
                    "wrong_code": sum(r.wrong_code for r in runs),
                }
            ours = row.get("aaa", {}).get("throughput", 0)
            for ref in ("fr_sql", "fr_files"):
                theirs = row.get(ref, {}).get("throughput", 0)
                row[f"ratio_{ref}"] = round(ours / theirs, 2) if theirs else None
            out.setdefault(mode, {})[str(window)] = row
    return out


def print_table(summary: dict[str, Any], ceiling: dict[str, Any]) -> str:
    lines = ["| load | window | server | throughput/s (median) | spread min-max | p50 ms | p99 ms (spread) "
             "| errors |", "|---|---:|---|---:|---:|---:|---:|---:|"]
    for mode, windows in summary.items():
        what = "auth (Access-Request PAP)" if mode == "auth" else "accounting (Interim-Update)"
        for window, row in windows.items():
            for target in TARGETS:
                cell = row.get(target)
                if not cell:
                    continue
                lines.append(
                    f"| {what} | {window} | {LABELS[target]} | {cell['throughput']:,} | "
                    f"{cell['min']:,}-{cell['max']:,} | {cell['p50_ms']:.2f} | "
                    f"{cell['p99_ms']:.2f} ({cell['p99_min_ms']:.2f}-{cell['p99_max_ms']:.2f}) | "
                    f"{cell['errors']} |")
    lines += ["", "| load | window | ours / FreeRADIUS-sql | ours / FreeRADIUS-files |",
              "|---|---:|---:|---:|"]
    for mode, windows in summary.items():
        for window, row in windows.items():
            lines.append(f"| {mode} | {window} | {row['ratio_fr_sql']}x | {row['ratio_fr_files']}x |")
    if ceiling:
        lines += ["", "generator ceiling (trivial responder, auth packets): "
                  + ", ".join(f"window {w}: {c['throughput']:,}/s (p99 {c['p99_ms']:.2f} ms)"
                              for w, c in ceiling.items())]
    table = "\n".join(lines)
    print(table, flush=True)
    return table


def ensure_matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError:
        print("installing matplotlib into the venv (pip) for the chart ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "matplotlib"], check=True,
                       timeout=600)
        import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def chart(summary: dict[str, Any], path: Path, title: str) -> None:
    plt = ensure_matplotlib()
    modes = list(summary)
    fig, axes = plt.subplots(len(modes), 2, figsize=(11, 4.2 * len(modes)), squeeze=False)
    colours = {"aaa": "tab:blue", "fr_sql": "tab:red", "fr_files": "tab:green"}
    for row, mode in enumerate(modes):
        windows = sorted(summary[mode], key=int)
        xs = [int(w) for w in windows]
        for target in TARGETS:
            cells = [summary[mode][w].get(target) for w in windows]
            if not all(cells):
                continue
            ys = [c["throughput"] for c in cells]
            err = [[y - c["min"] for y, c in zip(ys, cells, strict=True)],
                   [c["max"] - y for y, c in zip(ys, cells, strict=True)]]
            axes[row][0].errorbar(xs, ys, yerr=err, marker="o", capsize=3, color=colours[target],
                                  label=LABELS[target])
            p99 = [c["p99_ms"] for c in cells]
            p99_err = [[y - c["p99_min_ms"] for y, c in zip(p99, cells, strict=True)],
                       [c["p99_max_ms"] - y for y, c in zip(p99, cells, strict=True)]]
            axes[row][1].errorbar(xs, p99, yerr=p99_err, marker="o", capsize=3,
                                  color=colours[target], label=LABELS[target])
        name = "auth: Access-Requests" if mode == "auth" else "accounting: Interim-Updates"
        axes[row][0].set_title(f"{name}: throughput")
        axes[row][0].set_ylabel("replies/s")
        axes[row][1].set_title(f"{name}: p99 latency")
        axes[row][1].set_ylabel("ms (log)")
        axes[row][1].set_yscale("log")
        for ax in axes[row]:
            ax.set_xscale("log", base=2)
            ax.set_xticks(xs)
            ax.set_xticklabels([str(x) for x in xs])
            ax.set_xlabel("window (requests outstanding)")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
        axes[row][0].set_ylim(bottom=0)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "load_1min_at_start": os.getloadavg()[0],
            "cpu_probe_ms_at_start": cpu_probe_ms(),
            "date": time.strftime("%Y-%m-%d %H:%M %Z"), "python": sys.version.split()[0]}


# --- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load per run")
    parser.add_argument("--runs", type=int, default=3, help="rounds (each server once per window)")
    parser.add_argument("--windows", type=lambda s: [int(x) for x in s.split(",")], default=[16, 64, 256])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--modes", default="auth,acct", help="auth, acct or both")
    parser.add_argument("--workers", type=int, default=1, help="aaa serve --workers")
    parser.add_argument("--sockets", type=int, default=4, help="UDP sockets of the generator")
    parser.add_argument("--timeout", type=float, default=2.0, help="a reply later than this is lost")
    parser.add_argument("--chap", action="store_true", help="CHAP instead of PAP")
    parser.add_argument("--no-ceiling", action="store_true")
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument("--profile", action="store_true",
                        help="afterwards, py-spy `aaa serve` during one more window-16 run per mode")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON and PNG go")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]

    started = time.monotonic()
    info = machine()
    info["freeradius"] = ensure_freeradius()
    print(f"machine: {info}", flush=True)
    base = Path(tempfile.mkdtemp(prefix="aaa-vs-freeradius-"))
    base.chmod(0o755)  # the cluster runs as `postgres` when we are root
    cluster = Cluster(base / "pg")
    servers: dict[str, Any] = {}
    report: dict[str, Any] = {"machine": info, "settings": {
        "duration": args.duration, "runs": args.runs, "windows": args.windows,
        "subscribers": args.subscribers, "workers": args.workers, "chap": args.chap}}
    try:
        cluster.start()
        cluster.wait_ready()
        url, subscribers = aaa_database(cluster, args.subscribers)
        radius_database(cluster, subscribers)
        print(f"set-up: {len(subscribers):,} subscribers in both databases "
              f"(PostgreSQL :{cluster.port})", flush=True)
        workdir = base / "aaa"
        workdir.mkdir()
        servers["aaa"] = Server(url, workdir, args.workers)
        servers["fr_sql"] = FreeRadius("sql", base, subscribers, cluster.port, "radius")
        servers["fr_files"] = FreeRadius("files", base, subscribers)
        servers["fr_sql"].start()
        servers["fr_files"].start()
        print("servers: " + ", ".join(f"{LABELS[t]} auth :{s.port} acct :{s.acct_port}"
                                      for t, s in servers.items()), flush=True)
        bench = Bench(args, subscribers, servers)
        profiles: dict[str, Any] = {}
        # Auth first: once the accounting Starts have opened a session per subscriber,
        # `aaa serve` rejects their logins (simultaneous-use 1), FreeRADIUS here does not.
        if "auth" in modes:
            print("auth: warm-up, then rounds", flush=True)
            bench.warm_up("auth")
            bench.rounds("auth")
            if args.profile:
                profiles["auth"] = bench.profile("auth", base)
        if "acct" in modes:
            print("accounting: Starts, warm-up, then rounds of Interim-Updates", flush=True)
            bench.starts()
            bench.warm_up("acct")
            bench.rounds("acct")
            if args.profile:
                profiles["acct"] = bench.profile("acct", base)
        report["profile"] = profiles or None
        ceiling: dict[str, Any] = {}
        if not args.no_ceiling:
            for window in args.windows:
                probe = LoadConfig(host="127.0.0.1", port=0, secret=SECRET.encode(), window=window,
                                   duration=min(args.duration, 3.0), sockets=args.sockets,
                                   expect_rate=80_000.0)
                result = measure_ceiling(probe, subscribers)
                ceiling[str(window)] = {"throughput": round(result.throughput),
                                        "p99_ms": round(result.p99_ms, 3)}
        summary = summarize(bench.results)
        report.update({"results": summary, "generator_ceiling": ceiling})
        radacct = _count(cluster.url("radius"), "SELECT count(*) FROM radacct")
        postauth = _count(cluster.url("radius"), "SELECT count(*) FROM radpostauth")
        sessions = _count(url, "SELECT count(*) FROM acct_sessions")
        report["database"] = {"radacct_rows": radacct, "radpostauth_rows": postauth,
                              "aaa_acct_sessions": sessions}
        print(f"databases afterwards: radacct {radacct:,} rows, radpostauth {postauth:,} rows, "
              f"aaa acct_sessions {sessions:,} rows", flush=True)
    finally:
        for server in servers.values():
            server.stop()
        cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)
    report["elapsed_s"] = round(time.monotonic() - started)
    info["cpu_probe_ms_at_end"] = cpu_probe_ms()
    print()
    report["table"] = print_table(report["results"], report["generator_ceiling"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compare_freeradius.json").write_text(json.dumps(report, indent=1) + "\n")
    if not args.no_chart:
        title = (f"aaa serve vs FreeRADIUS {info['freeradius'].split('Version ')[-1].split(',')[0]}, "
                 f"{args.subscribers:,} subscribers, {info['nproc']} x {info['cpu']}, {info['date']}, "
                 f"median of {args.runs} x {args.duration:g} s")
        chart(report["results"], args.out / "compare_freeradius.png", title)
        print(f"chart: {args.out / 'compare_freeradius.png'}", flush=True)
    line = {"results": report["results"], "generator_ceiling": report["generator_ceiling"],
            "machine": info, "elapsed_s": report["elapsed_s"]}
    print(json.dumps(line))
    return 0


def _count(url: str, query: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text(query)).scalar_one())
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
