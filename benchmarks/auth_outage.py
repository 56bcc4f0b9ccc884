"""The long database-outage run: tests/test_auth_outage.py with PostgreSQL stopped for
60 s (or --seconds) under authentication and accounting load.

    .venv/bin/python benchmarks/auth_outage.py [--seconds 60]

Exits non-zero when any asserted outcome fails: an authentication failure for a known
subscriber, an accounting record not acknowledged or not stored exactly once, a
management command that does not fail cleanly, or a change after the restart that does
not reach the daemon's view. Bounded: about seconds + 40 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    env = dict(os.environ, AAA_AUTH_OUTAGE_SECONDS=str(args.seconds), AAA_REQUIRE_PG="1")
    command = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
               "tests/test_auth_outage.py"]
    return subprocess.run(command, cwd=ROOT, env=env, check=False,
                          timeout=args.seconds + 600).returncode


if __name__ == "__main__":
    sys.exit(main())
