"""Bounded mutation fuzzing of the decoder and the request pipelines.

    .venv/bin/python -m tests.fuzz.run --count 1000000 [--seed N] [--no-save]

Mutates the seed corpus (tests/fuzz/corpus) and every saved crasher (tests/fuzz/crashers)
with tests.fuzz.harness.Mutator and runs each input through tests.fuzz.harness.Target:
decode, AuthHandler.handle, AcctHandler.handle/finish and the CoA answer check. Any
input that makes them raise (other than the documented refusals) or answer something
that is not a valid packet is written to tests/fuzz/crashers/ (keep it: the CI suite
replays every file there) and counted. Exits 1 if there was any crash.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
import traceback

from tests.fuzz.harness import CRASHERS, Mutator, Target, load_corpus, load_crashers


def fuzz(count: int, seed: int, save: bool = True, report_every: float = 10.0,
         quiet: bool = False) -> list[tuple[bytes, str]]:
    """Runs `count` mutated inputs; returns the crashing ones with their tracebacks."""
    corpus = [data for _, data in load_corpus()] + [data for _, data in load_crashers()]
    if not corpus:
        raise SystemExit("empty corpus: run python -m tests.fuzz.make_corpus")
    rng = random.Random(seed)
    mutate = Mutator(corpus, rng)
    target = Target()
    crashes: list[tuple[bytes, str]] = []
    seen: set[str] = set()
    started = last = time.monotonic()
    for i in range(count):
        data = mutate()
        try:
            target.run(data)
        except Exception:
            text = traceback.format_exc()
            signature = text.strip().splitlines()[-1][:200]
            crashes.append((data, text))
            if signature not in seen:
                seen.add(signature)
                if not quiet:
                    print(f"CRASH #{len(crashes)} at input {i}: {signature}", file=sys.stderr)
            if save:
                CRASHERS.mkdir(parents=True, exist_ok=True)
                name = hashlib.sha1(data).hexdigest()[:16]
                (CRASHERS / f"crash-{name}.bin").write_bytes(data)
            target = Target()  # a fresh pipeline: no state left over from the crash
        now = time.monotonic()
        if not quiet and now - last >= report_every:
            last = now
            rate = (i + 1) / (now - started)
            print(f"{i + 1:>9} inputs  {rate:,.0f}/s  crashes {len(crashes)}", flush=True)
    if not quiet:
        elapsed = time.monotonic() - started
        drops = target.metrics.registry.get_sample_value
        malformed = drops("aaa_radius_dropped_total", {"reason": "malformed", "nas": "mk"})
        print(f"done: {count} inputs in {elapsed:.1f} s ({count / elapsed:,.0f}/s), "
              f"{len(crashes)} crashes ({len(seen)} distinct), "
              f"auth records {target.records}, acct responses {target.sent}, "
              f"malformed drops (last target) {malformed}")
    return crashes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--no-save", action="store_true", help="do not write crashers")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(f"fuzz: {args.count} inputs, seed {seed}")
    crashes = fuzz(args.count, seed, save=not args.no_save)
    if crashes:
        print(crashes[0][1], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
