"""py-spy helpers for the benchmarks: record a process, say where its samples go.

py-spy is installed into the venv with pip when missing (a benchmark may install).
Samples are read from py-spy's `raw` (collapsed stacks) output: "self" is the leaf frame
of each sample, "inclusive" counts a frame once per sample it appears in, "threads"
groups samples by thread name (py-spy's `--threads`) and the thread's first frame of our code.
"""

from __future__ import annotations

import collections
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

VENV_BIN = Path(sys.executable).parent
_PATH = re.compile(r"\((?:[^()]*/)?([^/()]+/[^/()]+/[^/()]+:\d+)\)")


def ensure_pyspy() -> Path:
    spy = VENV_BIN / "py-spy"
    if not spy.exists():
        print("installing py-spy into the venv (pip) ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], check=True, timeout=600)
    return spy


def record_pid(pid: int, seconds: float, out: Path, rate: int = 100) -> subprocess.Popen[bytes]:
    """Start sampling `pid` for `seconds` in the background (wait() on the result)."""
    return subprocess.Popen(
        [str(ensure_pyspy()), "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
         "--rate", str(rate), "--nonblocking", "--threads", "--format", "raw", "-o", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def record_command(command: list[str], out: Path, rate: int = 200, timeout: float = 900) -> None:
    subprocess.run([str(ensure_pyspy()), "record", "--rate", str(rate), "--format", "raw", "-o", str(out),
                    "--", *command], check=True, timeout=timeout, capture_output=True)


def _frame(text: str) -> str:
    return _PATH.sub(lambda m: f"({m.group(1)})", text)


def summarize(raw: Path, top: int = 12, keep: tuple[str, ...] = ("aaa/", "management/")) -> dict[str, Any]:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = [_frame(f) for f in stack.split(";")]
        total += samples
        own[frames[-1]] += samples
        if frames[0].startswith("thread "):
            name = frames[0].split(": ", 1)[-1]
            # With the thread's first frame of our own code, which says what it is.
            ours = next((f for f in frames[1:] if any(k in f for k in keep)), "")
            threads[f"{name}: {ours}" if ours else name] += samples
        for frame in set(frames[1:] if frames[0].startswith("thread ") else frames):
            inclusive[frame] += samples

    def share(counter: collections.Counter[str], n: int,
              only: tuple[str, ...] = ()) -> list[tuple[str, float]]:
        rows = [(f, c) for f, c in counter.most_common() if not only or any(k in f for k in only)]
        return [(f, round(100 * c / total, 1)) for f, c in rows[:n]] if total else []

    return {"samples": total, "self": share(own, top), "inclusive_ours": share(inclusive, top + 6, keep),
            "inclusive_libs": share(inclusive, top, ("sqlalchemy", "psycopg2", "twisted", "prometheus")),
            "threads": share(threads, 8)}


def report(title: str, summary: dict[str, Any]) -> None:
    print(f"py-spy, {title}: {summary['samples']} samples", flush=True)
    for key, label in (("threads", "by thread (first frame of our code)"), ("self", "self time"),
                       ("inclusive_ours", "inclusive, our code"),
                       ("inclusive_libs", "inclusive, libraries")):
        if summary[key]:
            print(f"  {label}:", flush=True)
            for frame, pct in summary[key]:
                print(f"    {pct:5.1f} %  {frame}", flush=True)
