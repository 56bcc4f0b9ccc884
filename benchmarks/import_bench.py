"""Import benchmark: `aaa import services` of N rows into a fresh SQLite database.

Builds a migrated SQLite file with one plan and a /16 for fixed IPs, writes a `;`
separated CSV (with BOM) of N services for N new customers, one in ten with a fixed IP
and every row with a MAC, then times the whole CLI command in-process (read, validate,
insert, commit). The goal in the issue is 10,000 rows in at most 10 s.
The last line printed is JSON: {"rows": ..., "seconds": ...}.

    .venv/bin/python benchmarks/import_bench.py [--rows N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from aaa.cli import root
from aaa.cliutil import run_cli
from management.validation import cpf_check_digits

HEADER = "documento;nome;login;senha;plano;status;mac;ip;cidade;uf\n"
STATUSES = ("Habilitado", "Suspenso por Débito", "Suspenso Parcialmente", "enabled")


def make_csv(rows: int) -> str:
    lines = [HEADER]
    for i in range(rows):
        base = f"{100000000 + i:09d}"
        cpf = base + cpf_check_digits(base)
        mac = ":".join(f"{b:02X}" for b in (0x4C, 0x5E, 0x0C, i >> 16 & 255, i >> 8 & 255, i & 255))
        ip = f"10.20.{i // 250}.{i % 250 + 1}" if i % 10 == 0 else ""
        lines.append(f"{cpf};Cliente {i};cliente{i};senha{i};FIBRA-100M;"
                     f"{STATUSES[i % len(STATUSES)]};{mac};{ip};Uberlândia;MG\n")
    return "\ufeff" + "".join(lines)


def aaa(*args: str) -> None:
    code = run_cli(root, list(args))
    if code:
        raise SystemExit(f"aaa {' '.join(args)} exited {code}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AAA_DATABASE_URL"] = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        os.environ.setdefault("AAA_ADMIN_PASSWORD", "bench-admin")
        os.environ.pop("AAA_OPERATOR", None)
        stdout = sys.stdout
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the set-up's output is noise
        try:
            aaa("db", "init")
            aaa("plan", "add", "FIBRA-100M", "--download", "100000", "--upload", "50000")
            aaa("subnet", "add", "10.20.0.0/16", "--folder", "bench")
        finally:
            sys.stdout.close()
            sys.stdout = stdout
        path = Path(tmp) / "services.csv"
        path.write_text(make_csv(options.rows), encoding="utf-8")
        started = time.perf_counter()
        aaa("--format", "json", "import", "services", str(path))
        seconds = time.perf_counter() - started
    print(f"imported {options.rows} rows in {seconds:.2f} s ({options.rows / seconds:,.0f} rows/s)")
    print(json.dumps({"rows": options.rows, "seconds": round(seconds, 3)}))


if __name__ == "__main__":
    main()
