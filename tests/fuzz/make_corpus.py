"""Writes the seed corpus (tests/fuzz/corpus/*.bin): `python -m tests.fuzz.make_corpus`.

The packets are deterministic (fixed random seed), so re-running leaves the files alone.
"""

from __future__ import annotations

import random

from tests.fuzz.harness import CORPUS, dictionary, seeds


def main() -> None:
    CORPUS.mkdir(parents=True, exist_ok=True)
    for name, data in seeds(dictionary(), random.Random(20261123)).items():
        (CORPUS / f"{name}.bin").write_bytes(data)
        print(f"{name}.bin {len(data)} octets")


if __name__ == "__main__":
    main()
