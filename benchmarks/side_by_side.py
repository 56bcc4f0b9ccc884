"""Side by side: `aaa serve` variants up at once on one cluster, the load alternated between
them in short runs, each variant's figures pooled.

On these shared VMs the p99 of the same code moves between 1 and 4 ms within minutes, so
runs of one variant after another cannot tell 10-20 % apart (ninth session). Here every
variant runs all the time (idle while another is measured), the short runs alternate (the
order reversed every round), and what a noisy minute does falls on all of them alike.

A variant is NAME=AAA[,CONFIG]: the `aaa` executable of a checkout's venv (another revision:
`git worktree add /tmp/old REV`, then a venv there with `pip install -e .`) and optionally a
configuration file (one setting against another). All variants share one database,
initialised by the first variant's `aaa db init`: their schemas must agree. Set-up as in
auth_bench.py (10,000 subscribers, one MikroTik NAS requiring Message-Authenticator, the
auth log on); every server is stopped by its PID, the cluster at the end.

    .venv/bin/python benchmarks/side_by_side.py --variant new=.venv/bin/aaa \\
        --variant old=/tmp/old/.venv/bin/aaa [--mode rate|window] [--rounds 16] [--run-seconds 2]

Rate mode: each variant's latencies over all its runs pooled (p50/p95/p99) and the median
of its runs' p99; window mode: its runs' mean and median throughput. Last line: JSON keyed
by variant.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from auth_bench import SECRET, Server, populate  # noqa: E402
from radload import LoadConfig, cpu_probe_ms, percentile, run_load  # noqa: E402

from tests.pg import Cluster  # noqa: E402


def parse_variant(text: str) -> tuple[str, Path, Path | None]:
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise argparse.ArgumentTypeError(f"a variant is NAME=AAA[,CONFIG], not {text!r}")
    executable, _, config = rest.partition(",")
    aaa = Path(executable).resolve()
    if not aaa.exists():
        raise argparse.ArgumentTypeError(f"{executable}: no such executable")
    if config and not Path(config).exists():
        raise argparse.ArgumentTypeError(f"{config}: no such configuration file")
    return name, aaa, Path(config).resolve() if config else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", type=parse_variant, action="append", required=True,
                        help="NAME=AAA[,CONFIG]; two or more")
    parser.add_argument("--mode", choices=("rate", "window"), default="rate")
    parser.add_argument("--rate", type=float, default=10_000.0)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--run-seconds", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--subscribers", type=int, default=10_000)
    args = parser.parse_args(argv)
    names = [name for name, _, _ in args.variant]
    if len(names) < 2 or len(set(names)) != len(names):
        parser.error("give two or more variants with distinct names")

    print(f"machine speed: a fixed Python loop takes {cpu_probe_ms()} ms (lower is faster)", flush=True)
    runs: dict[str, list[Any]] = {name: [] for name in names}
    pooled: dict[str, list[float]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="aaa-sbs-") as tmp, ExitStack() as servers:
        workdir = Path(tmp)
        workdir.chmod(0o755)  # the cluster runs as `postgres` when we are root
        cluster = Cluster(workdir / "pg")
        cluster.start()
        servers.callback(cluster.stop)  # last: after every server has stopped
        cluster.wait_ready()
        url = cluster.url()
        env = {**os.environ, "AAA_DATABASE_URL": url, "AAA_ADMIN_PASSWORD": "bench-admin"}
        subprocess.run([str(args.variant[0][1]), "db", "init"], cwd=workdir, env=env, check=True,
                       capture_output=True, timeout=300)
        subscribers = populate(url, args.subscribers)
        started: dict[str, Server] = {}
        for name, aaa, config in args.variant:
            home = workdir / name
            home.mkdir()
            home.chmod(0o755)
            started[name] = servers.enter_context(Server(url, home, args.workers, aaa=aaa, config=config))
        for server in started.values():  # warm-up, its auth-log rows written before timing
            run_load(LoadConfig(host="127.0.0.1", port=server.port, secret=SECRET.encode(),
                                duration=1.0, count=8_000), subscribers)
            server.settle()
        for round_ in range(args.rounds):
            for name in names if round_ % 2 == 0 else names[::-1]:
                server = started[name]
                config = LoadConfig(host="127.0.0.1", port=server.port, secret=SECRET.encode(),
                                    duration=args.run_seconds, keep_latencies=args.mode == "rate",
                                    **({"rate": args.rate, "window": 512, "expect_rate": 20_000.0}
                                       if args.mode == "rate" else
                                       {"window": args.window, "expect_rate": 30_000.0}))
                result = run_load(config, subscribers)
                runs[name].append(result)
                pooled[name].extend(result.latencies)
                server.settle()
            print(f"round {round_ + 1}/{args.rounds}: " + "  ".join(
                f"{name} {runs[name][-1].p99_ms:.2f} ms" if args.mode == "rate"
                else f"{name} {runs[name][-1].throughput:,.0f}/s" for name in names), flush=True)
            time.sleep(0.2)
        drops = {name: server.drops() for name, server in started.items()}

    report: dict[str, Any] = {}
    for name in names:
        errors = sum(r.errors for r in runs[name])
        if args.mode == "rate":
            ordered = sorted(pooled[name])
            figures = {"p50_ms": round(percentile(ordered, 0.50) * 1000, 3),
                       "p95_ms": round(percentile(ordered, 0.95) * 1000, 3),
                       "p99_ms": round(percentile(ordered, 0.99) * 1000, 3),
                       "median_run_p99_ms": round(statistics.median(r.p99_ms for r in runs[name]), 3)}
            line = (f"pooled over {len(ordered):,} replies: p50 {figures['p50_ms']:.3f} p95 "
                    f"{figures['p95_ms']:.3f} p99 {figures['p99_ms']:.3f} ms; median run p99 "
                    f"{figures['median_run_p99_ms']:.2f} ms")
        else:
            throughputs = [r.throughput for r in runs[name]]
            figures = {"throughput_mean": round(statistics.mean(throughputs)),
                       "throughput_median": round(statistics.median(throughputs))}
            line = (f"throughput mean {figures['throughput_mean']:,}/s, median "
                    f"{figures['throughput_median']:,}/s")
        figures["errors"] = errors
        report[name] = figures
        print(f"{name}: {line}; errors {errors}; dropped by the server: {drops[name]}", flush=True)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
