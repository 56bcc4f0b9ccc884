"""The daemon's lock-free counters: counted from several threads, nothing is lost."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

from aaa.daemon.metrics import FastCounter


@pytest.fixture
def quick_switches() -> Iterator[None]:
    """Threads switching as often as the daemon's (0.5 ms): races show up if they exist."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    yield
    sys.setswitchinterval(before)


def test_increments_from_several_threads_all_count(quick_switches: None) -> None:
    """The auth reader, the reactor and the writer threads count into the same series
    (a drop reason per NAS); a shared dict's read-add-store would lose some of them."""
    counter = FastCounter("aaa_test", "test", ("reason", "nas"))
    per_thread = 100_000

    def count(index: int) -> None:
        for _ in range(per_thread):
            counter.inc("malformed", "nas-1")
        counter.add(5, "bad_authenticator", f"nas-{index}")

    threads = [threading.Thread(target=count, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.values == {("malformed", "nas-1"): 4 * per_thread,
                              **{("bad_authenticator", f"nas-{n}"): 5 for n in range(4)}}
    samples = {tuple(s.labels.values()): s.value for s in counter.collect().samples}
    assert samples[("malformed", "nas-1")] == 4 * per_thread
