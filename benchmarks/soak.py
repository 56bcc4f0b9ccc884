"""Soak: `aaa serve` under mixed load for a bounded time; errors, RSS and descriptors flat.

Set-up as in benchmarks/auth_bench.py: a throwaway PostgreSQL cluster, N subscribers
(one plan, one MikroTik NAS at 127.0.0.1), a second plan, `POOL_SUSPENSAO_TOTAL`, the
NAS's CoA port pointed at a test NAS of ours (a UDP listener on 127.0.0.1 that checks the
Request Authenticator and ACKs), and `aaa serve` started as a process. Then, at once and
until --minutes have passed:

- auth: benchmarks/radload.py in rate mode (--auth-rate/s, PAP + Message-Authenticator,
  every reply validated) in 10-second runs over the first --auth-logins subscribers;
- accounting: the next --acct-logins subscribers cycle through sessions (Start, three
  Interim-Updates, Stop, a new Start ...), one record per login every 2 s, from a NAS-like
  client that retransmits the same octets until it gets a valid Accounting-Response;
- CoA: every --coa-every seconds `aaa service set-plan` (alternating plans), `suspend
  --mode debt` or `enable` on one of those online logins, each a process of its own: the
  daemon sends the CoA-Request / Disconnect-Request to the test NAS;
- management writes: every --write-every seconds `aaa service add` (a new login).

Every 10 s: errors so far, and the daemon's RSS (/proc/PID/status VmRSS) and open file
descriptors (/proc/PID/fd). At the end, once the CoA queue is empty: no errors (auth
timeouts or wrong replies, unacknowledged accounting, failed commands, CoA jobs not
done, bad CoA requests), RSS after the warm-up (the first 20 %, at most 2 minutes) grown
by less than --rss-growth percent, descriptors within +5 of their post-warm-up value.

    .venv/bin/python benchmarks/soak.py [--minutes 10] [--subscribers 10000]

Exits 1 when an assertion fails; the last line is JSON with the samples.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from auth_bench import AAA, SECRET, Server, populate  # noqa: E402
from overload import metric, rss_kib  # noqa: E402
from sqlalchemy import create_engine, func, select, update  # noqa: E402

from aaa.db.models import CoaJob, Nas  # noqa: E402
from aaa.radius import PacketCode, build_reply, decode, load_dictionary, verify_request_authenticator  # noqa: E402
from tests.acct_process import INTERIM, START, STOP, AcctClient, session_attrs  # noqa: E402
from tests.pg import Cluster  # noqa: E402

DICT = load_dictionary()
PLANS = ("Fibra 300M", "Fibra 500M")


@dataclass
class Tally:
    """Errors and work done, by kind; shared by the load threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    errors: Counter[str] = field(default_factory=Counter)
    done: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def add(self, kind: str, ok: int = 0, errors: int = 0, note: str = "") -> None:
        with self.lock:
            self.done[kind] += ok
            self.errors[kind] += errors
            if note and len(self.notes) < 20:
                self.notes.append(note)


class CoaNas:
    """The NAS's CoA port: ACKs every CoA-Request and Disconnect-Request at once."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.received: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        secret = SECRET.encode()
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                packet = decode(data, DICT)
                valid = verify_request_authenticator(packet, secret)
            except Exception:
                valid = False
            if not valid:
                self.tally.add("coa_nas", errors=1, note="a CoA request the NAS could not verify")
                continue
            if packet.code == PacketCode.COA_REQUEST:
                self.received["coa"] += 1
                self.sock.sendto(build_reply(packet, PacketCode.COA_ACK, secret), source)
            elif packet.code == PacketCode.DISCONNECT_REQUEST:
                self.received["disconnect"] += 1
                self.sock.sendto(build_reply(packet, PacketCode.DISCONNECT_ACK, secret), source)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def aaa(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(AAA), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def auth_loop(server: Server, args: argparse.Namespace, stop: threading.Event, tally: Tally) -> None:
    """10-second radload runs (each a process of its own) until `stop`."""
    command = [sys.executable, str(ROOT / "benchmarks" / "radload.py"), "--port", str(server.port),
               "--secret", SECRET, "--subscribers", str(args.auth_logins),
               "--login", "bench{:06d}", "--password", "pw-{:06d}-x", "--rate", str(args.auth_rate),
               "--window", str(int(args.auth_rate) + 100), "--duration", "10", "--no-ceiling"]
    while not stop.is_set():
        run = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        try:
            report = json.loads(run.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            tally.add("auth", errors=1, note=f"radload failed: {run.stderr[-300:]}")
            continue
        errors = sum(int(report.get(k, 0)) for k in ("wrong_code", "bad_authenticator", "stray",
                                                        "timeouts"))
        tally.add("auth", ok=int(report["ok"]), errors=errors,
                  note=f"auth errors: {report}" if errors else "")


def acct_loop(server: Server, logins: list[str], stop: threading.Event, tally: Tally,
              online: set[str]) -> None:
    """Sessions Start → 3 × Interim → Stop → Start ... one record per login per round."""
    step = dict.fromkeys(logins, -1)  # -1: offline
    serial = itertools.count(1)
    session: dict[str, str] = {}
    index = {login: i for i, login in enumerate(logins)}
    with AcctClient(server.acct_port, secret=SECRET, window=32, timeout=1.0, retries=5) as client:
        while not stop.is_set():
            began = time.monotonic()
            records = []
            for login in logins:
                i = index[login]
                s = step[login]
                if s < 0:
                    session[login] = f"soak-{next(serial):08x}"
                    status, step[login] = START, 0
                elif s < 3:
                    status, step[login] = INTERIM, s + 1
                else:
                    status, step[login] = STOP, -1
                records.append(session_attrs(
                    login, session[login], status, session_time=0 if status == START else 60 * (s + 1),
                    octets_in=10**6 * (s + 1), octets_out=10**7 * (s + 1),
                    ip=f"100.65.{i >> 8}.{i & 255}", mac=None, nas_ip="127.0.0.1",
                    cause=1 if status == STOP else None))
            acked = client.exchange(records, deadline=30.0)
            missed = acked.count(False)
            tally.add("acct", ok=len(acked) - missed, errors=missed,
                      note=f"{missed} accounting records not acknowledged" if missed else "")
            with tally.lock:
                online.clear()
                online.update(login for login in logins if step[login] >= 0)
            stop.wait(max(0.0, 2.0 - (time.monotonic() - began)))


def coa_loop(env: dict[str, str], cwd: Path, args: argparse.Namespace, stop: threading.Event,
             tally: Tally, online: set[str]) -> None:
    """set-plan (to the other plan), suspend --mode debt, enable (the login suspended on
    the turn before) on online logins, each a process of its own; every one must exit 0."""
    plans: dict[str, str] = {}
    suspended: str | None = None
    actions = itertools.count()
    while True:
        if stop.wait(args.coa_every):
            return
        with tally.lock:
            candidates = sorted(online)
        if suspended is not None:
            command: tuple[str, ...] = ("service", "enable", suspended)
            suspended = None
        elif not candidates:
            continue
        else:
            turn = next(actions)
            login = candidates[(turn * 7) % len(candidates)]
            if turn % 2:
                command = ("service", "suspend", login, "--mode", "debt")
                suspended = login
            else:
                plans[login] = PLANS[1] if plans.get(login, PLANS[0]) == PLANS[0] else PLANS[0]
                command = ("service", "set-plan", login, plans[login])
        done = aaa(env, cwd, *command)
        if done.returncode:
            tally.add("coa_cli", errors=1, note=f"{' '.join(command)}: exit {done.returncode} "
                                                f"{done.stderr.strip()[:200]}")
        else:
            tally.add("coa_cli", ok=1)


def write_loop(env: dict[str, str], cwd: Path, args: argparse.Namespace, stop: threading.Event,
               tally: Tally) -> None:
    """A new service now and then (a management write that reaches the view)."""
    for n in itertools.count():
        if stop.wait(args.write_every):
            return
        done = aaa(env, cwd, "service", "add", "--customer", str(1 + n % 100), "--plan", PLANS[0],
                   "--login", f"soak{n:06d}", "--password", f"pw-soak-{n:06d}")
        if done.returncode:
            tally.add("write", errors=1, note=f"service add: {done.returncode} {done.stderr[-200:]}")
        else:
            tally.add("write", ok=1)


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--auth-logins", type=int, default=5_000)
    parser.add_argument("--auth-rate", type=float, default=500.0, help="Access-Requests per second")
    parser.add_argument("--acct-logins", type=int, default=400, help="accounting sessions")
    parser.add_argument("--coa-every", type=float, default=3.0, help="seconds between CoA commands")
    parser.add_argument("--write-every", type=float, default=10.0, help="seconds between writes")
    parser.add_argument("--rss-growth", type=float, default=15.0, help="percent allowed")
    parser.add_argument("--sample-every", type=float, default=10.0)
    args = parser.parse_args(argv)
    if args.auth_logins + args.acct_logins > args.subscribers:
        parser.error("--auth-logins + --acct-logins must not exceed --subscribers")

    duration = args.minutes * 60
    warm_up = min(120.0, 0.2 * duration)
    report: dict[str, Any] = {"minutes": args.minutes, "load_before": os.getloadavg()[0]}
    failures: list[str] = []
    tally = Tally()
    samples: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="aaa-soak-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)  # the cluster runs as `postgres` when we are root
        (workdir / "aaa.toml").write_text("[coa]\ntimeouts = [1.0, 2.0, 4.0]\n")
        cluster = Cluster(workdir / "pg")
        cluster.start()
        nas = CoaNas(tally)
        try:
            cluster.wait_ready()
            url = cluster.url()
            env = {**os.environ, "AAA_DATABASE_URL": url, "AAA_ADMIN_PASSWORD": "bench-admin"}
            env.pop("AAA_CONFIG", None)
            subprocess.run([str(AAA), "db", "init"], cwd=workdir, env=env, check=True,
                           capture_output=True, timeout=300)
            subscribers = populate(url, args.subscribers)
            engine = create_engine(url)
            with engine.begin() as conn:
                conn.execute(update(Nas).values(coa_port=nas.port))
            for command in (("plan", "add", PLANS[1], "--download", "500000", "--upload", "250000",
                             "--price", "149.90"),
                            ("var", "set", "POOL_SUSPENSAO_TOTAL", "bloqueados")):
                done = aaa(env, workdir, *command)
                if done.returncode:
                    raise RuntimeError(f"set-up {command}: {done.stderr}")
            print(f"set-up: {len(subscribers):,} subscribers; soak of {args.minutes:g} min "
                  f"(warm-up {warm_up:.0f} s)", flush=True)
            acct_logins = [s.login for s in subscribers[args.auth_logins:
                                                         args.auth_logins + args.acct_logins]]
            with Server(url, workdir, 1) as server:
                pid = server.process.pid
                stop = threading.Event()
                online: set[str] = set()
                threads = [
                    threading.Thread(target=auth_loop, args=(server, args, stop, tally)),
                    threading.Thread(target=acct_loop, args=(server, acct_logins, stop, tally, online)),
                    threading.Thread(target=coa_loop, args=(env, workdir, args, stop, tally, online)),
                    threading.Thread(target=write_loop, args=(env, workdir, args, stop, tally)),
                ]
                for thread in threads:
                    thread.start()
                begin = time.monotonic()
                try:
                    while (elapsed := time.monotonic() - begin) < duration:
                        time.sleep(min(args.sample_every, max(0.1, duration - elapsed)))
                        with tally.lock:
                            sample = {"t": round(time.monotonic() - begin),
                                      "load": round(os.getloadavg()[0], 1), "rss_mib":
                                      round(rss_kib(pid) / 1024, 1), "fds": fds(pid),
                                      "errors": sum(tally.errors.values()), **dict(tally.done)}
                        samples.append(sample)
                        print(json.dumps(sample), flush=True)
                finally:
                    stop.set()
                    for thread in threads:
                        thread.join(150)
                # Every CoA job settled (bounded wait), then the figures.
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    with engine.connect() as conn:
                        left = conn.scalar(select(func.count()).select_from(CoaJob).where(
                            CoaJob.status.in_(("pending", "sending"))))
                    if not left:
                        break
                    time.sleep(0.5)
                with engine.connect() as conn:
                    jobs = dict(conn.execute(select(CoaJob.status, func.count())
                                             .group_by(CoaJob.status)).all())
                final = {"rss_mib": round(rss_kib(pid) / 1024, 1), "fds": fds(pid)}
                report["dropped"] = metric(server.metrics_port, "aaa_radius_dropped_total")
                report["authlog_dropped"] = metric(server.metrics_port, "aaa_authlog_dropped_total")
                report["coa_requests_ack"] = metric(server.metrics_port, "aaa_coa_requests_total")
            engine.dispose()
        finally:
            nas.close()
            cluster.stop()

    not_done = {status: n for status, n in jobs.items() if status != "done"}
    if not_done:
        tally.add("coa_jobs", errors=sum(not_done.values()), note=f"CoA jobs not done: {not_done}")
    settled = [s for s in samples if s["t"] >= warm_up] or samples[-1:]
    base = settled[0]
    rss_max = max(s["rss_mib"] for s in settled)
    fd_max = max(s["fds"] for s in settled)
    growth = (max(rss_max, final["rss_mib"]) / base["rss_mib"] - 1) * 100
    report.update({
        "errors": dict(tally.errors), "done": dict(tally.done), "coa_jobs": jobs,
        "coa_nas_received": dict(nas.received),
        "rss_after_warm_up_mib": base["rss_mib"], "rss_max_mib": rss_max,
        "rss_final_mib": final["rss_mib"], "rss_growth_pct": round(growth, 1),
        "fds_after_warm_up": base["fds"], "fds_max": fd_max, "fds_final": final["fds"],
        "load_after": os.getloadavg()[0], "notes": tally.notes, "samples": samples,
    })
    if sum(tally.errors.values()):
        failures.append(f"errors: {dict(tally.errors)}; {tally.notes[:5]}")
    if growth >= args.rss_growth:
        failures.append(f"RSS grew {growth:.1f} % after the warm-up ({base['rss_mib']} → "
                        f"{max(rss_max, final['rss_mib'])} MiB)")
    if max(fd_max, final["fds"]) > base["fds"] + 5:
        failures.append(f"file descriptors grew from {base['fds']} to {max(fd_max, final['fds'])}")
    if not tally.done["auth"] or not tally.done["acct"] or not nas.received:
        failures.append(f"some load did not run: {dict(tally.done)}, CoA {dict(nas.received)}")
    print(f"auth {tally.done['auth']:,} ok, accounting {tally.done['acct']:,} acknowledged, "
          f"{tally.done['coa_cli']} CoA commands, {tally.done['write']} writes; CoA at the NAS "
          f"{dict(nas.received)}; jobs {jobs}; RSS {base['rss_mib']} → {final['rss_mib']} MiB "
          f"(max {rss_max}, {growth:+.1f} %); fds {base['fds']} → {final['fds']} (max {fd_max})",
          flush=True)
    for failure in failures:
        print("FAIL: " + failure, flush=True)
    print("PASS" if not failures else f"{len(failures)} FAILED", flush=True)
    report["failures"] = failures
    print(json.dumps(report))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
